//! BatchNewX509SVID over loopback mTLS (issue 4): SVIDs per second for batches of 500 CSRs
//! from one attested agent, against the raw rate of the crypto library on the same cores in
//! the same run (one ECDSA P-256 verify, the CSR's signature, plus one P-256 sign, the
//! certificate's, per SVID).
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
    let socket = dir.path().join("api.sock");
    let data = dir.path().join("data");
    let text = format!(
        r#"server {{
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#,
        socket = socket.display(),
        data = data.display()
    );
    let config = sigil_config::ServerConfig::parse(&text, "server.conf", false).expect("config");
    let server = sigil_server::Server::start(config).await.expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(sigil_server::serve(server.clone(), std::future::pending()));
    tokio::spawn(sigil_server::serve_agents_on(
        server.clone(),
        listener,
        std::future::pending(),
    ));
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin = admin_channel(&socket).await;
    let mut agents =
        sigil_proto::spire::api::server::agent::v1::agent_client::AgentClient::new(admin.clone());
    let token = agents
        .create_join_token(
            sigil_proto::spire::api::server::agent::v1::CreateJoinTokenRequest {
                ttl: 600,
                token: String::new(),
                agent_id: None,
            },
        )
        .await
        .expect("token")
        .into_inner()
        .value;
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

    let raw = raw_rate(BATCH * batches);
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
    let raw_after = raw_rate(BATCH * batches);
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let raw = (raw + raw_after) / 2.0;
    println!(
        "BatchNewX509SVID, {batches} batches of {BATCH} over loopback mTLS: median {median:.0} SVIDs/s \
         (min {:.0}, max {:.0}); raw P-256 verify+sign {raw:.0}/s (mean of before and after); ratio {:.2}",
        rates[0],
        rates[rates.len() - 1],
        median / raw
    );
    server.shutdown();
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

async fn admin_channel(socket: &std::path::Path) -> tonic::transport::Channel {
    let socket = socket.to_owned();
    tonic::transport::Endpoint::from_static("http://admin")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("admin socket")
}
