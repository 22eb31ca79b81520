//! The built-in `x509pop` node attestor, agent side: presents the node's certificate chain
//! and signs the server's nonce with the certificate's private key. The key stays with the
//! host: the plugin asks the host to sign with the granted key file.
//!
//! `plugin_data` (SPIRE's keys): `certificate_path` (PEM, the node certificate, possibly
//! followed by intermediates), `private_key_path` (PEM), `intermediates_path` (optional PEM).
//!
//! Grants: those files (granted from `plugin_data` for the built-in).

use sigil_pdk::{NodeAttestorAgent, PluginError, files};
use x509pop::{Challenge, Payload, Response, decode, encode, from_json, settings, to_json};

/// The plugin: whether intermediates come from a file of their own.
#[derive(Debug)]
struct X509Pop {
    intermediates: bool,
}

impl NodeAttestorAgent for X509Pop {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let settings = settings(
            config,
            &["certificate_path", "private_key_path", "intermediates_path"],
        )
        .map_err(PluginError::InvalidArgument)?;
        let has = |key: &str| settings.iter().any(|(k, _)| *k == key);
        for required in ["certificate_path", "private_key_path"] {
            if !has(required) {
                return Err(PluginError::InvalidArgument(format!(
                    "{required} is required"
                )));
            }
        }
        Ok(X509Pop {
            intermediates: has("intermediates_path"),
        })
    }

    fn payload(&self) -> Result<Vec<u8>, PluginError> {
        let mut certificates = certificates_of("certificate_path")?;
        if certificates.is_empty() {
            return Err(PluginError::InvalidArgument(
                "the certificate file holds no certificate".into(),
            ));
        }
        if self.intermediates {
            certificates.extend(certificates_of("intermediates_path")?);
        }
        to_json(&Payload {
            certificates: certificates.iter().map(|c| encode(c)).collect(),
        })
        .map_err(PluginError::Internal)
    }

    fn answer(&self, challenge: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        let challenge: Challenge =
            from_json("challenge", &challenge).map_err(PluginError::InvalidArgument)?;
        let nonce = decode("the nonce", &challenge.nonce).map_err(PluginError::InvalidArgument)?;
        let signature = files::sign("private_key_path", &x509pop::signed_message(&nonce))?;
        to_json(&Response {
            signature: encode(&signature),
        })
        .map_err(PluginError::Internal)
    }
}

/// The DER certificates in the granted PEM file `name`.
fn certificates_of(name: &str) -> Result<Vec<Vec<u8>>, PluginError> {
    let text = files::read(name)?;
    let blocks = pem::parse_many(&text)
        .map_err(|_| PluginError::InvalidArgument(format!("{name}: the file is not PEM")))?;
    Ok(blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect())
}

sigil_pdk::export_node_attestor_agent!(X509Pop);
