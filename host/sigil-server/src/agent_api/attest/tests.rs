//! What the agent reads when its SVID cannot be signed: the CA's own failure hides its cause,
//! a bad CSR is named.

use std::sync::Arc;

use sigil_ca::{CaConfig, CaManager, MemoryCaStorage, MemoryKeyManager};
use sigil_types::{SpiffeId, TrustDomain};
use tonic::{Code, Status};

use super::mint_agent_svid;
use crate::tokens::now;

const DAY: i64 = 86_400;

/// A CA with SPIRE's defaults (a 24-hour CA TTL) started at `at`; nothing rotates it here.
async fn ca_started_at(at: i64) -> CaManager {
    let trust_domain = TrustDomain::new("example.org").unwrap();
    CaManager::start(
        CaConfig::new(trust_domain),
        Arc::new(MemoryKeyManager::new()),
        Arc::new(MemoryCaStorage::new()),
        at,
    )
    .await
    .unwrap()
}

fn agent_id() -> SpiffeId {
    "spiffe://example.org/spire/agent/join_token/t"
        .parse()
        .unwrap()
}

fn csr() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec()
}

#[tokio::test]
async fn an_expired_ca_answers_the_agent_internal_without_the_cause() {
    // Started three days ago: its certificate expired two days ago.
    let expired = ca_started_at(now() - 3 * DAY).await;
    let error = mint_agent_svid(&expired, None, &agent_id(), &csr(), now()).unwrap_err();
    let status = Status::from(error);
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(
        status.message(),
        "the CA could not issue the certificate; see the server log"
    );
    for internal in ["expired", "CA certificate", "not_after", "csr"] {
        assert!(!status.message().contains(internal), "{status:?}");
    }
}

#[tokio::test]
async fn a_bad_csr_is_named_to_the_agent_and_a_good_one_is_signed() {
    let ca = ca_started_at(now()).await;
    let svid = mint_agent_svid(&ca, None, &agent_id(), &csr(), now()).unwrap();
    assert_eq!(svid.cert_chain.len(), 1);
    let error = mint_agent_svid(&ca, None, &agent_id(), b"not a CSR", now()).unwrap_err();
    let status = Status::from(error);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with("csr: CSR is malformed"),
        "{status:?}"
    );
}
