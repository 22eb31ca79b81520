use std::sync::Arc;

use sigil_types::{PrivateKeyDer, RegistrationEntry, TrustDomain, X509Svid};

use super::*;
use crate::cache::CachedSvid;

fn td() -> TrustDomain {
    "example.org".parse().expect("td")
}

fn id(path: &str) -> SpiffeId {
    SpiffeId::new(&td(), path).expect("id")
}

fn sel(value: &str) -> Selector {
    Selector::new("unix", value).expect("selector")
}

/// A snapshot with one entry (and a fake SVID) per `(path, selectors, admin)`.
fn snapshot(entries: &[(&str, &[&str], bool)]) -> Snapshot {
    let mut snapshot = Snapshot {
        bundle: Some(Bundle::new(td())),
        ..Snapshot::default()
    };
    for (path, selectors, admin) in entries {
        let mut entry = RegistrationEntry::new(
            id(path),
            id("/spire/agent/x"),
            selectors.iter().map(|s| sel(s)).collect(),
        );
        entry.admin = *admin;
        let svid = X509Svid {
            spiffe_id: entry.spiffe_id.clone(),
            cert_chain: vec![path.as_bytes().to_vec()],
            private_key: PrivateKeyDer::new(b"key".to_vec()),
            expires_at: 100,
            hint: "h".into(),
        };
        snapshot.svids.insert(
            entry.id.as_str().to_owned(),
            Arc::new(CachedSvid {
                svid,
                renew_at: 50,
                revision: 0,
            }),
        );
        snapshot
            .entries
            .insert(entry.id.as_str().to_owned(), Arc::new(entry));
    }
    snapshot
}

#[test]
fn only_a_caller_with_a_listed_identity_is_a_delegate() {
    let snapshot = snapshot(&[
        ("/delegate", &["uid:0"], false),
        ("/other", &["uid:1"], false),
    ]);
    let delegates: HashSet<SpiffeId> = [id("/delegate")].into();
    let with = |values: &[&str]| values.iter().map(|v| sel(v)).collect::<BTreeSet<_>>();
    assert!(authorized(&delegates, &snapshot, &with(&["uid:0", "gid:0"])).is_ok());
    assert!(matches!(
        authorized(&delegates, &snapshot, &with(&["uid:1"])),
        Err(DelegatedError::NotAuthorized)
    ));
    assert!(matches!(
        authorized(&delegates, &snapshot, &with(&["uid:2"])),
        Err(DelegatedError::NoIdentityIssued)
    ));
}

#[test]
fn a_workload_gets_the_entries_its_selectors_cover_but_no_admin_svid() {
    let snapshot = snapshot(&[
        ("/a", &["uid:4242"], false),
        ("/b", &["uid:4242", "gid:7"], false),
        ("/admin", &["uid:4242"], true),
    ]);
    let only_uid: BTreeSet<Selector> = [sel("uid:4242")].into();
    let response = x509_svids(&snapshot, &only_uid);
    let ids: Vec<String> = response
        .x509_svids
        .iter()
        .filter_map(|s| s.x509_svid.as_ref()?.id.as_ref().map(|i| i.path.clone()))
        .collect();
    assert_eq!(ids, ["/a"]);
    assert_eq!(response.x509_svids[0].x509_svid_key, b"key");

    let both: BTreeSet<Selector> = [sel("uid:4242"), sel("gid:7")].into();
    assert_eq!(x509_svids(&snapshot, &both).x509_svids.len(), 2);
}
