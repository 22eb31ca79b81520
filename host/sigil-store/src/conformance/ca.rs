//! The CA manager on this datastore: rotation through prepare → activate → old, with a server
//! restart (store reopened, keys reloaded from disk) between each step. Time is injected, so
//! the clock stands still between steps exactly where the case puts it.

use std::sync::Arc;
use std::time::Duration;

use sigil_ca::rotation::{SlotId, SlotStatus};
use sigil_ca::{CaConfig, CaManager, DiskKeyManager, KeyManager, X509SvidParams};
use sigil_types::{SpiffeId, TrustDomain, UnixTime};

use super::Fixture;
use crate::{DataStore, DataStoreCaStorage};

const T0: UnixTime = 1_900_000_000;
const HOUR: i64 = 3600;

/// Prepare at ½ of the CA's life, the prepared authorities in the stored bundle before they
/// sign anything, activate at ⅙ left, the old slot retired; and every restart in between
/// keeps the same active CA.
pub async fn ca_rotation_survives_restarts(fixture: Arc<dyn Fixture>) {
    let keys_dir = tempfile::tempdir().expect("key directory");
    let td = TrustDomain::new("example.org").expect("trust domain");
    let mut config = CaConfig::new(td.clone());
    config.ca_ttl = Duration::from_secs(24 * HOUR as u64);
    let start = |store: Arc<dyn DataStore>, now: UnixTime| {
        let config = config.clone();
        let keys: Arc<dyn KeyManager> =
            Arc::new(DiskKeyManager::open(keys_dir.path()).expect("open key dir"));
        async move {
            let storage = Arc::new(DataStoreCaStorage::new(store, "server-1"));
            CaManager::start(config, keys, storage, now)
                .await
                .expect("start the CA manager")
        }
    };
    let stored_x509 = |store: Arc<dyn DataStore>| {
        let td = td.clone();
        async move {
            let bundle = store.fetch_bundle(&td).await.expect("fetch bundle");
            let bundle = bundle.expect("the CA published a bundle");
            let x509: Vec<Vec<u8>> = bundle.x509_authorities.into_iter().map(|a| a.der).collect();
            let kids: Vec<String> = bundle
                .jwt_authorities
                .into_iter()
                .map(|a| a.key_id)
                .collect();
            (x509, kids)
        }
    };

    // First start: slot A is created, active, and in the stored bundle.
    let store = fixture.open().await.expect("open");
    let ca = start(store.clone(), T0).await;
    let a = ca.current();
    assert_eq!(a.slot(), SlotId::A);
    let a_cert = a.x509_ca().cert_der().to_vec();
    let a_kid = a.jwt_signer().kid().to_owned();
    let (x509, kids) = stored_x509(store.clone()).await;
    assert_eq!((x509, kids), (vec![a_cert.clone()], vec![a_kid.clone()]));

    // Before half-life nothing happens.
    assert!(ca.rotate(T0 + 11 * HOUR).await.expect("rotate").is_empty());

    // At half-life B is prepared: in the stored bundle, but A still signs.
    let steps = ca.rotate(T0 + 12 * HOUR + 1).await.expect("rotate");
    assert_eq!(steps.len(), 1, "exactly one step (prepare): {steps:?}");
    let journal = ca.journal().await;
    let b = journal.slot(SlotId::B).expect("slot B prepared");
    assert_eq!(b.status, SlotStatus::Prepared);
    let b_cert = b.x509_ca.cert_der.clone();
    let b_kid = b.jwt_key.kid.clone();
    let (x509, kids) = stored_x509(store.clone()).await;
    assert!(
        x509.contains(&b_cert),
        "prepared CA is in the bundle before it signs"
    );
    assert!(
        kids.contains(&b_kid),
        "prepared JWT key is in the bundle before it signs"
    );
    assert_eq!(ca.current().x509_ca().cert_der(), a_cert.as_slice());
    drop((ca, store));

    // Restart with B prepared: A is still the active CA, B still prepared.
    let store = fixture.open().await.expect("reopen");
    let ca = start(store.clone(), T0 + 13 * HOUR).await;
    assert_eq!(ca.current().x509_ca().cert_der(), a_cert.as_slice());
    assert_eq!(ca.current().jwt_signer().kid(), a_kid);
    let journal = ca.journal().await;
    assert_eq!(
        journal.slot(SlotId::B).map(|s| s.status),
        Some(SlotStatus::Prepared)
    );

    // With ⅙ of A's life left, B becomes active and A old.
    let steps = ca.rotate(T0 + 20 * HOUR + 1).await.expect("rotate");
    assert_eq!(steps.len(), 1, "exactly one step (activate): {steps:?}");
    assert_eq!(ca.current().slot(), SlotId::B);
    assert_eq!(ca.current().x509_ca().cert_der(), b_cert.as_slice());
    let journal = ca.journal().await;
    assert_eq!(
        journal.slot(SlotId::A).map(|s| s.status),
        Some(SlotStatus::Old)
    );
    assert_eq!(
        journal.slot(SlotId::B).map(|s| s.status),
        Some(SlotStatus::Active)
    );
    // What B signs chains to a certificate the stored bundle already holds.
    let svid = ca
        .current()
        .x509_ca()
        .mint_x509_svid_with_new_key(
            sigil_ca::KeyType::EcP256,
            &X509SvidParams::new(SpiffeId::new(&td, "/w").expect("id")),
            T0 + 20 * HOUR + 2,
        )
        .expect("mint with B");
    assert_eq!(
        svid.cert_chain.len(),
        1,
        "self-signed CA: the chain is the leaf"
    );
    let (x509, _) = stored_x509(store.clone()).await;
    assert!(x509.contains(&b_cert) && x509.contains(&a_cert));
    drop((ca, store));

    // Restart after activation: B is still the active CA.
    let store = fixture.open().await.expect("reopen");
    let ca = start(store, T0 + 21 * HOUR).await;
    assert_eq!(ca.current().slot(), SlotId::B);
    assert_eq!(ca.current().x509_ca().cert_der(), b_cert.as_slice());
    assert_eq!(ca.current().jwt_signer().kid(), b_kid);
}
