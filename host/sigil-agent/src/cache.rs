//! What the agent can serve: the [`Snapshot`] the sync loop publishes on a `watch` channel
//! and the X509-SVIDs it holds ([`CachedSvid`]).
//!
//! This is the seam between the sync loop (`sync`, the only writer) and the readers: the
//! Workload API and SDS (`workload`), the Delegated Identity API (`admin`) and the ready
//! check. A reader sees a whole snapshot or the next one, never a half-made one.
//!
//! Architecture invariant: the readers depend on this module only, never on `sync`; the
//! sync loop publishes a new snapshot only when a round completed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sigil_types::{Bundle, RegistrationEntry, TrustDomain, UnixTime, X509Svid};

/// One X509-SVID the agent holds for an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedSvid {
    pub(crate) svid: X509Svid,
    /// When to mint a new one: half-life plus a jitter of up to a tenth of the lifetime.
    pub(crate) renew_at: UnixTime,
    /// The entry's revision the SVID was minted for; a changed entry gets a new SVID.
    pub(crate) revision: i64,
}

/// What the agent can serve at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The own trust domain's bundle; `None` until the first successful sync (or a stored one).
    pub(crate) bundle: Option<Bundle>,
    /// Bundles of trust domains the entries federate with.
    pub(crate) federated: BTreeMap<TrustDomain, Bundle>,
    /// Authorized entries by entry ID.
    pub(crate) entries: BTreeMap<String, Arc<RegistrationEntry>>,
    /// SVIDs by entry ID.
    pub(crate) svids: HashMap<String, Arc<CachedSvid>>,
    /// A sync with the server has completed since the agent started.
    pub(crate) synced: bool,
    /// When the agent's own SVID expires (Unix seconds); 0 before the first sync.
    pub(crate) agent_expires_at: UnixTime,
    /// The last X509-SVID planning round that minted for a subscription (see `x509_cache`).
    pub(crate) x509_round: u64,
}

impl Snapshot {
    /// Ready (the `health_checks` ready path): synced at least once since the start, with
    /// an agent SVID still valid. A server outage alone does not make the agent unready: it
    /// keeps serving what it holds.
    pub(crate) fn readiness(&self, now: UnixTime) -> Result<(), String> {
        if !self.synced {
            return Err("the agent has not synced with the server yet".into());
        }
        if self.agent_expires_at <= now {
            return Err("the agent SVID has expired".into());
        }
        Ok(())
    }
}
