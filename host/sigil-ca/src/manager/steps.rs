//! The I/O side of the rotation steps: generating keys, building CAs, publishing to the bundle,
//! writing the journal, and reloading a slot's signers.

use std::sync::Arc;

use sigil_types::{Bundle, UnixTime, X509Authority};
use tracing::{info, warn};

use super::{ActiveCa, CaConfig, CaManagerError};
use crate::KeyManager;
use crate::jwt::{JwtSigner, generate_kid};
use crate::rotation::{
    Journal, JwtKeyRecord, RotationStep, SlotId, SlotRecord, SlotStatus, X509CaRecord,
};
use crate::storage::CaStorage;
use crate::x509::{UpstreamCa, X509Ca};

/// The I/O side of a rotation step, borrowed from the manager for one call.
pub(super) struct Steps<'a> {
    pub(super) config: &'a CaConfig,
    pub(super) keys: &'a dyn KeyManager,
    pub(super) storage: &'a dyn CaStorage,
}

impl Steps<'_> {
    /// Carries out `step`; returns the new signers when a slot was activated.
    pub(super) async fn apply(
        &self,
        step: RotationStep,
        journal: &mut Journal,
        bundle: &mut Option<Bundle>,
        now: UnixTime,
    ) -> Result<Option<Arc<ActiveCa>>, CaManagerError> {
        match step {
            RotationStep::Idle => Ok(None),
            RotationStep::Prepare(slot) => {
                self.prepare(slot, journal, bundle, now).await?;
                Ok(None)
            }
            RotationStep::Activate(slot) => self.activate(slot, journal).await,
            RotationStep::Bootstrap(slot) => {
                self.prepare(slot, journal, bundle, now).await?;
                self.activate(slot, journal).await
            }
        }
    }

    /// New keys and CA for `slot`, appended to the bundle, then recorded as prepared.
    async fn prepare(
        &self,
        slot: SlotId,
        journal: &mut Journal,
        bundle: &mut Option<Bundle>,
        now: UnixTime,
    ) -> Result<(), CaManagerError> {
        let config = self.config;
        let x509_key = self
            .keys
            .generate_key(slot.x509_key_id(), config.key_type)?;
        let jwt_key_type = config.jwt_key_type.unwrap_or(config.key_type);
        let jwt_key = self.keys.generate_key(slot.jwt_key_id(), jwt_key_type)?;
        let ca = match &config.upstream {
            None => X509Ca::self_signed(
                &config.trust_domain,
                x509_key,
                &config.subject,
                config.ca_ttl,
                now,
            )?,
            Some(upstream) => X509Ca::signed_by_upstream(
                &config.trust_domain,
                x509_key,
                &config.subject,
                config.ca_ttl,
                &UpstreamCa::load_disk(upstream, now)?,
                now,
            )?,
        };
        let signer = JwtSigner::new(jwt_key, generate_kid()?, ca.not_after())?;
        let record = SlotRecord {
            slot,
            status: SlotStatus::Prepared,
            x509_ca: X509CaRecord {
                key_id: ca.key_id().to_owned(),
                cert_der: ca.cert_der().to_vec(),
                upstream_chain: ca.upstream_chain().to_vec(),
                upstream_roots: if ca.is_self_signed() {
                    Vec::new()
                } else {
                    ca.trust_anchors().to_vec()
                },
                not_before: ca.not_before(),
                not_after: ca.not_after(),
            },
            jwt_key: JwtKeyRecord {
                key_id: signer.key_id().to_owned(),
                kid: signer.kid().to_owned(),
                public_key_der: signer.authority().public_key_der,
                expires_at: signer.expires_at(),
            },
        };
        // Bundle first: nothing may ever be signed by a key the bundle does not hold yet.
        *bundle = Some(self.publish(&record).await?);
        journal.set_slot(record);
        self.storage.save_journal(&journal.to_json()?).await?;
        info!(
            ?slot,
            not_after = ca.not_after(),
            kid = signer.kid(),
            "prepared CA slot"
        );
        Ok(())
    }

    async fn activate(
        &self,
        slot: SlotId,
        journal: &mut Journal,
    ) -> Result<Option<Arc<ActiveCa>>, CaManagerError> {
        let Some(record) = journal.slot(slot).cloned() else {
            return Ok(None);
        };
        let ca = match self.load(&record) {
            Ok(ca) => ca,
            Err(error) => {
                // Retire the slot; the next step prepares it again.
                warn!(?slot, %error, "prepared CA slot is unusable; preparing it again");
                if let Some(record) = journal.slot_mut(slot) {
                    record.status = SlotStatus::Old;
                }
                self.storage.save_journal(&journal.to_json()?).await?;
                return Ok(None);
            }
        };
        for other in &mut journal.slots {
            other.status = if other.slot == slot {
                SlotStatus::Active
            } else {
                SlotStatus::Old
            };
        }
        self.storage.save_journal(&journal.to_json()?).await?;
        info!(?slot, kid = ca.jwt_signer.kid(), "activated CA slot");
        Ok(Some(Arc::new(ca)))
    }

    /// Appends a slot's trust anchors and JWT key to the stored bundle.
    pub(super) async fn publish(&self, record: &SlotRecord) -> Result<Bundle, CaManagerError> {
        let mut bundle = Bundle::new(self.config.trust_domain.clone());
        let anchors = if record.x509_ca.upstream_roots.is_empty() {
            std::slice::from_ref(&record.x509_ca.cert_der)
        } else {
            record.x509_ca.upstream_roots.as_slice()
        };
        bundle.x509_authorities = anchors
            .iter()
            .map(|der| X509Authority {
                der: der.clone(),
                tainted: false,
            })
            .collect();
        bundle.jwt_authorities = vec![sigil_types::JwtAuthority {
            key_id: record.jwt_key.kid.clone(),
            public_key_der: record.jwt_key.public_key_der.clone(),
            expires_at: record.jwt_key.expires_at,
            tainted: false,
        }];
        Ok(self.storage.append_bundle(bundle).await?)
    }

    /// Rebuilds a slot's signers from the journal record and the key manager.
    pub(super) fn load(&self, record: &SlotRecord) -> Result<ActiveCa, CaManagerError> {
        let key = |id: &str| {
            self.keys
                .key(id)?
                .ok_or_else(|| CaManagerError::MissingKey {
                    key_id: id.to_owned(),
                })
        };
        let x509_ca = X509Ca::from_certificate(
            &self.config.trust_domain,
            record.x509_ca.cert_der.clone(),
            record.x509_ca.upstream_chain.clone(),
            record.x509_ca.upstream_roots.clone(),
            key(&record.x509_ca.key_id)?,
        )?
        .with_default_svid_ttl(self.config.x509_svid_ttl)
        .with_csr_key_policy(self.config.csr_key_policy.clone());
        let jwt_key = key(&record.jwt_key.key_id)?;
        if jwt_key.public_key_der() != record.jwt_key.public_key_der.as_slice() {
            return Err(CaManagerError::KeyMismatch {
                key_id: record.jwt_key.key_id.clone(),
            });
        }
        let jwt_signer = JwtSigner::new(jwt_key, &record.jwt_key.kid, record.jwt_key.expires_at)?;
        Ok(ActiveCa {
            slot: record.slot,
            x509_ca,
            jwt_signer,
        })
    }
}
