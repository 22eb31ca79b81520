//! Node attestation (`AttestAgent`, with the node attestor plugin's challenge rounds; at
//! start retried with backoff by [`attest_retrying`]) and agent SVID renewal (`RenewAgent`).

mod retry;

use sigil_config::KeyType;
use sigil_plugins::NodeAttestorAgent;
use sigil_proto::spire::api::server::agent::v1 as agent;
use sigil_proto::spire::api::types as wire;
use sigil_types::SpiffeId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::ServerClient;
use crate::error::AgentError;
use crate::keys;
use crate::storage::AgentSvid;

pub(crate) use retry::attest_retrying;

/// Most challenge rounds the agent answers (the server stops at 8 too).
const MAX_ROUNDS: usize = 8;

/// Attests the node with `plugin`; the agent key is generated here.
pub(crate) async fn attest(
    client: &ServerClient,
    plugin: &NodeAttestorAgent,
) -> Result<AgentSvid, AgentError> {
    const CALL: &str = "AttestAgent";
    let key = keys::generate(KeyType::EcP256)?;
    let csr = keys::csr(&key)?;
    let payload = plugin_call(plugin, None).await?;
    let (send, receive) = mpsc::channel(2);
    let first = agent::AttestAgentRequest {
        step: Some(agent::attest_agent_request::Step::Params(
            agent::attest_agent_request::Params {
                data: Some(wire::AttestationData {
                    r#type: plugin.name().to_owned(),
                    payload,
                }),
                params: Some(agent::AgentX509svidParams { csr }),
            },
        )),
    };
    send.send(first)
        .await
        .map_err(|_| AgentError::bad(CALL, "request stream closed"))?;
    let mut responses = agent::agent_client::AgentClient::new(client.channel())
        .attest_agent(ReceiverStream::new(receive))
        .await
        .map_err(|s| AgentError::server(CALL, s))?
        .into_inner();
    for _ in 0..=MAX_ROUNDS {
        let response = responses
            .message()
            .await
            .map_err(|s| AgentError::server(CALL, s))?
            .ok_or_else(|| AgentError::bad(CALL, "the stream ended without a result"))?;
        match response.step {
            Some(agent::attest_agent_response::Step::Result(result)) => {
                let svid = result
                    .svid
                    .ok_or_else(|| AgentError::bad(CALL, "no SVID in the result"))?;
                return agent_svid(CALL, svid, keys::private_der(&key), result.reattestable);
            }
            Some(agent::attest_agent_response::Step::Challenge(challenge)) => {
                let answer = plugin_call(plugin, Some(challenge)).await?;
                let request = agent::AttestAgentRequest {
                    step: Some(agent::attest_agent_request::Step::ChallengeResponse(answer)),
                };
                send.send(request)
                    .await
                    .map_err(|_| AgentError::bad(CALL, "request stream closed"))?;
            }
            None => return Err(AgentError::bad(CALL, "empty response")),
        }
    }
    Err(AgentError::bad(CALL, "too many challenge rounds"))
}

/// Renews the agent SVID over the mTLS connection: a new key, the same SPIFFE ID. Only for
/// agents that cannot attest again; the others renew by attesting.
pub(crate) async fn renew(client: &ServerClient) -> Result<AgentSvid, AgentError> {
    const CALL: &str = "RenewAgent";
    let key = keys::generate(KeyType::EcP256)?;
    let csr = keys::csr(&key)?;
    let response = agent::agent_client::AgentClient::new(client.channel())
        .renew_agent(agent::RenewAgentRequest {
            params: Some(agent::AgentX509svidParams { csr }),
        })
        .await
        .map_err(|s| AgentError::server(CALL, s))?
        .into_inner();
    let svid = response
        .svid
        .ok_or_else(|| AgentError::bad(CALL, "no SVID in the answer"))?;
    agent_svid(CALL, svid, keys::private_der(&key), false)
}

/// The agent SVID from the wire, with its key.
fn agent_svid(
    call: &'static str,
    svid: wire::X509svid,
    key: sigil_types::PrivateKeyDer,
    reattestable: bool,
) -> Result<AgentSvid, AgentError> {
    let id = svid
        .id
        .as_ref()
        .ok_or_else(|| AgentError::bad(call, "no SPIFFE ID"))?;
    let spiffe_id = SpiffeId::try_from(id).map_err(|e| AgentError::bad(call, e))?;
    if svid.cert_chain.is_empty() {
        return Err(AgentError::bad(call, "empty certificate chain"));
    }
    Ok(AgentSvid {
        spiffe_id,
        chain: svid.cert_chain,
        key,
        reattestable,
    })
}

/// The plugin's payload (`None`) or its answer to a challenge, on a blocking thread.
async fn plugin_call(
    plugin: &NodeAttestorAgent,
    challenge: Option<Vec<u8>>,
) -> Result<Vec<u8>, AgentError> {
    let plugin = plugin.clone();
    let name = plugin.name().to_owned();
    let result = tokio::task::spawn_blocking(move || match challenge {
        None => plugin.payload(),
        Some(challenge) => plugin.answer(&challenge),
    })
    .await
    .map_err(|e| AgentError::Key(format!("plugin thread: {e}")))?;
    result.map_err(|source| AgentError::Plugin { name, source })
}
