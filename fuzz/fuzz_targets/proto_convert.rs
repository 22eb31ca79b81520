//! Protobuf messages from peers (agents, admin clients, SPIRE tooling) → sigil-types domain
//! values. Property for every message kind: a message the conversion accepts gives a domain
//! value that converts to a message that is accepted again and gives an equal domain value,
//! also after encoding to protobuf bytes and decoding; and converting that message back gives
//! the same message (domain → proto → domain is stable).

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sigil_proto::spire::api::types as wire;
use sigil_types::{
    AttestedAgent, Bundle, FederationRelationship, JoinToken, RegistrationEntry, Selector, SpiffeId,
};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => round_trip::<wire::Entry, RegistrationEntry>(bytes),
        1 => round_trip::<wire::Bundle, Bundle>(bytes),
        2 => round_trip::<wire::Agent, AttestedAgent>(bytes),
        3 => round_trip::<wire::JoinToken, JoinToken>(bytes),
        4 => round_trip::<wire::FederationRelationship, FederationRelationship>(bytes),
        5 => round_trip::<wire::Spiffeid, SpiffeId>(bytes),
        _ => round_trip::<wire::Selector, Selector>(bytes),
    }
});

fn round_trip<W, D>(bytes: &[u8])
where
    W: Message + Default + PartialEq + Debug,
    D: PartialEq,
    for<'a> D: TryFrom<&'a W>,
    for<'a> <D as TryFrom<&'a W>>::Error: Debug,
    for<'a> W: From<&'a D>,
{
    let Ok(message) = W::decode(bytes) else {
        return;
    };
    let Ok(domain) = D::try_from(&message) else {
        return;
    };
    let written = W::from(&domain);
    let again = match D::try_from(&written) {
        Ok(again) => again,
        Err(e) => panic!("a converted value's own message is refused: {e:?}\n{written:?}"),
    };
    assert!(
        again == domain,
        "proto → domain → proto → domain changed the value"
    );
    assert_eq!(W::from(&again), written, "domain → proto is not stable");

    let decoded = W::decode(written.encode_to_vec().as_slice()).expect("our encoding decodes");
    assert_eq!(decoded, written);
    let from_bytes = D::try_from(&decoded).map_err(|e| format!("{e:?}"));
    assert!(
        from_bytes.is_ok_and(|d| d == domain),
        "the encoded message converts differently"
    );
}
