//! The built-in `x509pop` node attestor, server side: proof of possession of a node
//! certificate chained to a configured CA.
//!
//! `plugin_data` (SPIRE's keys):
//! - `ca_bundle_path`: PEM file of the CA certificates node certificates must chain to;
//! - `agent_path_template`: the agent ID's path after `/spire/agent/`, default
//!   `{{ .PluginName }}/{{ .Fingerprint }}`; also `{{ .Subject.CommonName }}` and
//!   `{{ .SerialNumberHex }}`.
//!
//! Selectors (typed `x509pop` by the host): `subject:cn:<cn>`, `ca:fingerprint:<sha1>` for
//! every certificate from the leaf's issuer to the root, `serialnumber:<hex>`,
//! `san:dns:<name>` and `san:uri:<uri>`. The agent may re-attest (with a fresh signature).
//!
//! Grants: the file `ca_bundle_path` (granted from `plugin_data` for the built-in).

use serde::{Deserialize, Serialize};
use sigil_pdk::x509::{VerifiedChain, verify_chain, verify_signature};
use sigil_pdk::{AgentAttributes, Challenge, NodeAttestorServer, PluginError, Step, files};
use x509pop::{NONCE_LEN, Payload, Response, decode, encode, from_json, settings, to_json};

/// SPIRE's default agent path template.
const DEFAULT_TEMPLATE: &str = "{{ .PluginName }}/{{ .Fingerprint }}";
/// The template fields this plugin fills in.
const FIELDS: &[&str] = &[
    ".PluginName",
    ".Fingerprint",
    ".Subject.CommonName",
    ".SerialNumberHex",
];

/// The plugin: the trust domain, the CA bundle and the agent path template.
#[derive(Debug)]
struct X509Pop {
    trust_domain: String,
    roots_pem: String,
    template: String,
}

/// What the server keeps between the challenge and the answer (the agent never sees it).
#[derive(Debug, Serialize, Deserialize)]
struct State {
    leaf: String,
    nonce: String,
    agent_id: String,
    selectors: Vec<String>,
}

impl NodeAttestorServer for X509Pop {
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let mut template = DEFAULT_TEMPLATE.to_owned();
        let mut bundle = false;
        for (key, value) in settings(config, &["ca_bundle_path", "agent_path_template"])
            .map_err(PluginError::InvalidArgument)?
        {
            match key {
                "agent_path_template" => template = value.to_owned(),
                _ => bundle = true,
            }
        }
        if !bundle {
            return Err(PluginError::InvalidArgument(
                "ca_bundle_path is required".into(),
            ));
        }
        check_template(&template)?;
        let roots = files::read("ca_bundle_path")?;
        let roots_pem = String::from_utf8(roots).map_err(|_| {
            PluginError::InvalidArgument("the CA bundle is not a PEM text file".into())
        })?;
        Ok(X509Pop {
            trust_domain: trust_domain.to_owned(),
            roots_pem,
            template,
        })
    }

    fn attest(&self, payload: Vec<u8>) -> Result<Step, PluginError> {
        let payload: Payload = from_json("payload", &payload).map_err(invalid)?;
        let chain = payload
            .certificates
            .iter()
            .map(|c| decode("a certificate", c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        if chain.is_empty() {
            return Err(invalid("the payload has no certificate".into()));
        }
        let verified = verify_chain(&chain, &self.roots_pem)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| PluginError::Internal(format!("no randomness: {e}")))?;
        let state = State {
            leaf: encode(&chain[0]),
            nonce: encode(&nonce),
            agent_id: self.agent_id(&verified),
            selectors: selectors(&verified),
        };
        Ok(Step::Challenge(Challenge {
            challenge: to_json(&x509pop::Challenge {
                nonce: encode(&nonce),
            })
            .map_err(PluginError::Internal)?,
            state: to_json(&state).map_err(PluginError::Internal)?,
        }))
    }

    fn resume(&self, state: Vec<u8>, response: Vec<u8>) -> Result<Step, PluginError> {
        let state: State = from_json("state", &state).map_err(PluginError::Internal)?;
        let response: Response = from_json("challenge response", &response).map_err(invalid)?;
        let leaf = decode("the leaf", &state.leaf).map_err(PluginError::Internal)?;
        let nonce = decode("the nonce", &state.nonce).map_err(PluginError::Internal)?;
        let signature = decode("the signature", &response.signature).map_err(invalid)?;
        verify_signature(&leaf, &x509pop::signed_message(&nonce), &signature)?;
        Ok(Step::Done(AgentAttributes {
            agent_id: state.agent_id,
            selectors: state.selectors,
            can_reattest: true,
        }))
    }
}

impl X509Pop {
    fn agent_id(&self, chain: &VerifiedChain) -> String {
        let leaf = &chain.leaf;
        let path = self
            .template
            .replace("{{ .PluginName }}", "x509pop")
            .replace("{{ .Fingerprint }}", &leaf.sha1_fingerprint)
            .replace(
                "{{ .Subject.CommonName }}",
                leaf.subject_common_name.as_deref().unwrap_or(""),
            )
            .replace("{{ .SerialNumberHex }}", &leaf.serial_number);
        format!("spiffe://{}/spire/agent/{path}", self.trust_domain)
    }
}

fn selectors(chain: &VerifiedChain) -> Vec<String> {
    let leaf = &chain.leaf;
    let mut selectors = Vec::new();
    if let Some(cn) = &leaf.subject_common_name {
        selectors.push(format!("subject:cn:{cn}"));
    }
    selectors.extend(
        chain
            .authorities
            .iter()
            .map(|ca| format!("ca:fingerprint:{}", ca.sha1_fingerprint)),
    );
    selectors.push(format!("serialnumber:{}", leaf.serial_number));
    selectors.extend(leaf.dns_names.iter().map(|n| format!("san:dns:{n}")));
    selectors.extend(leaf.uris.iter().map(|u| format!("san:uri:{u}")));
    selectors
}

/// Every `{{ … }}` in `template` must be a known field, written with single spaces.
fn check_template(template: &str) -> Result<(), PluginError> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            invalid(format!(
                "agent_path_template {template:?} has an unclosed {{{{"
            ))
        })?;
        let field = after[..end].trim();
        if !FIELDS.contains(&field) {
            return Err(invalid(format!(
                "agent_path_template: unknown field {field:?} (known: {})",
                FIELDS.join(", ")
            )));
        }
        if after[..end] != format!(" {field} ") {
            return Err(invalid(format!(
                "agent_path_template: write the field as {{{{ {field} }}}}"
            )));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

fn invalid(message: String) -> PluginError {
    PluginError::InvalidArgument(message)
}

sigil_pdk::export_node_attestor_server!(X509Pop);
