//! The built-in node attestors, `join_token` and `x509pop`, through the host, both sides.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use sigil_plugins::{Grants, JoinTokenRedeemer, NodeAttestorAgent, RedeemError};

use super::*;

/// Tokens in memory, single use, like the datastore's `take_join_token`.
#[derive(Default)]
struct Tokens(Mutex<HashSet<String>>);

impl JoinTokenRedeemer for Tokens {
    fn redeem(&self, token: &str) -> Result<(), RedeemError> {
        if self.0.lock().expect("lock").remove(token) {
            Ok(())
        } else {
            Err(RedeemError::Refused(format!(
                "join token {token} is unknown or used"
            )))
        }
    }
}

fn join_token_server(host: &PluginHost, tokens: Arc<Tokens>) -> NodeAttestorServer {
    let spec = PluginSpec::builtin("join_token", "")
        .with_grants(Grants::default().with_join_tokens(tokens));
    host.load_node_attestor_server(&td(), &spec)
        .expect("join_token server side loads")
}

fn join_token_agent(host: &PluginHost, token: &str) -> NodeAttestorAgent {
    let spec = PluginSpec::builtin("join_token", &format!("join_token = \"{token}\""));
    host.load_node_attestor_agent(&td(), &spec)
        .expect("join_token agent side loads")
}

#[test]
fn join_token_attests_once_with_spires_agent_id() {
    let host = host();
    let tokens = Arc::new(Tokens::default());
    tokens.0.lock().expect("lock").insert("3f1c-77".into());
    let server = join_token_server(&host, tokens);
    let payload = join_token_agent(&host, "3f1c-77")
        .payload()
        .expect("payload");
    let AttestationStep::Done(node) = server.attest(&payload).expect("attested") else {
        panic!("join_token has no challenge");
    };
    assert_eq!(
        node.agent_id.to_string(),
        "spiffe://example.org/spire/agent/join_token/3f1c-77"
    );
    assert!(node.selectors.is_empty());
    assert!(!node.can_reattest);
    let again = server.attest(&payload).expect_err("a token works once");
    assert!(
        again.to_string().contains("permission-denied") && again.to_string().contains("3f1c-77"),
        "{again}"
    );
}

#[test]
fn join_token_refuses_tokens_that_cannot_be_a_path_segment() {
    let host = host();
    let tokens = Arc::new(Tokens::default());
    tokens.0.lock().expect("lock").insert("a/b".into());
    let server = join_token_server(&host, tokens);
    let error = server.attest(b"a/b").expect_err("slash refused");
    assert!(error.to_string().contains("invalid-argument"), "{error}");
    let error = server.attest(b"").expect_err("empty refused");
    assert!(error.to_string().contains("empty"), "{error}");
}

#[test]
fn join_token_server_side_is_refused_without_the_grant() {
    let error = host()
        .load_node_attestor_server(&td(), &PluginSpec::builtin("join_token", ""))
        .expect_err("no join-tokens grant");
    assert!(
        matches!(&error, PluginError::CapabilityNotGranted { import, .. } if import.contains("join-tokens")),
        "{error}"
    );
}

#[test]
fn join_token_agent_side_needs_a_token() {
    let error = host()
        .load_node_attestor_agent(&td(), &PluginSpec::builtin("join_token", ""))
        .expect_err("no token");
    assert!(error.to_string().contains("-joinToken"), "{error}");
}

/// A CA, an intermediate and a node certificate, as files in `dir`.
struct Pki {
    root_pem: String,
    intermediate_sha1: String,
    root_sha1: String,
    leaf_sha1: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    params.distinguished_name = name;
    params
}

fn sha1_hex(der: &[u8]) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn write_pki(dir: &Path, leaf_key: &KeyPair) -> Pki {
    let root_key = KeyPair::generate().expect("root key");
    let root_params = ca_params("Node Root");
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::from_params(&root_params, &root_key);
    let intermediate_key = KeyPair::generate().expect("intermediate key");
    let intermediate_params = ca_params("Node Intermediate");
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .expect("intermediate");
    let intermediate_issuer = Issuer::from_params(&intermediate_params, &intermediate_key);
    let mut leaf_params =
        CertificateParams::new(vec!["node-1.example.org".to_owned()]).expect("leaf params");
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "node-1");
    leaf_params.distinguished_name = name;
    let leaf = leaf_params
        .signed_by(leaf_key, &intermediate_issuer)
        .expect("leaf");
    std::fs::write(dir.join("root.pem"), root.pem()).expect("write root");
    std::fs::write(
        dir.join("node.pem"),
        format!("{}{}", leaf.pem(), intermediate.pem()),
    )
    .expect("write chain");
    std::fs::write(dir.join("node.key"), leaf_key.serialize_pem()).expect("write key");
    Pki {
        root_pem: root.pem(),
        intermediate_sha1: sha1_hex(intermediate.der()),
        root_sha1: sha1_hex(root.der()),
        leaf_sha1: sha1_hex(leaf.der()),
    }
}

/// A fresh PKI for x509pop in `dir` (for other test modules).
pub(super) fn write_test_pki(dir: &Path) {
    write_pki(dir, &KeyPair::generate().expect("leaf key"));
}

pub(super) fn x509pop_pair(
    host: &PluginHost,
    dir: &Path,
) -> (NodeAttestorServer, NodeAttestorAgent) {
    let server = host
        .load_node_attestor_server(
            &td(),
            &PluginSpec::builtin(
                "x509pop",
                &format!("ca_bundle_path = \"{}\"", dir.join("root.pem").display()),
            ),
        )
        .expect("x509pop server side loads");
    let agent = host
        .load_node_attestor_agent(
            &td(),
            &PluginSpec::builtin(
                "x509pop",
                &format!(
                    "certificate_path = \"{}\"\nprivate_key_path = \"{}\"",
                    dir.join("node.pem").display(),
                    dir.join("node.key").display()
                ),
            ),
        )
        .expect("x509pop agent side loads");
    (server, agent)
}

#[test]
fn x509pop_proves_possession_of_a_chained_node_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = write_pki(dir.path(), &KeyPair::generate().expect("leaf key"));
    let host = host();
    let (server, agent) = x509pop_pair(&host, dir.path());
    let payload = agent.payload().expect("payload");
    let AttestationStep::Challenge { challenge, state } = server.attest(&payload).expect("round")
    else {
        panic!("x509pop challenges the agent");
    };
    let answer = agent.answer(&challenge).expect("answer");
    let AttestationStep::Done(node) = server.resume(&state, &answer).expect("attested") else {
        panic!("one round is enough");
    };
    assert_eq!(
        node.agent_id.to_string(),
        format!("spiffe://example.org/spire/agent/x509pop/{}", pki.leaf_sha1)
    );
    let selectors: Vec<String> = node.selectors.iter().map(ToString::to_string).collect();
    for expected in [
        "x509pop:subject:cn:node-1".to_owned(),
        format!("x509pop:ca:fingerprint:{}", pki.intermediate_sha1),
        format!("x509pop:ca:fingerprint:{}", pki.root_sha1),
        "x509pop:san:dns:node-1.example.org".to_owned(),
    ] {
        assert!(selectors.contains(&expected), "{expected} in {selectors:?}");
    }
    assert!(node.can_reattest);

    // Another round's state does not accept this round's answer: the nonce differs.
    let AttestationStep::Challenge { state: other, .. } = server.attest(&payload).expect("round")
    else {
        panic!("x509pop challenges the agent");
    };
    let error = server.resume(&other, &answer).expect_err("replayed answer");
    assert!(error.to_string().contains("permission-denied"), "{error}");
}

#[test]
fn x509pop_refuses_a_chain_from_another_ca_and_a_foreign_key() {
    let host = host();
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path(), &KeyPair::generate().expect("leaf key"));
    let (server, agent) = x509pop_pair(&host, dir.path());

    // The server trusts another root.
    let other = tempfile::tempdir().expect("tempdir");
    let other_pki = write_pki(other.path(), &KeyPair::generate().expect("leaf key"));
    let (other_server, _) = x509pop_pair(&host, other.path());
    assert_ne!(
        other_pki.root_pem,
        std::fs::read_to_string(dir.path().join("root.pem")).expect("root")
    );
    let error = other_server
        .attest(&agent.payload().expect("payload"))
        .expect_err("unknown CA");
    assert!(error.to_string().contains("no issuer"), "{error}");

    // The agent signs with a key that is not the certificate's.
    std::fs::write(
        dir.path().join("node.key"),
        KeyPair::generate().expect("key").serialize_pem(),
    )
    .expect("write key");
    let AttestationStep::Challenge { challenge, state } = server
        .attest(&agent.payload().expect("payload"))
        .expect("round")
    else {
        panic!("x509pop challenges the agent");
    };
    let answer = agent.answer(&challenge).expect("answer");
    let error = server.resume(&state, &answer).expect_err("wrong key");
    assert!(error.to_string().contains("signature"), "{error}");

    // Garbage payloads are invalid arguments, not traps.
    let error = server
        .attest(b"{\"certificates\": [\"!!\"]}")
        .expect_err("bad base64");
    assert!(error.to_string().contains("invalid-argument"), "{error}");
}

#[test]
fn x509pop_signs_with_rsa_keys_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("rsa key");
    write_pki(dir.path(), &key);
    let host = host();
    let (server, agent) = x509pop_pair(&host, dir.path());
    let AttestationStep::Challenge { challenge, state } = server
        .attest(&agent.payload().expect("payload"))
        .expect("round")
    else {
        panic!("x509pop challenges the agent");
    };
    let answer = agent.answer(&challenge).expect("answer");
    assert!(matches!(
        server.resume(&state, &answer).expect("attested"),
        AttestationStep::Done(_)
    ));
}

#[test]
fn x509pop_configuration_errors_name_the_key() {
    let host = host();
    let error = host
        .load_node_attestor_server(&td(), &PluginSpec::builtin("x509pop", ""))
        .expect_err("no bundle");
    assert!(error.to_string().contains("ca_bundle_path"), "{error}");
    let error = host
        .load_node_attestor_server(
            &td(),
            &PluginSpec::builtin(
                "x509pop",
                "ca_bundle_path = \"/nonexistent/root.pem\"\nagent_path_template = \"{{ .Nope }}\"",
            ),
        )
        .expect_err("bad template");
    assert!(error.to_string().contains(".Nope"), "{error}");
    let error = host
        .load_node_attestor_server(
            &td(),
            &PluginSpec::builtin("x509pop", "ca_bundle_path = \"/nonexistent/root.pem\""),
        )
        .expect_err("missing file");
    assert!(error.to_string().contains("ca_bundle_path"), "{error}");
}
