//! The rotation decision, as a pure function of the journal and the time.

use super::*;
use crate::test_support::td;

const NB: UnixTime = 1_000_000;
const LIFETIME: UnixTime = 86_400;
const NA: UnixTime = NB + LIFETIME;

fn record(slot: SlotId, status: SlotStatus, not_before: UnixTime) -> SlotRecord {
    SlotRecord {
        slot,
        status,
        x509_ca: X509CaRecord {
            key_id: slot.x509_key_id().to_owned(),
            cert_der: vec![1, 2, 3],
            upstream_chain: vec![],
            upstream_roots: vec![],
            not_before,
            not_after: not_before + LIFETIME,
        },
        jwt_key: JwtKeyRecord {
            key_id: slot.jwt_key_id().to_owned(),
            kid: format!("kid-{slot:?}"),
            public_key_der: vec![4, 5, 6],
            expires_at: not_before + LIFETIME,
        },
    }
}

fn journal(records: Vec<SlotRecord>) -> Journal {
    let mut journal = Journal::new(td());
    for r in records {
        journal.set_slot(r);
    }
    journal
}

#[test]
fn thresholds_are_a_half_and_a_sixth_of_the_lifetime_left() {
    assert_eq!(preparation_threshold(NB, NA), NB + 43_200);
    assert_eq!(activation_threshold(NB, NA), NA - 14_400);
}

#[test]
fn empty_journal_bootstraps_slot_a() {
    assert_eq!(
        next_step(&journal(vec![]), NB),
        RotationStep::Bootstrap(SlotId::A)
    );
}

#[test]
fn fresh_active_slot_is_left_alone_until_half_its_lifetime() {
    let j = journal(vec![record(SlotId::A, SlotStatus::Active, NB)]);
    assert_eq!(next_step(&j, NB), RotationStep::Idle);
    let prepare_at = preparation_threshold(NB, NA);
    assert_eq!(next_step(&j, prepare_at - 1), RotationStep::Idle);
    assert_eq!(next_step(&j, prepare_at), RotationStep::Prepare(SlotId::B));
}

#[test]
fn prepared_slot_waits_for_a_sixth_then_activates() {
    let j = journal(vec![
        record(SlotId::A, SlotStatus::Active, NB),
        record(SlotId::B, SlotStatus::Prepared, NB + 43_200),
    ]);
    let activate_at = activation_threshold(NB, NA);
    assert_eq!(next_step(&j, NB + 43_201), RotationStep::Idle);
    assert_eq!(next_step(&j, activate_at - 1), RotationStep::Idle);
    assert_eq!(
        next_step(&j, activate_at),
        RotationStep::Activate(SlotId::B)
    );
}

#[test]
fn activation_time_without_a_prepared_slot_prepares_first() {
    let j = journal(vec![
        record(SlotId::A, SlotStatus::Old, NB - LIFETIME),
        record(SlotId::B, SlotStatus::Active, NB),
    ]);
    let activate_at = activation_threshold(NB, NA);
    assert_eq!(next_step(&j, activate_at), RotationStep::Prepare(SlotId::A));
}

#[test]
fn expired_active_slot_hands_over_or_bootstraps() {
    let prepared = journal(vec![
        record(SlotId::A, SlotStatus::Active, NB),
        record(SlotId::B, SlotStatus::Prepared, NB + 43_200),
    ]);
    assert_eq!(next_step(&prepared, NA), RotationStep::Activate(SlotId::B));
    let alone = journal(vec![record(SlotId::A, SlotStatus::Active, NB)]);
    assert_eq!(next_step(&alone, NA), RotationStep::Bootstrap(SlotId::B));
    assert_eq!(next_step(&alone, NA - 1), RotationStep::Prepare(SlotId::B));
}

#[test]
fn expired_prepared_slot_is_prepared_again() {
    let j = journal(vec![
        record(SlotId::A, SlotStatus::Active, NB),
        record(SlotId::B, SlotStatus::Prepared, NB - LIFETIME),
    ]);
    assert_eq!(
        next_step(&j, preparation_threshold(NB, NA)),
        RotationStep::Prepare(SlotId::B)
    );
}

#[test]
fn a_jwt_key_expiring_early_makes_the_slot_unusable() {
    let mut active = record(SlotId::A, SlotStatus::Active, NB);
    active.jwt_key.expires_at = NB + 100;
    let j = journal(vec![active]);
    assert_eq!(next_step(&j, NB + 100), RotationStep::Bootstrap(SlotId::B));
}

#[test]
fn journal_round_trips_through_json() {
    let j = journal(vec![
        record(SlotId::B, SlotStatus::Prepared, NB),
        record(SlotId::A, SlotStatus::Active, NB),
    ]);
    assert_eq!(j.slots[0].slot, SlotId::A, "slots are kept in A, B order");
    let json = j.to_json().unwrap();
    assert_eq!(Journal::from_json(&json).unwrap(), j);
    let text = String::from_utf8(json).unwrap();
    assert!(text.contains("\"status\": \"prepared\""), "{text}");
    assert!(text.contains("\"cert_der\": \"AQID\""), "{text}");
}

#[test]
fn set_slot_replaces_the_previous_record() {
    let mut j = journal(vec![record(SlotId::A, SlotStatus::Old, NB)]);
    j.set_slot(record(SlotId::A, SlotStatus::Prepared, NB + 5));
    assert_eq!(j.slots.len(), 1);
    assert_eq!(j.prepared().unwrap().x509_ca.not_before, NB + 5);
}

#[test]
fn corrupt_journals_are_refused() {
    let mut two_active = journal(vec![
        record(SlotId::A, SlotStatus::Active, NB),
        record(SlotId::B, SlotStatus::Active, NB),
    ]);
    let err = Journal::from_json(&two_active.to_json().unwrap()).unwrap_err();
    assert!(matches!(err, CaManagerError::JournalCorrupt(_)), "{err}");
    two_active.slots[1].slot = SlotId::A;
    two_active.slots[1].status = SlotStatus::Old;
    let err = Journal::from_json(&two_active.to_json().unwrap()).unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    let mut future = journal(vec![]);
    future.version = 2;
    let err = Journal::from_json(&future.to_json().unwrap()).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
    for garbage in [
        &b""[..],
        b"{}",
        b"[1,2]",
        b"{\"version\":1,\"trust_domain\":\"UPPER\",\"slots\":[]}",
    ] {
        assert!(Journal::from_json(garbage).is_err());
    }
}
