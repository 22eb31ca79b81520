//! `bundle show|list|set|delete|count`: the Bundle service.

use sigil_proto::spire::api::server::bundle::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_types::{Bundle, TrustDomain};

use super::args;
use crate::Cmd;
use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::json::{self, Json};
use crate::output::{pem, plural, status_ok};

const FORMAT: Spec = Spec::new(
    "format",
    Kind::Str,
    "The format to show the bundle (only pem or spiffe). (default \"pem\")",
);
const ID: Spec = Spec::new("id", Kind::Str, "SPIFFE ID of the trust domain");

pub(crate) const SHOW: &[Spec] = &[FORMAT];
pub(crate) const LIST: &[Spec] = &[ID, FORMAT];
pub(crate) const SET: &[Spec] = &[
    ID,
    FORMAT,
    Spec::new("path", Kind::Str, "Path to the bundle data"),
];
pub(crate) const DELETE: &[Spec] = &[
    ID,
    Spec::new(
        "mode",
        Kind::Str,
        "Deletion mode: one of restrict, delete, or dissociate (default \"restrict\")",
    ),
];
pub(crate) const COUNT: &[Spec] = &[];

const HEADER_RULE: &str = "****************************************";

/// `-format pem|spiffe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BundleFormat {
    Pem,
    Spiffe,
}

impl BundleFormat {
    pub(crate) fn parse(value: Option<&str>) -> Result<Self, CliError> {
        match value.map(str::to_lowercase).as_deref() {
            None | Some("") | Some("pem") => Ok(Self::Pem),
            Some("spiffe") => Ok(Self::Spiffe),
            Some(other) => Err(CliError::invalid(format!("invalid format: {other:?}"))),
        }
    }
}

/// `bundle show`: GetBundle, the server's own bundle.
pub(crate) async fn show(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let format = BundleFormat::parse(cmd.flags.str("format"))?;
    let mut client = api::bundle_client::BundleClient::new(cmd.channel().await?);
    let bundle = client
        .get_bundle(api::GetBundleRequest { output_mask: None })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out.json(&json::bundle(&bundle));
        return Ok(());
    }
    let text = bundle_text(&bundle, format, false)?;
    cmd.out.print(&text);
    Ok(())
}

/// `bundle list`: GetFederatedBundle for `-id`, else ListFederatedBundles.
pub(crate) async fn list(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let format = BundleFormat::parse(cmd.flags.str("format"))?;
    let id = cmd.flags.str("id").map(args::trust_domain).transpose()?;
    let mut client = api::bundle_client::BundleClient::new(cmd.channel().await?);
    if let Some(trust_domain) = id {
        let bundle = client
            .get_federated_bundle(api::GetFederatedBundleRequest {
                trust_domain,
                output_mask: None,
            })
            .await
            .map_err(CliError::rpc)?
            .into_inner();
        if cmd.out.is_json() {
            cmd.out.json(&json::bundle(&bundle));
        } else {
            let text = bundle_text(&bundle, format, false)?;
            cmd.out.print(&text);
        }
        return Ok(());
    }
    let mut bundles = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_federated_bundles(api::ListFederatedBundlesRequest {
                output_mask: None,
                page_size: 0,
                page_token,
            })
            .await
            .map_err(CliError::rpc)?
            .into_inner();
        bundles.extend(page.bundles);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if cmd.out.is_json() {
        cmd.out.json(&Json::Obj(vec![
            ("bundles", json::list(&bundles, json::bundle)),
            ("next_page_token", json::s("")),
        ]));
        return Ok(());
    }
    let mut text = String::new();
    for (i, bundle) in bundles.iter().enumerate() {
        if i != 0 {
            text.push('\n');
        }
        text.push_str(&bundle_text(bundle, format, true)?);
    }
    cmd.out.print(&text);
    Ok(())
}

/// `bundle set`: BatchSetFederatedBundle with a bundle read from `-path` or stdin.
pub(crate) async fn set(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = cmd
        .flags
        .str("id")
        .ok_or_else(|| CliError::invalid("id flag is required"))?;
    let format = BundleFormat::parse(cmd.flags.str("format"))?;
    let trust_domain = args::trust_domain(id)?;
    let data = args::read_input(cmd.flags.str("path"))
        .map_err(|e| CliError::invalid(format!("unable to load bundle data: {e}")))?;
    let bundle = parse_bundle(&data, format, &trust_domain)?;
    let mut client = api::bundle_client::BundleClient::new(cmd.channel().await?);
    let response = client
        .batch_set_federated_bundle(api::BatchSetFederatedBundleRequest {
            bundle: vec![bundle],
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc_in("failed to set federated bundle"))?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out
            .json(&json::results(&response.results, "bundle", |r| {
                (
                    r.status.as_ref(),
                    json::opt(r.bundle.as_ref(), json::bundle),
                )
            }));
    }
    for result in &response.results {
        if !status_ok(result.status.as_ref()) {
            let msg = result.status.as_ref().map_or("", |s| s.message.as_str());
            return Err(CliError::Batch(format!(
                "failed to set federated bundle: {msg}"
            )));
        }
    }
    if !cmd.out.is_json() {
        cmd.out.print("bundle set.\n");
    }
    Ok(())
}

/// `bundle delete`: BatchDeleteFederatedBundle with `-mode`.
pub(crate) async fn delete(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    use api::batch_delete_federated_bundle_request::Mode;
    let id = cmd
        .flags
        .str("id")
        .ok_or_else(|| CliError::invalid("id is required"))?;
    let trust_domain = args::trust_domain(id)?;
    let mode = match cmd.flags.str_or("mode", "restrict").to_lowercase().as_str() {
        "restrict" => Mode::Restrict,
        "delete" => Mode::Delete,
        "dissociate" => Mode::Dissociate,
        other => return Err(CliError::invalid(format!("unsupported mode {other:?}"))),
    };
    let mut client = api::bundle_client::BundleClient::new(cmd.channel().await?);
    let response = client
        .batch_delete_federated_bundle(api::BatchDeleteFederatedBundleRequest {
            trust_domains: vec![trust_domain.clone()],
            mode: mode as i32,
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out
            .json(&json::results(&response.results, "trust_domain", |r| {
                (r.status.as_ref(), json::s(&r.trust_domain))
            }));
    }
    for result in &response.results {
        if !status_ok(result.status.as_ref()) {
            let msg = result.status.as_ref().map_or("", |s| s.message.as_str());
            return Err(CliError::Batch(format!(
                "failed to delete federated bundle {:?}: {msg}",
                result.trust_domain
            )));
        }
    }
    if !cmd.out.is_json() {
        cmd.out.print("bundle deleted.\n");
    }
    Ok(())
}

/// `bundle count`: CountBundles.
pub(crate) async fn count(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let mut client = api::bundle_client::BundleClient::new(cmd.channel().await?);
    let n = client
        .count_bundles(api::CountBundlesRequest {})
        .await
        .map_err(CliError::rpc)?
        .into_inner()
        .count;
    if cmd.out.is_json() {
        cmd.out.json(&json::count(n));
    } else {
        let text = plural(
            &format!("{n} "),
            "bundle",
            "bundles",
            usize::try_from(n).unwrap_or(0),
        );
        cmd.out.print(&format!("{text}\n"));
    }
    Ok(())
}

/// Reads bundle data in `format` for `trust_domain` into the wire form.
pub(crate) fn parse_bundle(
    data: &[u8],
    format: BundleFormat,
    trust_domain: &str,
) -> Result<wire::Bundle, CliError> {
    let td = TrustDomain::new(trust_domain).map_err(|e| CliError::invalid(e.to_string()))?;
    let bundle = match format {
        BundleFormat::Pem => Bundle::from_x509_pem(td, data)
            .map_err(|e| CliError::invalid(format!("unable to parse bundle data: {e}")))?,
        BundleFormat::Spiffe => {
            let text = std::str::from_utf8(data)
                .map_err(|_| CliError::invalid("unable to parse to spiffe bundle: not UTF-8"))?;
            Bundle::from_jwks(td, text)
                .map_err(|e| CliError::invalid(format!("unable to parse to spiffe bundle: {e}")))?
        }
    };
    Ok((&bundle).into())
}

/// SPIRE's `printBundleWithFormat`: an optional `* <trust domain>` banner, then the X.509
/// authorities as PEM or the whole bundle as a SPIFFE bundle document (4-space indented).
fn bundle_text(
    bundle: &wire::Bundle,
    format: BundleFormat,
    header: bool,
) -> Result<String, CliError> {
    let mut text = String::new();
    if header {
        text.push_str(&format!(
            "{HEADER_RULE}\n* {}\n{HEADER_RULE}\n",
            bundle.trust_domain
        ));
    }
    match format {
        BundleFormat::Pem => {
            for authority in &bundle.x509_authorities {
                text.push_str(&pem("CERTIFICATE", &authority.asn1));
            }
        }
        BundleFormat::Spiffe => {
            let domain = Bundle::try_from(bundle).map_err(|e| CliError::invalid(e.to_string()))?;
            let document = domain
                .to_jwks()
                .map_err(|e| CliError::invalid(e.to_string()))?;
            text.push_str(&reindent(&document));
            text.push('\n');
        }
    }
    Ok(text)
}

/// serde_json's pretty printer indents by two spaces; Go's `json.Indent` in SPIRE by four.
/// JSON strings hold no raw newlines, so doubling each line's leading spaces is exact.
fn reindent(document: &str) -> String {
    document
        .lines()
        .map(|line| {
            let body = line.trim_start_matches(' ');
            format!("{}{body}", " ".repeat((line.len() - body.len()) * 2))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_reindent() {
        assert_eq!(BundleFormat::parse(None).unwrap(), BundleFormat::Pem);
        assert_eq!(
            BundleFormat::parse(Some("SPIFFE")).unwrap(),
            BundleFormat::Spiffe
        );
        assert_eq!(
            BundleFormat::parse(Some("der")).unwrap_err().to_string(),
            "invalid format: \"der\""
        );
        assert_eq!(
            reindent("{\n  \"a\": [\n    1\n  ]\n}"),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
    }
}
