//! CA rotation with two slots, A and B, as SPIRE does it. Sans-I/O: the journal is plain data
//! and [`next_step`] decides, from the journal and the time alone, what to do next.
//!
//! Each slot holds an X.509 CA and a JWT signing key with the same lifetime. A slot is
//! *prepared* when the active one has half of its lifetime left: its certificate (or upstream
//! roots) and JWT key are appended to the bundle before the slot is recorded, so that by the
//! time it signs anything, every peer has had time to fetch the bundle that trusts it. It is
//! *activated* when the active one has a sixth left; the previous active slot becomes *old*.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigil_types::{TrustDomain, UnixTime};

use crate::CaManagerError;

/// One of the two CA slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SlotId {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl SlotId {
    /// The other slot.
    pub fn other(self) -> Self {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }

    /// The key manager ID of this slot's X.509 CA key (SPIRE's naming).
    pub fn x509_key_id(self) -> &'static str {
        match self {
            SlotId::A => "x509-CA-A",
            SlotId::B => "x509-CA-B",
        }
    }

    /// The key manager ID of this slot's JWT signing key (SPIRE's naming).
    pub fn jwt_key_id(self) -> &'static str {
        match self {
            SlotId::A => "JWT-Signer-A",
            SlotId::B => "JWT-Signer-B",
        }
    }
}

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// In the bundle, not signing yet.
    Prepared,
    /// Signing.
    Active,
    /// Retired; still in the bundle until it expires.
    Old,
}

/// A slot's X.509 CA, as the journal remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct X509CaRecord {
    /// The key manager ID of the CA key.
    pub key_id: String,
    /// The CA certificate.
    #[serde(with = "b64")]
    pub cert_der: Vec<u8>,
    /// Upstream intermediates served after the CA certificate.
    #[serde(with = "b64_list", default)]
    pub upstream_chain: Vec<Vec<u8>>,
    /// Upstream roots; empty for a self-signed CA.
    #[serde(with = "b64_list", default)]
    pub upstream_roots: Vec<Vec<u8>>,
    /// The certificate's notBefore.
    pub not_before: UnixTime,
    /// The certificate's notAfter.
    pub not_after: UnixTime,
}

/// A slot's JWT signing key, as the journal remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JwtKeyRecord {
    /// The key manager ID of the signing key.
    pub key_id: String,
    /// The `kid` published in the bundle.
    pub kid: String,
    /// The public key, SPKI DER.
    #[serde(with = "b64")]
    pub public_key_der: Vec<u8>,
    /// When the key stops being trusted.
    pub expires_at: UnixTime,
}

/// One slot of the journal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotRecord {
    /// Which slot.
    pub slot: SlotId,
    /// Its state.
    pub status: SlotStatus,
    /// Its X.509 CA.
    pub x509_ca: X509CaRecord,
    /// Its JWT signing key.
    pub jwt_key: JwtKeyRecord,
}

impl SlotRecord {
    /// Whether both the CA and the JWT key can still sign at `now`.
    pub fn can_sign_at(&self, now: UnixTime) -> bool {
        now < self.x509_ca.not_after && now < self.jwt_key.expires_at
    }
}

/// The persistent rotation state: at most one record per slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    /// Format version, [`Journal::VERSION`].
    pub version: u32,
    /// The trust domain the CAs are for; a journal is never reused for another.
    pub trust_domain: TrustDomain,
    /// The slots, in no particular order.
    pub slots: Vec<SlotRecord>,
}

impl Journal {
    /// The journal format this code writes and reads.
    pub const VERSION: u32 = 1;

    /// An empty journal.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            version: Self::VERSION,
            trust_domain,
            slots: Vec::new(),
        }
    }

    /// A slot's record.
    pub fn slot(&self, slot: SlotId) -> Option<&SlotRecord> {
        self.slots.iter().find(|r| r.slot == slot)
    }

    /// A slot's record, mutable.
    pub fn slot_mut(&mut self, slot: SlotId) -> Option<&mut SlotRecord> {
        self.slots.iter_mut().find(|r| r.slot == slot)
    }

    /// The active slot.
    pub fn active(&self) -> Option<&SlotRecord> {
        self.slots.iter().find(|r| r.status == SlotStatus::Active)
    }

    /// The prepared slot.
    pub fn prepared(&self) -> Option<&SlotRecord> {
        self.slots.iter().find(|r| r.status == SlotStatus::Prepared)
    }

    /// Stores `record`, replacing the slot's previous record.
    pub fn set_slot(&mut self, record: SlotRecord) {
        self.slots.retain(|r| r.slot != record.slot);
        self.slots.push(record);
        self.slots.sort_by_key(|r| r.slot == SlotId::B);
    }

    /// The journal as JSON, for [`crate::CaStorage::save_journal`].
    pub fn to_json(&self) -> Result<Vec<u8>, CaManagerError> {
        serde_json::to_vec_pretty(self).map_err(|e| CaManagerError::JournalCorrupt(e.to_string()))
    }

    /// Parses and checks a journal: known version, at most one record per slot, at most one
    /// active and one prepared slot.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CaManagerError> {
        let corrupt = |reason: String| CaManagerError::JournalCorrupt(reason);
        let journal: Journal = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if journal.version != Self::VERSION {
            return Err(corrupt(format!("unknown version {}", journal.version)));
        }
        for slot in [SlotId::A, SlotId::B] {
            if journal.slots.iter().filter(|r| r.slot == slot).count() > 1 {
                return Err(corrupt(format!("slot {slot:?} appears twice")));
            }
        }
        for status in [SlotStatus::Active, SlotStatus::Prepared] {
            if journal.slots.iter().filter(|r| r.status == status).count() > 1 {
                return Err(corrupt(format!("more than one {status:?} slot")));
            }
        }
        Ok(journal)
    }
}

/// What the CA manager should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// No slot can sign: prepare this slot and activate it at once.
    Bootstrap(SlotId),
    /// Prepare this slot: new keys and CA, published in the bundle.
    Prepare(SlotId),
    /// Make this prepared slot the active one; the active one becomes old.
    Activate(SlotId),
    /// Nothing to do.
    Idle,
}

/// When a slot with this validity should have its successor prepared: half its lifetime left.
pub fn preparation_threshold(not_before: UnixTime, not_after: UnixTime) -> UnixTime {
    not_after - (not_after - not_before) / 2
}

/// When a slot with this validity should be replaced by its successor: a sixth of its
/// lifetime left.
pub fn activation_threshold(not_before: UnixTime, not_after: UnixTime) -> UnixTime {
    not_after - (not_after - not_before) / 6
}

/// Decides the next rotation step at `now`. Pure: no I/O, no clock.
pub fn next_step(journal: &Journal, now: UnixTime) -> RotationStep {
    let Some(active) = journal.active().filter(|r| r.can_sign_at(now)) else {
        if let Some(prepared) = journal.prepared().filter(|r| r.can_sign_at(now)) {
            return RotationStep::Activate(prepared.slot);
        }
        let slot = journal.active().map_or(SlotId::A, |r| r.slot.other());
        return RotationStep::Bootstrap(slot);
    };
    let next = active.slot.other();
    let prepared = journal
        .slot(next)
        .is_some_and(|r| r.status == SlotStatus::Prepared && r.can_sign_at(now));
    let (not_before, not_after) = (active.x509_ca.not_before, active.x509_ca.not_after);
    if now >= activation_threshold(not_before, not_after) {
        return if prepared {
            RotationStep::Activate(next)
        } else {
            RotationStep::Prepare(next)
        };
    }
    if now >= preparation_threshold(not_before, not_after) && !prepared {
        return RotationStep::Prepare(next);
    }
    RotationStep::Idle
}

mod b64 {
    use super::{Engine, STANDARD};

    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

mod b64_list {
    use super::{Engine, STANDARD};

    pub(super) fn serialize<S: serde::Serializer>(
        list: &[Vec<u8>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| STANDARD.encode(b)))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let list: Vec<String> = serde::Deserialize::deserialize(d)?;
        list.into_iter()
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests;
