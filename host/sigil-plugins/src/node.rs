//! Node attestors: the `node-attestor-server` and `node-attestor-agent` worlds.
//!
//! The server side may answer a payload with a challenge; the state it needs to check the
//! answer goes back to the caller with the challenge ([`AttestationStep::Challenge`]), and
//! the caller hands it to [`NodeAttestorServer::resume`] with the agent's answer. The
//! plugin keeps nothing between calls: every call is a fresh instance.

use sigil_types::{Selector, SpiffeId};

use crate::bindings::node_agent::NodeAttestorAgentPre;
use crate::bindings::node_server::NodeAttestorServerPre;
use crate::bindings::node_server::sigil::plugin::node_attestation::Step;
use crate::call::{Core, run};
use crate::error::PluginError;
use crate::output;
use crate::state::CallState;

/// The outcome of one round of node attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationStep {
    /// Send `challenge` to the agent; keep `state` for [`NodeAttestorServer::resume`].
    Challenge {
        /// For the agent.
        challenge: Vec<u8>,
        /// For the plugin's next round only; never sent to the agent.
        state: Vec<u8>,
    },
    /// The node is attested.
    Done(AttestedNode),
}

/// What the server learned about an attested node, checked by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttestedNode {
    /// `spiffe://<trust domain>/spire/agent/<plugin>/<suffix>`.
    pub agent_id: SpiffeId,
    /// Selectors typed with the plugin name.
    pub selectors: Vec<Selector>,
    /// Whether the agent may re-attest instead of renewing.
    pub can_reattest: bool,
}

/// A loaded node attestor, server side. Cheap to clone and share.
#[derive(Clone)]
pub struct NodeAttestorServer {
    pub(crate) core: Core,
    pub(crate) pre: NodeAttestorServerPre<CallState>,
}

/// What to call on the server side.
enum ServerCall<'a> {
    Attest(&'a [u8]),
    Resume(&'a [u8], &'a [u8]),
}

impl NodeAttestorServer {
    /// The configured name: the `<plugin>` segment of agent IDs and the selector type.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// First round: the agent's payload.
    pub fn attest(&self, payload: &[u8]) -> Result<AttestationStep, PluginError> {
        self.call(ServerCall::Attest(payload))
    }

    /// Next round: the state of the previous challenge and the agent's answer.
    pub fn resume(&self, state: &[u8], response: &[u8]) -> Result<AttestationStep, PluginError> {
        self.call(ServerCall::Resume(state, response))
    }

    /// Instantiate and configure once, so a bad `plugin_data` fails at load.
    pub(crate) fn check_configure(&self) -> Result<(), PluginError> {
        self.core.check_configure(&self.pre)
    }

    fn call(&self, call: ServerCall<'_>) -> Result<AttestationStep, PluginError> {
        let core = &self.core;
        let mut store = core.store()?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| core.cannot_instantiate(&e))?;
        let step = run(&mut store, core, |store| {
            if let Err(error) =
                instance.call_configure(&mut *store, core.trust_domain.name(), &core.data)?
            {
                return Ok(Err(error));
            }
            match call {
                ServerCall::Attest(payload) => instance.call_attest(&mut *store, payload),
                ServerCall::Resume(state, response) => {
                    instance.call_resume(&mut *store, state, response)
                }
            }
        })?
        .map_err(|error| core.failed(&error))?;
        match step {
            Step::Challenge(challenge) => Ok(AttestationStep::Challenge {
                challenge: output::message(
                    &core.name,
                    &core.limits,
                    "challenge",
                    challenge.challenge,
                )?,
                state: output::message(
                    &core.name,
                    &core.limits,
                    "challenge state",
                    challenge.state,
                )?,
            }),
            Step::Done(attributes) => Ok(AttestationStep::Done(AttestedNode {
                agent_id: output::agent_id(&core.name, &core.trust_domain, &attributes.agent_id)?,
                selectors: output::selectors(&core.name, &core.limits, &attributes.selectors)?,
                can_reattest: attributes.can_reattest,
            })),
        }
    }
}

/// A loaded node attestor, agent side. Cheap to clone and share.
#[derive(Clone)]
pub struct NodeAttestorAgent {
    pub(crate) core: Core,
    pub(crate) pre: NodeAttestorAgentPre<CallState>,
}

impl NodeAttestorAgent {
    /// The configured name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The attestation payload.
    pub fn payload(&self) -> Result<Vec<u8>, PluginError> {
        self.call(None)
    }

    /// The answer to one server challenge.
    pub fn answer(&self, challenge: &[u8]) -> Result<Vec<u8>, PluginError> {
        self.call(Some(challenge))
    }

    /// Instantiate and configure once, so a bad `plugin_data` fails at load.
    pub(crate) fn check_configure(&self) -> Result<(), PluginError> {
        self.core.check_configure(&self.pre)
    }

    /// `payload` when `challenge` is `None`, `answer` otherwise.
    fn call(&self, challenge: Option<&[u8]>) -> Result<Vec<u8>, PluginError> {
        let core = &self.core;
        let mut store = core.store()?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| core.cannot_instantiate(&e))?;
        let bytes = run(&mut store, core, |store| {
            if let Err(error) =
                instance.call_configure(&mut *store, core.trust_domain.name(), &core.data)?
            {
                return Ok(Err(error));
            }
            match challenge {
                None => instance.call_payload(&mut *store),
                Some(challenge) => instance.call_answer(&mut *store, challenge),
            }
        })?
        .map_err(|error| core.failed(&error))?;
        let what = if challenge.is_some() {
            "challenge answer"
        } else {
            "payload"
        };
        output::message(&core.name, &core.limits, what, bytes)
    }
}

impl std::fmt::Debug for NodeAttestorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NodeAttestorServer")
            .field(&self.core)
            .finish()
    }
}

impl std::fmt::Debug for NodeAttestorAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NodeAttestorAgent")
            .field(&self.core)
            .finish()
    }
}
