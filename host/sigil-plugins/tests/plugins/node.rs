//! Node attestors: a challenge round with host-kept state, and the agent-ID rule.

use super::*;

const CHALLENGE_SERVER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/challenge_node_server.wasm"));
const CHALLENGE_AGENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/challenge_node_agent.wasm"));

fn node_server(host: &PluginHost, agent_id: &str) -> NodeAttestorServer {
    host.load_node_attestor_server(
        &td(),
        &PluginSpec::bytes("challenge", CHALLENGE_SERVER, agent_id),
    )
    .expect("server side loads")
}

/// One full attestation: payload, challenge, answer, resume.
fn attest_node(
    host: &PluginHost,
    server: &NodeAttestorServer,
) -> Result<AttestationStep, PluginError> {
    let agent = host
        .load_node_attestor_agent(
            &td(),
            &PluginSpec::bytes("challenge", CHALLENGE_AGENT, "node-7"),
        )
        .expect("agent side loads");
    let payload = agent.payload().expect("payload");
    let AttestationStep::Challenge { challenge, state } = server.attest(&payload)? else {
        panic!("expected a challenge round");
    };
    assert_ne!(
        challenge, state,
        "the agent gets the challenge, the host keeps the state"
    );
    let answer = agent.answer(&challenge).expect("answer");
    server.resume(&state, &answer)
}

#[test]
fn node_attestation_runs_a_challenge_round_with_host_kept_state() {
    let host = host();
    let server = node_server(&host, "spiffe://example.org/spire/agent/challenge/{name}");
    let AttestationStep::Done(node) = attest_node(&host, &server).expect("attested") else {
        panic!("expected the node to be attested");
    };
    assert_eq!(
        node.agent_id.to_string(),
        "spiffe://example.org/spire/agent/challenge/node-7"
    );
    assert_eq!(node.selectors, vec![selector("challenge:name:node-7")]);
    assert!(node.can_reattest);

    let AttestationStep::Challenge { state, .. } = server.attest(b"node-7").expect("challenge")
    else {
        panic!("expected a challenge round");
    };
    let error = server.resume(&state, b"wrong").expect_err("wrong answer");
    assert!(
        matches!(&error, PluginError::Plugin { reason, .. } if reason.starts_with("permission-denied")),
        "{error}"
    );
}

#[test]
fn agent_ids_must_follow_the_agent_id_rule() {
    let host = host();
    for (agent_id, expected) in [
        (
            "spiffe://other.org/spire/agent/challenge/{name}",
            "not in the trust domain",
        ),
        (
            "spiffe://example.org/spire/agent/join_token/{name}",
            "does not have the form",
        ),
        (
            "spiffe://example.org/workload/{name}",
            "does not have the form",
        ),
        (
            "spiffe://example.org/spire/agent/challenge//{name}",
            "malformed SPIFFE ID",
        ),
    ] {
        let error = attest_node(&host, &node_server(&host, agent_id)).expect_err(agent_id);
        assert!(
            matches!(error, PluginError::InvalidOutput { .. }),
            "{agent_id}: {error}"
        );
        assert!(error.to_string().contains(expected), "{agent_id}: {error}");
    }
}

#[test]
fn a_component_loaded_as_the_wrong_world_is_refused() {
    let error = host()
        .load_node_attestor_agent(&td(), &PluginSpec::bytes("challenge", CHALLENGE_SERVER, ""))
        .expect_err("server component as agent");
    assert!(matches!(error, PluginError::WrongWorld { .. }), "{error}");
}
