//! `jwt mint` and `x509 mint`: one-off SVIDs from the SVID service. For an X509-SVID the key
//! pair is generated here and only the CSR goes to the server; the private key is printed or
//! written to `key.pem` (mode 0600) and never sent anywhere.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
use sigil_proto::spire::api::server::svid::v1 as api;

use super::args;
use crate::Cmd;
use crate::error::CliError;
use crate::flags::{Kind, Spec};
use crate::json::{self, Json};
use crate::output::pem;

const SPIFFE_ID: Spec = Spec::new("spiffeID", Kind::Str, "SPIFFE ID of the SVID");
const TTL: Spec = Spec::new("ttl", Kind::Duration, "TTL of the SVID");
const WRITE: Spec = Spec::new(
    "write",
    Kind::Str,
    "Directory (x509) or file (jwt) to write the SVID to instead of stdout",
);

pub(crate) const JWT: &[Spec] = &[
    SPIFFE_ID,
    TTL,
    WRITE,
    Spec::new(
        "audience",
        Kind::Multi,
        "Audience claim that will be included in the SVID. Can be used more than once.",
    ),
];
pub(crate) const X509: &[Spec] = &[
    SPIFFE_ID,
    TTL,
    WRITE,
    Spec::new(
        "dns",
        Kind::Multi,
        "DNS name that will be included in SVID. Can be used more than once.",
    ),
];

/// `jwt mint`: MintJWTSVID; prints the token or writes it to `-write`.
pub(crate) async fn jwt(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = cmd
        .flags
        .str("spiffeID")
        .ok_or_else(|| CliError::invalid("spiffeID must be specified"))?;
    let audience = cmd.flags.all("audience");
    if audience.is_empty() {
        return Err(CliError::invalid("at least one audience must be specified"));
    }
    let ttl = ttl(cmd)?;
    let id = args::spiffe_id(id)?;
    let mut client = api::svid_client::SvidClient::new(cmd.channel().await?);
    let svid = client
        .mint_jwtsvid(api::MintJwtsvidRequest {
            id: Some(id),
            audience,
            ttl,
        })
        .await
        .map_err(CliError::rpc)?
        .into_inner()
        .svid
        .ok_or_else(|| CliError::invalid("server response missing SVID token"))?;
    if svid.token.is_empty() {
        return Err(CliError::invalid("server response missing SVID token"));
    }
    if let Some(path) = cmd.flags.str("write") {
        write_file(Path::new(path), svid.token.as_bytes(), 0o600)
            .map_err(CliError::io("unable to write token"))?;
        cmd.out.print(&format!("JWT-SVID written to {path}\n"));
    } else if cmd.out.is_json() {
        cmd.out
            .json(&Json::Obj(vec![("token", json::s(&svid.token))]));
    } else {
        cmd.out.print(&format!("{}\n", svid.token));
    }
    Ok(())
}

/// `x509 mint`: a fresh P-256 key, a CSR for the SPIFFE ID and `-dns` names, MintX509SVID,
/// then GetBundle for the root CAs.
pub(crate) async fn x509(cmd: &mut Cmd<'_>) -> Result<(), CliError> {
    let id = cmd
        .flags
        .str("spiffeID")
        .ok_or_else(|| CliError::invalid("spiffeID must be specified"))?
        .to_owned();
    let ttl = ttl(cmd)?;
    args::spiffe_id(&id)?;
    let (csr, key_der) = csr(&id, &cmd.flags.all("dns"))?;
    let channel = cmd.channel().await?;
    let svid = api::svid_client::SvidClient::new(channel.clone())
        .mint_x509svid(api::MintX509svidRequest { csr, ttl })
        .await
        .map_err(CliError::rpc)?
        .into_inner()
        .svid
        .filter(|s| !s.cert_chain.is_empty())
        .ok_or_else(|| CliError::invalid("server response missing SVID chain"))?;
    let bundle = bundle_api::bundle_client::BundleClient::new(channel)
        .get_bundle(bundle_api::GetBundleRequest { output_mask: None })
        .await
        .map_err(CliError::rpc)?
        .into_inner();
    if bundle.x509_authorities.is_empty() {
        return Err(CliError::invalid(
            "server response missing X509 Authorities",
        ));
    }
    let roots: Vec<&[u8]> = bundle
        .x509_authorities
        .iter()
        .map(|a| a.asn1.as_slice())
        .collect();
    let svid_pem: String = svid
        .cert_chain
        .iter()
        .map(|c| pem("CERTIFICATE", c))
        .collect();
    let key_pem = pem("PRIVATE KEY", &key_der);
    let bundle_pem: String = roots.iter().map(|c| pem("CERTIFICATE", c)).collect();

    let Some(dir) = cmd.flags.str("write").map(str::to_owned) else {
        if cmd.out.is_json() {
            cmd.out.json(&Json::Obj(vec![
                (
                    "x509_svid",
                    json::list(&svid.cert_chain, |c| json::bytes(c)),
                ),
                ("private_key", json::bytes(&key_der)),
                ("root_cas", json::list(&roots, |c| json::bytes(c))),
            ]));
        } else {
            cmd.out.print(&format!(
                "X509-SVID:\n{svid_pem}\nPrivate key:\n{key_pem}\nRoot CAs:\n{bundle_pem}\n"
            ));
        }
        return Ok(());
    };
    let dir = Path::new(&dir);
    let svid_path = dir.join("svid.pem");
    let key_path = dir.join("key.pem");
    let bundle_path = dir.join("bundle.pem");
    write_file(&svid_path, svid_pem.as_bytes(), 0o644)
        .map_err(CliError::io("unable to write SVID"))?;
    cmd.out
        .print(&format!("X509-SVID written to {}\n", svid_path.display()));
    write_file(&key_path, key_pem.as_bytes(), 0o600)
        .map_err(CliError::io("unable to write key"))?;
    cmd.out
        .print(&format!("Private key written to {}\n", key_path.display()));
    write_file(&bundle_path, bundle_pem.as_bytes(), 0o644)
        .map_err(CliError::io("unable to write bundle"))?;
    cmd.out
        .print(&format!("Root CAs written to {}\n", bundle_path.display()));
    Ok(())
}

fn ttl(cmd: &Cmd<'_>) -> Result<i32, CliError> {
    let ttl = cmd.flags.seconds("ttl", 0);
    if ttl < 0 {
        return Err(CliError::invalid("ttl must not be negative"));
    }
    i32::try_from(ttl).map_err(|_| CliError::invalid("ttl is too large"))
}

/// A DER CSR with the SPIFFE ID as URI SAN and the DNS names, and the PKCS#8 key.
fn csr(id: &str, dns: &[String]) -> Result<(Vec<u8>, Vec<u8>), CliError> {
    let err = |e: rcgen::Error| CliError::invalid(format!("unable to create CSR: {e}"));
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(dns.to_vec()).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let uri = rcgen::string::Ia5String::try_from(id).map_err(err)?;
    params.subject_alt_names.insert(0, rcgen::SanType::URI(uri));
    let csr = params.serialize_request(&key).map_err(err)?;
    Ok((csr.der().to_vec(), key.serialize_der()))
}

/// Writes `data` to `path` with `mode`, tightening the mode of an existing file too.
fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(data)
}
