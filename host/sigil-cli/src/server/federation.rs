//! `federation create|list|show|update|delete`: the TrustDomain service's federation
//! relationships.

use sigil_proto::spire::api::server::trustdomain::v1 as api;
use sigil_proto::spire::api::types as wire;
use wire::federation_relationship::BundleEndpointProfile as Profile;

use super::args;
use super::bundle::{BundleFormat, parse_bundle};
use crate::Cmd;
use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::json::{self, Json};
use crate::output::{plural, status_ok, status_text};

const TRUST_DOMAIN: Spec = Spec::new(
    "trustDomain",
    Kind::Str,
    "Name of the trust domain to federate with (e.g., example.org)",
);

pub(crate) const CONFIG: &[Spec] = &[
    TRUST_DOMAIN,
    Spec::new(
        "bundleEndpointURL",
        Kind::Str,
        "URL of the SPIFFE bundle endpoint that provides the trust bundle (must use the HTTPS protocol)",
    ),
    Spec::new(
        "bundleEndpointProfile",
        Kind::Str,
        "Endpoint profile type (either \"https_web\" or \"https_spiffe\")",
    ),
    Spec::new(
        "endpointSpiffeID",
        Kind::Str,
        "SPIFFE ID of the SPIFFE bundle endpoint server. Only used for 'spiffe' profile.",
    ),
    Spec::new("endpointSPIFFEID", Kind::Str, "Same as -endpointSpiffeID"),
    Spec::new(
        "trustDomainBundlePath",
        Kind::Str,
        "Path to the trust domain bundle data (optional).",
    ),
    Spec::new(
        "trustDomainBundleFormat",
        Kind::Str,
        "The format of the bundle data (optional). Either \"pem\" or \"spiffe\". (default \"pem\")",
    ),
];
pub(crate) const LIST: &[Spec] = &[];
pub(crate) const SHOW: &[Spec] = &[TRUST_DOMAIN];
pub(crate) const DELETE: &[Spec] = &[Spec::new("id", Kind::Str, "SPIFFE ID of the trust domain")];

/// `federation create`: BatchCreateFederationRelationship.
pub(crate) async fn create(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let (relationship, _) = relationship_from_flags(cmd, false)?;
    let mut client = api::trust_domain_client::TrustDomainClient::new(cmd.channel().await?);
    let response = client
        .batch_create_federation_relationship(api::BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![relationship.clone()],
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc_in("request failed"))?
        .into_inner();
    let items: Vec<_> = response
        .results
        .iter()
        .map(|r| {
            (
                r.status.clone(),
                r.federation_relationship
                    .clone()
                    .unwrap_or_else(|| relationship.clone()),
            )
        })
        .collect();
    report(cmd, "create", &items)
}

/// `federation update`: BatchUpdateFederationRelationship with a mask of the fields given.
pub(crate) async fn update(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let (relationship, mask) = relationship_from_flags(cmd, true)?;
    let mut client = api::trust_domain_client::TrustDomainClient::new(cmd.channel().await?);
    let response = client
        .batch_update_federation_relationship(api::BatchUpdateFederationRelationshipRequest {
            federation_relationships: vec![relationship.clone()],
            input_mask: Some(mask),
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc_in("request failed"))?
        .into_inner();
    let items: Vec<_> = response
        .results
        .iter()
        .map(|r| {
            (
                r.status.clone(),
                r.federation_relationship
                    .clone()
                    .unwrap_or_else(|| relationship.clone()),
            )
        })
        .collect();
    report(cmd, "update", &items)
}

fn report(
    cmd: &mut Cmd<'_>,
    verb: &str,
    items: &[(Option<wire::Status>, wire::FederationRelationship)],
) -> Result<(), CliError> {
    if cmd.out.is_json() {
        cmd.out.json(&json::results(
            items,
            "federation_relationship",
            |(st, r)| (st.as_ref(), json::federation_relationship(r)),
        ));
    } else {
        for (st, r) in items {
            if status_ok(st.as_ref()) {
                cmd.out.print(&format!("{}\n", relationship_text(r)));
            } else {
                let text = format!(
                    "Failed to {verb} the following federation relationship {}:\n{}\n",
                    status_text(st.as_ref()),
                    relationship_text(r)
                );
                cmd.out.eprint(&text);
            }
        }
    }
    if items.iter().any(|(st, _)| !status_ok(st.as_ref())) {
        return Err(CliError::Batch(format!(
            "failed to {verb} one or more federation relationships"
        )));
    }
    Ok(())
}

/// `federation list`: ListFederationRelationships page by page.
pub(crate) async fn list(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let mut client = api::trust_domain_client::TrustDomainClient::new(cmd.channel().await?);
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_federation_relationships(api::ListFederationRelationshipsRequest {
                output_mask: None,
                page_size: 0,
                page_token,
            })
            .await
            .map_err(CliError::rpc_in("error listing federation relationship"))?
            .into_inner();
        all.extend(page.federation_relationships);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if cmd.out.is_json() {
        cmd.out.json(&Json::Obj(vec![
            (
                "federation_relationships",
                json::list(&all, json::federation_relationship),
            ),
            ("next_page_token", json::s("")),
        ]));
        return Ok(());
    }
    let mut text = plural(
        &format!("Found {} ", all.len()),
        "federation relationship",
        "federation relationships",
        all.len(),
    );
    text.push('\n');
    for r in &all {
        text.push('\n');
        text.push_str(&relationship_text(r));
    }
    cmd.out.print(&text);
    Ok(())
}

/// `federation show`: GetFederationRelationship.
pub(crate) async fn show(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let td = cmd
        .flags
        .str("trustDomain")
        .ok_or_else(|| CliError::invalid("a trust domain name is required"))?
        .to_owned();
    let mut client = api::trust_domain_client::TrustDomainClient::new(cmd.channel().await?);
    let r = client
        .get_federation_relationship(api::GetFederationRelationshipRequest {
            trust_domain: td.clone(),
            output_mask: None,
        })
        .await
        .map_err(CliError::rpc_in("error showing federation relationship"))?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out.json(&json::federation_relationship(&r));
    } else {
        cmd.out.print(&format!(
            "Found a federation relationship with trust domain {td}:\n\n{}",
            relationship_text(&r)
        ));
    }
    Ok(())
}

/// `federation delete`: BatchDeleteFederationRelationship of `-id`.
pub(crate) async fn delete(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = cmd
        .flags
        .str("id")
        .ok_or_else(|| CliError::invalid("id is required"))?;
    let td = args::trust_domain(id)?;
    let mut client = api::trust_domain_client::TrustDomainClient::new(cmd.channel().await?);
    let response = client
        .batch_delete_federation_relationship(api::BatchDeleteFederationRelationshipRequest {
            trust_domains: vec![td],
        })
        .await
        .map_err(CliError::rpc_in("failed to delete federation relationship"))?
        .into_inner();
    if cmd.out.is_json() {
        cmd.out
            .json(&json::results(&response.results, "trust_domain", |r| {
                (r.status.as_ref(), json::s(&r.trust_domain))
            }));
    }
    for r in &response.results {
        if !status_ok(r.status.as_ref()) {
            let msg = r.status.as_ref().map_or("", |s| s.message.as_str());
            return Err(CliError::Batch(format!(
                "failed to delete federation relationship {:?}: {msg}",
                r.trust_domain
            )));
        }
    }
    if !cmd.out.is_json() {
        cmd.out.print("federation relationship deleted.\n");
    }
    Ok(())
}

/// SPIRE's `printFederationRelationship`.
fn relationship_text(r: &wire::FederationRelationship) -> String {
    let mut s = format!(
        "Trust domain              : {}\nBundle endpoint URL       : {}\n",
        r.trust_domain, r.bundle_endpoint_url
    );
    match &r.bundle_endpoint_profile {
        Some(Profile::HttpsWeb(_)) => s.push_str("Bundle endpoint profile   : https_web\n"),
        Some(Profile::HttpsSpiffe(p)) => {
            s.push_str("Bundle endpoint profile   : https_spiffe\n");
            s.push_str(&format!(
                "Endpoint SPIFFE ID        : {}\n",
                p.endpoint_spiffe_id
            ));
        }
        None => {}
    }
    s
}

/// The relationship from flags; for update only the flags given are set and masked.
fn relationship_from_flags(
    cmd: &Cmd<'_>,
    update: bool,
) -> Result<
    (
        wire::FederationRelationship,
        wire::FederationRelationshipMask,
    ),
    CliError,
> {
    let f = &cmd.flags;
    let td = f
        .str("trustDomain")
        .ok_or_else(|| CliError::invalid("trust domain is required"))?;
    let trust_domain = args::trust_domain(td)?;
    let url = f.str("bundleEndpointURL");
    if url.is_none() && !update {
        return Err(CliError::invalid("bundle endpoint URL is required"));
    }
    if let Some(url) = url
        && !url.starts_with("https://")
    {
        return Err(CliError::invalid(format!(
            "bundle endpoint URL {url:?} must use the https scheme"
        )));
    }
    let endpoint_id = f
        .str("endpointSpiffeID")
        .or_else(|| f.str("endpointSPIFFEID"));
    let profile = match f.str("bundleEndpointProfile") {
        None if update => None,
        Some("https_web") => Some(Profile::HttpsWeb(wire::HttpsWebProfile {})),
        Some("https_spiffe") => {
            let id = endpoint_id.ok_or_else(|| {
                CliError::invalid(
                    "endpoint SPIFFE ID is required if 'https_spiffe' endpoint profile is set",
                )
            })?;
            args::spiffe_id(id)?;
            Some(Profile::HttpsSpiffe(wire::HttpsspiffeProfile {
                endpoint_spiffe_id: id.to_owned(),
            }))
        }
        other => {
            return Err(CliError::invalid(format!(
                "unknown bundle endpoint profile type: {:?}",
                other.unwrap_or_default()
            )));
        }
    };
    let bundle = match f.str("trustDomainBundlePath") {
        Some(path) => {
            let format = BundleFormat::parse(f.str("trustDomainBundleFormat"))?;
            let data = std::fs::read(path)
                .map_err(CliError::io(format!("cannot read bundle file {path}")))?;
            Some(parse_bundle(&data, format, &trust_domain)?)
        }
        None => None,
    };
    let mask = wire::FederationRelationshipMask {
        bundle_endpoint_url: url.is_some(),
        bundle_endpoint_profile: profile.is_some(),
        trust_domain_bundle: bundle.is_some(),
    };
    Ok((
        wire::FederationRelationship {
            trust_domain,
            bundle_endpoint_url: url.unwrap_or_default().to_owned(),
            bundle_endpoint_profile: profile,
            trust_domain_bundle: bundle,
        },
        mask,
    ))
}
