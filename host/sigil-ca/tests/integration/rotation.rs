//! CA rotation end to end: the tokio driver on a paused clock through prepare → activate →
//! old, the bundle-before-signing rule checked at every journal write, and restarts on the
//! same storage and key directory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_ca::rotation::{
    Journal, RotationStep, SlotId, SlotRecord, SlotStatus, activation_threshold,
    preparation_threshold,
};
use sigil_ca::{
    CaConfig, CaManager, CaManagerError, CaStorage, DiskKeyManager, KeyManager, MemoryCaStorage,
    MemoryKeyManager, StorageError, X509SvidParams, run_rotation, validate_jwt_svid,
};
use sigil_clock::TokioClock;
use sigil_types::{Bundle, Clock, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::*;

/// A memory storage that checks, at every journal save, that every prepared or active slot is
/// already trusted by the stored bundle, and logs the order of writes.
#[derive(Debug, Default)]
struct CheckingStorage {
    inner: MemoryCaStorage,
    log: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
}

fn trusted(bundle: &Bundle, record: &SlotRecord) -> bool {
    let anchors = if record.x509_ca.upstream_roots.is_empty() {
        vec![record.x509_ca.cert_der.clone()]
    } else {
        record.x509_ca.upstream_roots.clone()
    };
    anchors
        .iter()
        .all(|a| bundle.x509_authorities.iter().any(|b| &b.der == a))
        && bundle
            .jwt_authorities
            .iter()
            .any(|j| j.key_id == record.jwt_key.kid)
}

#[async_trait::async_trait]
impl CaStorage for CheckingStorage {
    async fn load_journal(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load_journal().await
    }

    async fn save_journal(&self, bytes: &[u8]) -> Result<(), StorageError> {
        let journal = Journal::from_json(bytes).unwrap();
        let bundle = self.inner.bundle().unwrap_or_else(|| Bundle::new(td()));
        for record in &journal.slots {
            if record.status != SlotStatus::Old && !trusted(&bundle, record) {
                self.violations.lock().unwrap().push(format!(
                    "{:?} recorded {:?} before it was in the bundle",
                    record.slot, record.status
                ));
            }
        }
        let states: Vec<String> = journal
            .slots
            .iter()
            .map(|r| format!("{:?}={:?}", r.slot, r.status))
            .collect();
        self.log
            .lock()
            .unwrap()
            .push(format!("save {}", states.join(",")));
        self.inner.save_journal(bytes).await
    }

    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle, StorageError> {
        let kids: Vec<&str> = bundle
            .jwt_authorities
            .iter()
            .map(|j| j.key_id.as_str())
            .collect();
        self.log
            .lock()
            .unwrap()
            .push(format!("append {}", kids.join(",")));
        self.inner.append_bundle(bundle).await
    }
}

fn issuer_of(leaf: &[u8], ca_der: &[u8]) -> bool {
    let (_, leaf) = X509Certificate::from_der(leaf).unwrap();
    let (_, ca) = X509Certificate::from_der(ca_der).unwrap();
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}

fn slot(journal: &Journal, id: SlotId) -> Option<SlotStatus> {
    journal.slot(id).map(|r| r.status)
}

async fn sleep_until_unix(anchor: tokio::time::Instant, t0: UnixTime, target: UnixTime) {
    let offset = u64::try_from(target - t0).unwrap();
    tokio::time::sleep_until(anchor + Duration::from_secs(offset)).await;
}

#[tokio::test(start_paused = true)]
async fn driver_prepares_at_half_activates_at_a_sixth_then_retires() {
    let t0 = now();
    let storage = Arc::new(CheckingStorage::default());
    let keys: Arc<dyn KeyManager> = Arc::new(MemoryKeyManager::new());
    let manager = Arc::new(
        CaManager::start(CaConfig::new(td()), keys, storage.clone(), t0)
            .await
            .unwrap(),
    );
    let a = manager.current();
    assert_eq!(a.slot(), SlotId::A);
    let a_cert = a.x509_ca().cert_der().to_vec();
    let a_kid = a.jwt_signer().kid().to_owned();
    let (nb, na) = (a.x509_ca().not_before(), a.x509_ca().not_after());
    assert_eq!(na - t0, 24 * 3600, "SPIRE's default ca_ttl");
    let prepare_at = preparation_threshold(nb, na);
    let activate_at = activation_threshold(nb, na);

    let anchor = tokio::time::Instant::now();
    let clock = TokioClock::starting_at(t0);
    let driver = tokio::spawn(run_rotation(
        manager.clone(),
        Arc::new(clock),
        Duration::from_secs(10),
    ));
    let params = X509SvidParams::new(id("/workload"));
    let audience = vec!["bank".to_owned()];

    sleep_until_unix(anchor, t0, prepare_at - 30).await;
    assert_eq!(
        slot(&manager.journal().await, SlotId::B),
        None,
        "too early to prepare"
    );

    sleep_until_unix(anchor, t0, prepare_at + 30).await;
    let journal = manager.journal().await;
    assert_eq!(slot(&journal, SlotId::B), Some(SlotStatus::Prepared));
    let b = journal.slot(SlotId::B).unwrap().clone();
    let bundle = storage.inner.bundle().unwrap();
    assert!(
        bundle
            .x509_authorities
            .iter()
            .any(|x| x.der == b.x509_ca.cert_der)
    );
    assert!(
        bundle
            .jwt_authorities
            .iter()
            .any(|j| j.key_id == b.jwt_key.kid)
    );
    // Prepared, in the bundle, but not signing: A still signs.
    let current = manager.current();
    assert_eq!(current.slot(), SlotId::A);
    let svid = manager
        .mint_x509_svid(&csr(sigil_ca::KeyType::EcP256), &params, clock.now())
        .unwrap();
    assert!(issuer_of(&svid.cert_chain[0], &a_cert));
    let jwt = manager
        .mint_jwt_svid(&id("/workload"), &audience, None, clock.now())
        .unwrap();
    assert_eq!(
        validate_jwt_svid(&jwt.token, &bundle, "bank", clock.now())
            .unwrap()
            .key_id,
        a_kid
    );

    sleep_until_unix(anchor, t0, activate_at - 30).await;
    assert_eq!(manager.current().slot(), SlotId::A, "too early to activate");

    sleep_until_unix(anchor, t0, activate_at + 30).await;
    let journal = manager.journal().await;
    assert_eq!(slot(&journal, SlotId::A), Some(SlotStatus::Old));
    assert_eq!(slot(&journal, SlotId::B), Some(SlotStatus::Active));
    let current = manager.current();
    assert_eq!(current.slot(), SlotId::B);
    assert_eq!(current.x509_ca().cert_der(), b.x509_ca.cert_der);
    let svid = manager
        .mint_x509_svid(&csr(sigil_ca::KeyType::EcP256), &params, clock.now())
        .unwrap();
    assert!(issuer_of(&svid.cert_chain[0], &b.x509_ca.cert_der));
    let bundle = storage.inner.bundle().unwrap();
    openssl_verify_at(
        &bundle
            .x509_authorities
            .iter()
            .map(|a| a.der.clone())
            .collect::<Vec<_>>(),
        &svid.cert_chain,
        clock.now(),
    )
    .unwrap();
    let jwt = manager
        .mint_jwt_svid(&id("/workload"), &audience, None, clock.now())
        .unwrap();
    let valid = validate_jwt_svid(&jwt.token, &bundle, "bank", clock.now()).unwrap();
    assert_eq!(valid.key_id, b.jwt_key.kid);
    assert!(
        bundle.x509_authorities.iter().any(|x| x.der == a_cert),
        "old CA stays trusted"
    );

    // At B's half-life, the old slot A is prepared again with fresh keys.
    let b_prepare_at = preparation_threshold(b.x509_ca.not_before, b.x509_ca.not_after);
    sleep_until_unix(anchor, t0, b_prepare_at + 30).await;
    let journal = manager.journal().await;
    assert_eq!(slot(&journal, SlotId::A), Some(SlotStatus::Prepared));
    assert_ne!(journal.slot(SlotId::A).unwrap().x509_ca.cert_der, a_cert);
    assert_ne!(journal.slot(SlotId::A).unwrap().jwt_key.kid, a_kid);
    driver.abort();

    assert!(
        storage.violations.lock().unwrap().is_empty(),
        "{:?}",
        storage.violations
    );
    let log = storage.log.lock().unwrap().clone();
    let appended_b = log.iter().position(|l| l.contains(&b.jwt_key.kid)).unwrap();
    let prepared_b = log.iter().position(|l| l.contains("B=Prepared")).unwrap();
    assert!(appended_b < prepared_b, "{log:?}");
}

fn keys_in(dir: &std::path::Path) -> Arc<dyn KeyManager> {
    Arc::new(DiskKeyManager::open(dir).unwrap())
}

#[tokio::test]
async fn restart_keeps_the_active_ca_and_jwt_kid() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    let storage = Arc::new(MemoryCaStorage::new());
    let t0 = now();
    let first = CaManager::start(CaConfig::new(td()), keys_in(&key_dir), storage.clone(), t0)
        .await
        .unwrap();
    let cert = first.current().x509_ca().cert_der().to_vec();
    let kid = first.current().jwt_signer().kid().to_owned();
    let (nb, na) = (
        first.current().x509_ca().not_before(),
        first.current().x509_ca().not_after(),
    );
    let prepare_at = preparation_threshold(nb, na);
    assert_eq!(
        first.rotate(prepare_at).await.unwrap(),
        vec![RotationStep::Prepare(SlotId::B)]
    );
    drop(first);

    let second = CaManager::start(
        CaConfig::new(td()),
        keys_in(&key_dir),
        storage.clone(),
        prepare_at + 5,
    )
    .await
    .unwrap();
    assert_eq!(second.current().slot(), SlotId::A);
    assert_eq!(second.current().x509_ca().cert_der(), cert);
    assert_eq!(second.current().jwt_signer().kid(), kid);
    let svid = second
        .mint_x509_svid(
            &csr(sigil_ca::KeyType::EcP256),
            &X509SvidParams::new(id("/w")),
            prepare_at + 5,
        )
        .unwrap();
    assert!(issuer_of(&svid.cert_chain[0], &cert));
    let journal = second.journal().await;
    assert_eq!(slot(&journal, SlotId::B), Some(SlotStatus::Prepared));

    // The slot prepared before the restart activates with its keys reloaded from disk.
    let activate_at = activation_threshold(nb, na);
    assert_eq!(
        second.rotate(activate_at).await.unwrap(),
        vec![RotationStep::Activate(SlotId::B)]
    );
    assert_eq!(
        second.current().x509_ca().cert_der(),
        journal.slot(SlotId::B).unwrap().x509_ca.cert_der
    );
    let jwt = second
        .mint_jwt_svid(&id("/w"), &["x".to_owned()], None, activate_at)
        .unwrap();
    validate_jwt_svid(&jwt.token, &second.bundle().unwrap(), "x", activate_at).unwrap();
}

#[tokio::test]
async fn lost_keys_on_restart_mean_a_new_ca_not_a_failure() {
    let storage = Arc::new(MemoryCaStorage::new());
    let t0 = now();
    let first = CaManager::start(
        CaConfig::new(td()),
        Arc::new(MemoryKeyManager::new()),
        storage.clone(),
        t0,
    )
    .await
    .unwrap();
    let cert = first.current().x509_ca().cert_der().to_vec();
    drop(first);
    let second = CaManager::start(
        CaConfig::new(td()),
        Arc::new(MemoryKeyManager::new()),
        storage.clone(),
        t0 + 60,
    )
    .await
    .unwrap();
    assert_ne!(second.current().x509_ca().cert_der(), cert);
    let bundle = storage.bundle().unwrap();
    assert_eq!(bundle.x509_authorities.len(), 2);
}

#[tokio::test]
async fn journal_of_another_trust_domain_is_refused() {
    let storage = Arc::new(MemoryCaStorage::new());
    CaManager::start(
        CaConfig::new(td()),
        Arc::new(MemoryKeyManager::new()),
        storage.clone(),
        now(),
    )
    .await
    .unwrap();
    let other = sigil_types::TrustDomain::new("other.org").unwrap();
    let err = CaManager::start(
        CaConfig::new(other),
        Arc::new(MemoryKeyManager::new()),
        storage,
        now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CaManagerError::TrustDomainMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn manager_under_an_upstream_ca_publishes_the_upstream_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = upstream_root(sigil_ca::KeyType::EcP256);
    let mut config = CaConfig::new(td());
    config.upstream = Some(sigil_ca::UpstreamDiskConfig {
        cert_file_path: write(dir.path(), "up.crt", &root.cert_pem()),
        key_file_path: write(dir.path(), "up.key", &root.key_pem()),
        bundle_file_path: None,
    });
    let storage = Arc::new(MemoryCaStorage::new());
    let manager = CaManager::start(
        config,
        Arc::new(MemoryKeyManager::new()),
        storage.clone(),
        now(),
    )
    .await
    .unwrap();
    let bundle = storage.bundle().unwrap();
    assert_eq!(bundle.x509_authorities.len(), 1);
    assert_eq!(bundle.x509_authorities[0].der, root.der);
    let svid = manager
        .mint_x509_svid(
            &csr(sigil_ca::KeyType::EcP256),
            &X509SvidParams::new(id("/w")),
            now(),
        )
        .unwrap();
    openssl_verify(std::slice::from_ref(&root.der), &svid.cert_chain).unwrap();
}
