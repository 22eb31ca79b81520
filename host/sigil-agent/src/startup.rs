//! Start-up: establishing the agent's identity before anything is served. The agent reuses
//! the SVID stored in `data_dir` while it is valid (on the injected clock) and of the
//! configured trust domain; otherwise it attests the node, retrying with backoff while the
//! server is unreachable or busy (`attest::attest_retrying`).
//!
//! The trust in the server comes from the stored bundle, else the bootstrap bundle
//! (`bootstrap`); with `insecure_bootstrap` and neither, the first connection does not
//! verify the server's chain, and the bundle fetched over it becomes the trust.

use sigil_config::AgentConfig;
use sigil_plugins::{NodeAttestorAgent, PluginHost};
use sigil_types::{Bundle, Clock, SpiffeId};

use crate::client::ServerClient;
use crate::error::AgentError;
use crate::plugins::node_attestor;
use crate::storage::{AgentSvid, DataDir};
use crate::{RunOptions, attest, bootstrap, sync};

/// The identity the agent runs with, and its connection to the server.
#[derive(Debug)]
pub(crate) struct Established {
    /// The connection, with the agent SVID as its client certificate.
    pub(crate) client: ServerClient,
    /// The agent SVID, stored in `data_dir`.
    pub(crate) agent: AgentSvid,
    /// The node attestor, kept when the agent is reattestable.
    pub(crate) attestor: Option<NodeAttestorAgent>,
    /// The bundle stored at start, if of the configured trust domain: served until the
    /// first sync.
    pub(crate) stored_bundle: Option<Bundle>,
}

/// Establishes the agent's identity: the stored SVID, or a new one by node attestation.
pub(crate) async fn establish(
    config: &AgentConfig,
    options: &RunOptions,
    data: &DataDir,
    plugins: &PluginHost,
    clock: &dyn Clock,
) -> Result<Established, AgentError> {
    let client = ServerClient::new(server_address(config), server_id(config)?)?;
    let now = clock.now();
    let stored = data.load_agent_svid()?.filter(|svid| {
        let usable = svid.spiffe_id.is_member_of(&config.trust_domain)
            && svid
                .chain
                .first()
                .and_then(|leaf| sigil_types::x509::validity(leaf).ok())
                .is_some_and(|(_, not_after)| not_after > now);
        if !usable {
            tracing::warn!(spiffe_id = %svid.spiffe_id, "the stored agent SVID is expired or of another trust domain; attesting again");
        }
        usable
    });
    let stored_bundle = data
        .load_bundle()?
        .filter(|b| b.trust_domain == config.trust_domain);
    let (agent, attestor) = match stored {
        Some(svid) => {
            let bundle =
                match &stored_bundle {
                    Some(bundle) => bundle.clone(),
                    None => bootstrap::bootstrap_bundle(config).await?.ok_or(
                        AgentError::Unsupported {
                            key: "agent.trust_bundle_path",
                            reason: "a stored agent SVID needs a stored or bootstrap bundle".into(),
                        },
                    )?,
                };
            client.set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
            tracing::info!(spiffe_id = %svid.spiffe_id, reattestable = svid.reattestable, "reusing the stored agent SVID");
            // A join token is spent: only a reattestable agent needs its attestor again.
            let attestor = if svid.reattestable {
                Some(node_attestor(plugins, config, options)?)
            } else {
                None
            };
            (svid, attestor)
        }
        None => attest_node(config, options, data, plugins, &client).await?,
    };
    client.set_identity(&agent.chain, &agent.key)?;
    client.reconnect();
    Ok(Established {
        client,
        agent,
        attestor,
        stored_bundle,
    })
}

/// A new agent SVID by node attestation, stored; the attestor is kept when reattestable.
async fn attest_node(
    config: &AgentConfig,
    options: &RunOptions,
    data: &DataDir,
    plugins: &PluginHost,
    client: &ServerClient,
) -> Result<(AgentSvid, Option<NodeAttestorAgent>), AgentError> {
    let insecure = match bootstrap::bootstrap_bundle(config).await? {
        Some(bundle) => {
            client.set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
            false
        }
        None => {
            tracing::warn!(
                "insecure_bootstrap: the server's certificate chain is not verified for attestation"
            );
            true
        }
    };
    let attestor = node_attestor(plugins, config, options)?;
    let svid = attest::attest_retrying(client, &attestor).await?;
    if insecure {
        // Still on the first connection: from here on, the bundle is the trust.
        let bundle = sync::fetch_bundle(client, &config.trust_domain).await?;
        client.set_roots(bundle.x509_authorities.iter().map(|a| a.der.as_slice()))?;
        data.store_bundle(&bundle)?;
    }
    data.store_agent_svid(&svid)?;
    tracing::info!(spiffe_id = %svid.spiffe_id, reattestable = svid.reattestable, "node attested");
    let attestor = svid.reattestable.then_some(attestor);
    Ok((svid, attestor))
}

/// The SPIFFE ID the server must present.
fn server_id(config: &AgentConfig) -> Result<SpiffeId, AgentError> {
    SpiffeId::new(&config.trust_domain, "/spire/server").map_err(|e| AgentError::Tls(e.to_string()))
}

/// `server_address:server_port`, with an IPv6 literal in brackets.
fn server_address(config: &AgentConfig) -> String {
    if config.server_address.contains(':') && !config.server_address.starts_with('[') {
        format!("[{}]:{}", config.server_address, config.server_port)
    } else {
        format!("{}:{}", config.server_address, config.server_port)
    }
}
