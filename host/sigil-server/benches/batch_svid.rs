//! BatchNewX509SVID over loopback mTLS (issue 4): SVIDs per second for batches of 500 CSRs
//! from one attested agent, against the raw rate of the crypto library on the same cores in
//! the same run (one ECDSA P-256 verify, the CSR's signature, plus one P-256 sign, the
//! certificate's, per SVID), on one thread and on one thread per core (the server mints a
//! batch on every core).
//!
//! ```text
//! cargo bench -p sigil-server --bench batch_svid [-- --batches N]
//! ```

#![expect(
    clippy::expect_used,
    reason = "benchmark setup is fixed and always valid; a failure must stop the run"
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/harness/mod.rs"]
#[expect(
    dead_code,
    reason = "the bench makes its entries in one batch call, not one by one"
)]
mod harness;

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use sigil_proto::spire::api::server::entry::v1 as entry;
use sigil_proto::spire::api::server::svid::v1 as svid;
use sigil_proto::spire::api::types as wire;

const BATCH: usize = 500;

fn main() {
    let batches = std::env::args()
        .skip_while(|a| a != "--batches")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(batches));
}

async fn run(batches: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness::Harness {
        server,
        socket,
        address,
        ..
    } = harness::start(dir.path(), &harness::sqlite(dir.path())).await;
    let admin = harness::admin_channel(&socket).await;
    let token = harness::token(&socket).await;
    let mut bundles = sigil_proto::spire::api::server::bundle::v1::bundle_client::BundleClient::new(
        admin.clone(),
    );
    let bundle = bundles
        .get_bundle(
            sigil_proto::spire::api::server::bundle::v1::GetBundleRequest { output_mask: None },
        )
        .await
        .expect("bundle")
        .into_inner();
    let bundle_pem: String = bundle
        .x509_authorities
        .iter()
        .map(|a| pem::encode(&pem::Pem::new("CERTIFICATE", a.asn1.clone())))
        .collect();
    let key = rcgen::KeyPair::generate().expect("agent key");
    let agent_svid = common::attest(
        common::channel(address, &bundle_pem, None).await,
        &token,
        &key,
    )
    .await
    .expect("attested");
    let agent_id = wire::Spiffeid {
        trust_domain: "example.org".into(),
        path: format!("/spire/agent/join_token/{token}"),
    };

    // BATCH entries for the agent, in one admin call.
    let mut entries = entry::entry_client::EntryClient::new(admin);
    let created = entries
        .batch_create_entry(entry::BatchCreateEntryRequest {
            entries: (0..BATCH)
                .map(|i| wire::Entry {
                    spiffe_id: Some(wire::Spiffeid {
                        trust_domain: "example.org".into(),
                        path: format!("/workload/{i}"),
                    }),
                    parent_id: Some(agent_id.clone()),
                    selectors: vec![wire::Selector {
                        r#type: "unix".into(),
                        value: format!("uid:{i}"),
                    }],
                    ..wire::Entry::default()
                })
                .collect(),
            output_mask: None,
        })
        .await
        .expect("entries")
        .into_inner()
        .results;
    let ids: Vec<String> = created
        .iter()
        .map(|r| r.entry.as_ref().expect("created").id.clone())
        .collect();
    let csrs: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| {
            rcgen::CertificateParams::new(Vec::<String>::new())
                .expect("params")
                .serialize_request(&rcgen::KeyPair::generate().expect("key"))
                .expect("csr")
                .der()
                .to_vec()
        })
        .collect();
    let request = svid::BatchNewX509svidRequest {
        params: ids
            .iter()
            .zip(&csrs)
            .map(|(id, csr)| svid::NewX509svidParams {
                entry_id: id.clone(),
                csr: csr.clone(),
            })
            .collect(),
    };
    let mut client = svid::svid_client::SvidClient::new(
        common::channel(
            address,
            &bundle_pem,
            Some((agent_svid.cert_chain, key.serialize_der())),
        )
        .await,
    );
    // Wait for the cache to hold the entries, and warm up.
    loop {
        let results = client
            .batch_new_x509svid(request.clone())
            .await
            .expect("batch")
            .into_inner()
            .results;
        if results
            .iter()
            .all(|r| r.status.as_ref().is_some_and(|s| s.code == 0))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Baselines on the same cores as the server: one thread, and one thread per core (the
    // server mints a batch on every core).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let raw_one = raw_rate(BATCH * batches);
    let raw_all = raw_rate_on(cores, BATCH * batches);
    let mut rates = Vec::new();
    for _ in 0..batches {
        let start = Instant::now();
        let results = client
            .batch_new_x509svid(request.clone())
            .await
            .expect("batch")
            .into_inner()
            .results;
        let elapsed = start.elapsed();
        assert_eq!(results.len(), BATCH);
        rates.push(BATCH as f64 / elapsed.as_secs_f64());
    }
    let raw_one = (raw_one + raw_rate(BATCH * batches)) / 2.0;
    let raw_all = (raw_all + raw_rate_on(cores, BATCH * batches)) / 2.0;
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "BatchNewX509SVID, {batches} batches of {BATCH} over loopback mTLS: median {median:.0} SVIDs/s \
         (min {:.0}, max {:.0}); raw P-256 verify+sign (mean of before and after): one thread \
         {raw_one:.0}/s, {cores} threads {raw_all:.0}/s; ratio {:.2} to all cores, {:.2} to one",
        rates[0],
        rates[rates.len() - 1],
        median / raw_all,
        median / raw_one
    );
    server.shutdown();
}

/// Raw verify + sign operations per second with `threads` threads, `n` in all.
fn raw_rate_on(threads: usize, n: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| raw_rate(n / threads));
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// Raw verify + sign operations per second, one thread, `n` of each.
fn raw_rate(n: usize) -> f64 {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
    let message = vec![7u8; 300];
    let signature = key.sign(&rng, &message).expect("sign");
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    let start = Instant::now();
    for _ in 0..n {
        public.verify(&message, signature.as_ref()).expect("verify");
        black_box(key.sign(&rng, &message).expect("sign"));
    }
    n as f64 / start.elapsed().as_secs_f64()
}
