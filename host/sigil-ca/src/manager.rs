//! The CA manager: keeps the active X.509 CA and JWT signer, and drives the A/B rotation
//! decided by [`crate::rotation::next_step`] against a [`KeyManager`] and a [`CaStorage`].

mod steps;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sigil_types::{Bundle, JwtSvid, SpiffeId, TrustDomain, UnixTime};
use tracing::warn;

use crate::jwt::{DEFAULT_JWT_SVID_TTL, JwtError, JwtSigner};
use crate::rotation::{Journal, RotationStep, SlotId, SlotStatus, next_step};
use crate::storage::{CaStorage, StorageError};
use crate::x509::{
    CsrKeyPolicy, DEFAULT_X509_SVID_TTL, IssuedChain, Subject, UpstreamDiskConfig, X509Ca,
    X509SvidParams,
};
use crate::{CaError, KeyError, KeyManager, KeyType};
use steps::Steps;

/// SPIRE's default X.509 CA TTL (`ca_ttl`): 24 hours.
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 3600);

/// Most rotation steps one [`CaManager::rotate`] call takes (bootstrap, then at most a
/// prepare and an activate).
const MAX_STEPS_PER_ROTATION: usize = 4;

/// Why the CA manager could not start or rotate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaManagerError {
    /// The journal or the bundle could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A key could not be generated or loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A CA certificate could not be built or reloaded.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// A JWT signing key could not be set up.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// The stored journal does not parse or breaks its invariants.
    #[error("CA journal is corrupt: {0}")]
    JournalCorrupt(String),
    /// The stored journal belongs to another trust domain than the configured one.
    #[error("CA journal is for trust domain {journal}, but the server is configured for {config}")]
    TrustDomainMismatch {
        /// The journal's trust domain.
        journal: TrustDomain,
        /// The configured one.
        config: TrustDomain,
    },
    /// A key named by the journal is not in the key manager.
    #[error("key {key_id:?} named by the CA journal is missing from the key manager")]
    MissingKey {
        /// The key's ID.
        key_id: String,
    },
    /// A key in the key manager is not the one the journal recorded.
    #[error("key {key_id:?} does not match the public key recorded in the CA journal")]
    KeyMismatch {
        /// The key's ID.
        key_id: String,
    },
}

/// The CA settings of a server (SPIRE's `ca_key_type`, `ca_ttl`, `ca_subject`,
/// `default_x509_svid_ttl`, `default_jwt_svid_ttl`, `UpstreamAuthority "disk"`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaConfig {
    /// The trust domain the CA issues for.
    pub trust_domain: TrustDomain,
    /// Key type of the X.509 CA keys (`ca_key_type`, default `ec-p256`).
    pub key_type: KeyType,
    /// Key type of the JWT signing keys (`jwt_key_type`); `key_type` when `None`.
    pub jwt_key_type: Option<KeyType>,
    /// Lifetime of each X.509 CA and JWT signing key (`ca_ttl`, default 24 h).
    pub ca_ttl: Duration,
    /// Default X509-SVID lifetime (default 1 h).
    pub x509_svid_ttl: Duration,
    /// Default JWT-SVID lifetime (default 5 min).
    pub jwt_svid_ttl: Duration,
    /// Subject of the CA certificates (default C=US, O=SPIFFE).
    pub subject: Subject,
    /// The upstream CA; the CA is self-signed when `None`.
    pub upstream: Option<UpstreamDiskConfig>,
    /// Which keys CSRs may carry.
    pub csr_key_policy: CsrKeyPolicy,
}

impl CaConfig {
    /// SPIRE's defaults for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            key_type: KeyType::default(),
            jwt_key_type: None,
            ca_ttl: DEFAULT_CA_TTL,
            x509_svid_ttl: DEFAULT_X509_SVID_TTL,
            jwt_svid_ttl: DEFAULT_JWT_SVID_TTL,
            subject: Subject::spire_ca_default(),
            upstream: None,
            csr_key_policy: CsrKeyPolicy::default(),
        }
    }
}

/// The signers of the active slot.
#[derive(Debug)]
pub struct ActiveCa {
    slot: SlotId,
    x509_ca: X509Ca,
    jwt_signer: JwtSigner,
}

impl ActiveCa {
    /// Which slot is active.
    pub fn slot(&self) -> SlotId {
        self.slot
    }

    /// The X.509 CA that mints X509-SVIDs.
    pub fn x509_ca(&self) -> &X509Ca {
        &self.x509_ca
    }

    /// The key that signs JWT-SVIDs.
    pub fn jwt_signer(&self) -> &JwtSigner {
        &self.jwt_signer
    }
}

/// Owns the CA slots: starts from the stored journal, rotates, and hands out the active
/// signers. Share it as `Arc<CaManager>`.
#[derive(Debug)]
pub struct CaManager {
    config: CaConfig,
    keys: Arc<dyn KeyManager>,
    storage: Arc<dyn CaStorage>,
    journal: tokio::sync::Mutex<Journal>,
    current: RwLock<Arc<ActiveCa>>,
    bundle: RwLock<Option<Bundle>>,
}

impl CaManager {
    /// Loads the journal and reuses its active slot (keys fetched by ID) so a restart keeps the
    /// same CA; creates and activates a slot when there is none that can sign. The active and
    /// prepared slots' authorities are (re-)appended to the bundle.
    pub async fn start(
        config: CaConfig,
        keys: Arc<dyn KeyManager>,
        storage: Arc<dyn CaStorage>,
        now: UnixTime,
    ) -> Result<Self, CaManagerError> {
        let mut journal = match storage.load_journal().await? {
            Some(bytes) => Journal::from_json(&bytes)?,
            None => Journal::new(config.trust_domain.clone()),
        };
        if journal.trust_domain != config.trust_domain {
            return Err(CaManagerError::TrustDomainMismatch {
                journal: journal.trust_domain,
                config: config.trust_domain,
            });
        }
        let steps = Steps {
            config: &config,
            keys: keys.as_ref(),
            storage: storage.as_ref(),
        };
        let mut current = None;
        if let Some(active) = journal.active().filter(|r| r.can_sign_at(now)).cloned() {
            match steps.load(&active) {
                Ok(ca) => current = Some(Arc::new(ca)),
                Err(error) => {
                    warn!(slot = ?active.slot, %error, "active CA slot is unusable; replacing it");
                    if let Some(record) = journal.slot_mut(active.slot) {
                        record.status = SlotStatus::Old;
                    }
                }
            }
        }
        let mut bundle = None;
        for record in journal.slots.iter().filter(|r| r.status != SlotStatus::Old) {
            bundle = Some(steps.publish(record).await?);
        }
        for _ in 0..MAX_STEPS_PER_ROTATION {
            if current.is_some() {
                break;
            }
            let step = next_step(&journal, now);
            if let Some(activated) = steps.apply(step, &mut journal, &mut bundle, now).await? {
                current = Some(activated);
            }
        }
        let current = match current {
            Some(current) => current,
            None => Arc::new(steps.load(journal.active().ok_or_else(|| {
                CaManagerError::JournalCorrupt("no active slot after bootstrap".to_owned())
            })?)?),
        };
        Ok(Self {
            config,
            keys,
            storage,
            journal: tokio::sync::Mutex::new(journal),
            current: RwLock::new(current),
            bundle: RwLock::new(bundle),
        })
    }

    /// Advances the rotation at `now` until nothing is left to do; returns the steps carried
    /// out. (Activating a prepared slot whose keys turn out unusable retires that slot instead,
    /// and the next step prepares it again.)
    pub async fn rotate(&self, now: UnixTime) -> Result<Vec<RotationStep>, CaManagerError> {
        let mut journal = self.journal.lock().await;
        let steps = Steps {
            config: &self.config,
            keys: self.keys.as_ref(),
            storage: self.storage.as_ref(),
        };
        let mut taken = Vec::new();
        let mut bundle = None;
        for _ in 0..MAX_STEPS_PER_ROTATION {
            let step = next_step(&journal, now);
            if step == RotationStep::Idle {
                break;
            }
            let activated = steps.apply(step, &mut journal, &mut bundle, now).await;
            if let Some(bundle) = bundle.take() {
                *self.bundle.write().unwrap_or_else(PoisonError::into_inner) = Some(bundle);
            }
            if let Some(activated) = activated? {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = activated;
            }
            taken.push(step);
        }
        Ok(taken)
    }

    /// The active slot's signers.
    pub fn current(&self) -> Arc<ActiveCa> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of the journal.
    pub async fn journal(&self) -> Journal {
        self.journal.lock().await.clone()
    }

    /// The bundle as the storage returned it after this manager's last append.
    pub fn bundle(&self) -> Option<Bundle> {
        self.bundle
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The configuration.
    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    /// Mints an X509-SVID with the active CA (see [`X509Ca::mint_x509_svid`]).
    pub fn mint_x509_svid(
        &self,
        csr_der: &[u8],
        params: &X509SvidParams,
        now: UnixTime,
    ) -> Result<IssuedChain, CaError> {
        self.current()
            .x509_ca()
            .mint_x509_svid(csr_der, params, now)
    }

    /// Mints a JWT-SVID with the active signing key; `ttl` defaults to the configured one.
    pub fn mint_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        ttl: Option<Duration>,
        now: UnixTime,
    ) -> Result<JwtSvid, JwtError> {
        self.current().jwt_signer().mint_jwt_svid(
            spiffe_id,
            audience,
            ttl.unwrap_or(self.config.jwt_svid_ttl),
            now,
        )
    }
}
