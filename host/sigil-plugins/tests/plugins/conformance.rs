//! One contract per world, run against every built-in plugin of that world, and compared
//! with the same logic written natively where the plugin computes something a native
//! reading can state: the `unix` selectors from the process's facts, the `k8s_template`
//! IDs from `format!`. (The `disk` publisher is compared with the native PEM and SPIFFE
//! renderings in `publisher.rs`.)
//!
//! The contract every plugin keeps: bad input is the plugin's own error (never a trap),
//! the same input gives the same output, and outputs obey the host's rules.

use std::collections::BTreeSet;
use std::sync::Arc;

use sigil_plugins::{Grants, JoinTokenRedeemer, NodeAttestorAgent, RedeemError};

use super::*;

/// A redeemer that accepts every well-formed token (the contract cases are not about
/// single use; `builtin_nodes.rs` is).
struct AcceptAll;

impl JoinTokenRedeemer for AcceptAll {
    fn redeem(&self, _token: &str) -> Result<(), RedeemError> {
        Ok(())
    }
}

/// Every built-in node attestor, both sides, ready to attest.
fn node_attestors(
    host: &PluginHost,
    dir: &std::path::Path,
) -> Vec<(NodeAttestorServer, NodeAttestorAgent)> {
    let join_token = (
        host.load_node_attestor_server(
            &td(),
            &PluginSpec::builtin("join_token", "")
                .with_grants(Grants::default().with_join_tokens(Arc::new(AcceptAll))),
        )
        .expect("join_token server"),
        host.load_node_attestor_agent(
            &td(),
            &PluginSpec::builtin("join_token", "join_token = \"t-1\""),
        )
        .expect("join_token agent"),
    );
    super::builtin_nodes::write_test_pki(dir);
    let x509pop = super::builtin_nodes::x509pop_pair(host, dir);
    vec![join_token, x509pop]
}

/// Run one attestation to the end.
fn attest(server: &NodeAttestorServer, agent: &NodeAttestorAgent) -> AttestedNodeView {
    let mut step = server
        .attest(&agent.payload().expect("payload"))
        .expect("first round");
    for _ in 0..4 {
        match step {
            AttestationStep::Challenge { challenge, state } => {
                let answer = agent.answer(&challenge).expect("answer");
                step = server.resume(&state, &answer).expect("next round");
            }
            AttestationStep::Done(node) => {
                return AttestedNodeView {
                    agent_id: node.agent_id.to_string(),
                    selectors: node.selectors.iter().map(ToString::to_string).collect(),
                };
            }
            other => panic!("unknown step {other:?}"),
        }
    }
    panic!("{}: more than four rounds", server.name());
}

#[derive(Debug, PartialEq, Eq)]
struct AttestedNodeView {
    agent_id: String,
    selectors: BTreeSet<String>,
}

#[test]
fn node_attestors_keep_the_contract() {
    let host = host();
    let dir = tempfile::tempdir().expect("tempdir");
    for (server, agent) in node_attestors(&host, dir.path()) {
        let name = server.name().to_owned();
        let first = attest(&server, &agent);
        assert!(
            first
                .agent_id
                .starts_with(&format!("spiffe://example.org/spire/agent/{name}/")),
            "{name}: {first:?}"
        );
        assert!(
            first
                .selectors
                .iter()
                .all(|s| s.starts_with(&format!("{name}:"))),
            "{name}: {first:?}"
        );
        assert_eq!(
            attest(&server, &agent),
            first,
            "{name}: same node, same result"
        );

        for garbage in [
            &b""[..],
            b"\xff\xfe",
            b"{\"certificates\": 7}",
            &[b'a'; 300],
        ] {
            match server.attest(garbage) {
                Err(PluginError::Plugin { reason, .. }) => {
                    assert!(reason.starts_with("invalid-argument"), "{name}: {reason}");
                }
                other => panic!("{name}: garbage payload gave {other:?}"),
            }
        }
        match server.resume(b"not state", b"not an answer") {
            Err(PluginError::Plugin { .. }) => {}
            other => panic!("{name}: garbage resume gave {other:?}"),
        }
        match agent.answer(b"\x00 not a challenge") {
            Err(PluginError::Plugin { .. }) => {}
            other => panic!("{name}: garbage challenge gave {other:?}"),
        }
    }
}

/// What SPIRE's `unix` attestor reports for `facts`, computed natively.
fn native_unix_selectors(facts: &ProcessFacts) -> BTreeSet<String> {
    let mut selectors = BTreeSet::new();
    selectors.insert(format!("unix:uid:{}", facts.uid()));
    if let Some(user) = facts.user_name() {
        selectors.insert(format!("unix:user:{user}"));
    }
    selectors.insert(format!("unix:gid:{}", facts.gid()));
    if let Some(group) = facts.group_name(facts.gid()) {
        selectors.insert(format!("unix:group:{group}"));
    }
    for gid in facts.supplementary_gids() {
        selectors.insert(format!("unix:supplementary_gid:{gid}"));
        if let Some(group) = facts.group_name(*gid) {
            selectors.insert(format!("unix:supplementary_group:{group}"));
        }
    }
    selectors
}

#[test]
fn workload_attestors_match_the_native_reading() {
    let host = host();
    let unix = host
        .load_workload_attestor(&td(), &PluginSpec::builtin("unix", ""))
        .expect("unix");
    let facts = ProcessFacts::resolve(std::process::id()).expect("facts");
    let wasm: BTreeSet<String> = unix
        .attest_process(facts.clone())
        .expect("attested")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(wasm, native_unix_selectors(&facts));
    let again: BTreeSet<String> = unix
        .attest_process(facts)
        .expect("attested")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(again, wasm, "same process, same selectors");
}

#[test]
fn renderers_match_the_native_reading() {
    let host = host();
    let renderer = host
        .load_id_renderer(
            &td(),
            &PluginSpec::builtin(
                "k8s_template",
                "template = \"spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}\"",
            ),
        )
        .expect("k8s_template");
    for (namespace, account) in [
        ("prod", "web-sa"),
        ("kube-system", "coredns"),
        ("a", "b-c.d"),
    ] {
        let mut input = pod_input();
        input.pod_meta.namespace = namespace.into();
        input.pod_spec.service_account_name = account.into();
        let native = format!("spiffe://example.org/ns/{namespace}/sa/{account}");
        assert_eq!(
            renderer
                .render(&input)
                .expect("rendered")
                .map(|id| id.to_string()),
            Some(native)
        );
    }
    // Input the native reading refuses (an empty path segment) is refused by the host too.
    let mut input = pod_input();
    input.pod_meta.namespace = String::new();
    assert!(matches!(
        renderer.render(&input),
        Err(PluginError::InvalidOutput { .. })
    ));
}
