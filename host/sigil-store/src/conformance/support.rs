//! Builders and assertions shared by the cases.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use sigil_types::{
    AttestedAgent, Bundle, JwtAuthority, RegistrationEntry, Selector, SpiffeId, TrustDomain,
    UnixTime, X509Authority,
};

use crate::{DataStore, EntryFilter, Error, ObjectKind, PageRequest};

/// `spiffe://example.org<path>`.
pub fn id(path: &str) -> SpiffeId {
    format!("spiffe://example.org{path}")
        .parse()
        .expect("test SPIFFE ID")
}

/// A selector from `type:value`.
pub fn sel(s: &str) -> Selector {
    s.parse().expect("test selector")
}

/// A trust domain.
pub fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).expect("test trust domain")
}

/// An entry `spiffe://example.org<path>` under the agent `/agent/<parent>` with these
/// selectors.
pub fn entry(path: &str, parent: &str, selectors: &[&str]) -> RegistrationEntry {
    RegistrationEntry::new(
        id(path),
        id(&format!("/agent/{parent}")),
        selectors.iter().map(|s| sel(s)).collect(),
    )
}

/// An attested agent with these selectors.
pub fn agent(name: &str, attestation_type: &str, selectors: &[&str]) -> AttestedAgent {
    AttestedAgent {
        spiffe_id: id(&format!("/spire/agent/{attestation_type}/{name}")),
        attestation_type: attestation_type.to_owned(),
        cert_serial_number: "1".into(),
        cert_not_after: 2_000_000_000,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        selectors: selectors.iter().map(|s| sel(s)).collect(),
        banned: false,
        can_reattest: false,
        agent_version: String::new(),
    }
}

/// A self-signed CA certificate (DER) valid until 1 January of `not_after_year`.
pub fn ca_cert(not_after_year: i32) -> Vec<u8> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("certificate params");
    params.not_before = rcgen::date_time_ymd(1990, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
    let key = KeyPair::generate().expect("key pair");
    params
        .self_signed(&key)
        .expect("self-signed")
        .der()
        .to_vec()
}

/// 1 January of `year`, 00:00 UTC, in Unix seconds.
pub fn jan1(year: i32) -> UnixTime {
    rcgen::date_time_ymd(year, 1, 1).unix_timestamp()
}

/// A JWT authority with a fresh P-256 key.
pub fn jwt_authority(key_id: &str, expires_at: UnixTime) -> JwtAuthority {
    let key = KeyPair::generate().expect("key pair");
    JwtAuthority {
        key_id: key_id.to_owned(),
        public_key_der: key.subject_public_key_info(),
        expires_at,
        tainted: false,
    }
}

/// A bundle of `trust_domain` with these X.509 authorities.
pub fn bundle(trust_domain: &str, certs: &[&[u8]]) -> Bundle {
    let mut bundle = Bundle::new(td(trust_domain));
    bundle.x509_authorities = certs
        .iter()
        .map(|der| X509Authority {
            der: der.to_vec(),
            tainted: false,
        })
        .collect();
    bundle
}

/// Asserts `InvalidArgument` naming `field`.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>, field: &str) {
    match result {
        Err(Error::InvalidArgument { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidArgument for {field:?}, got {other:?}"),
    }
}

/// Asserts `NotFound` of `kind`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, kind: ObjectKind) {
    match result {
        Err(Error::NotFound { kind: k, .. }) if k == kind => {}
        other => panic!("expected NotFound for {kind}, got {other:?}"),
    }
}

/// Asserts `AlreadyExists` of `kind`.
#[track_caller]
pub fn assert_already_exists<T: std::fmt::Debug>(result: Result<T, Error>, kind: ObjectKind) {
    match result {
        Err(Error::AlreadyExists { kind: k, .. }) if k == kind => {}
        other => panic!("expected AlreadyExists for {kind}, got {other:?}"),
    }
}

/// Asserts that an entry create was refused as a duplicate of `existing`.
#[track_caller]
pub fn assert_duplicate_of<T: std::fmt::Debug>(
    result: Result<T, Error>,
    existing: &RegistrationEntry,
) {
    match result {
        Err(Error::AlreadyExists {
            kind: ObjectKind::Entry,
            key,
            existing_entry: Some(found),
        }) => {
            assert_eq!(*found, *existing, "AlreadyExists carries the stored entry");
            assert_eq!(key, existing.id.as_str());
        }
        other => panic!("expected AlreadyExists carrying {existing:?}, got {other:?}"),
    }
}

/// Every entry matching `filter`, following pages of `page_size`.
pub async fn list_all_entries(
    store: &Arc<dyn DataStore>,
    filter: &EntryFilter,
    page_size: u32,
) -> Vec<RegistrationEntry> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(page_size);
    loop {
        let result = store
            .list_entries(filter, Some(&page))
            .await
            .expect("list entries");
        assert!(result.items.len() <= page_size as usize, "page is too long");
        out.extend(result.items);
        match result.next_token {
            Some(token) => page.token = Some(token),
            None => return out,
        }
    }
}

/// The SPIFFE ID paths (after the trust domain) of `entries`, sorted.
pub fn paths(entries: &[RegistrationEntry]) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .map(|e| e.spiffe_id.path().to_owned())
        .collect();
    out.sort();
    out
}
