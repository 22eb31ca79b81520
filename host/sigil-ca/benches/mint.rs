//! Minting an X509-SVID from a P-256 CSR with a P-256 CA (CSR parse + signature check + SAN
//! checks + certificate build + sign + DER), next to the floor it cannot beat: one raw aws-lc-rs
//! ECDSA P-256 sign and one verify of a ~300-byte message.
//!
//! Run pinned to one core: `taskset -c 1 cargo bench -p sigil-ca --bench mint`.

#![expect(
    clippy::expect_used,
    reason = "benchmark setup on fixed inputs: a failure must abort the run"
)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigil_ca::{Key, KeyType, Subject, X509Ca, X509SvidParams};
use sigil_types::{SpiffeId, TrustDomain};

const NOW: i64 = 1_700_000_000;

fn bench_mint(c: &mut Criterion) {
    let td = TrustDomain::new("example.org").expect("trust domain");
    let ca_key = Key::generate("x509-CA-A", KeyType::EcP256).expect("CA key");
    let ca = X509Ca::self_signed(
        &td,
        ca_key,
        &Subject::spire_ca_default(),
        Duration::from_secs(86_400),
        NOW,
    )
    .expect("CA");
    let spiffe_id = SpiffeId::new(&td, "/ns/default/sa/web").expect("SPIFFE ID");
    let client = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut csr_params = rcgen::CertificateParams::default();
    csr_params.subject_alt_names = vec![rcgen::SanType::URI(
        spiffe_id.as_str().try_into().expect("IA5"),
    )];
    let csr = csr_params
        .serialize_request(&client)
        .expect("CSR")
        .der()
        .to_vec();
    let params = X509SvidParams::new(spiffe_id);

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
    let raw_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
    let public_key = raw_key.public_key().as_ref().to_vec();
    let message = [0x5au8; 300];

    let mut group = c.benchmark_group("p256");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint_x509_svid_from_csr", |b| {
        b.iter(|| {
            let issued = ca
                .mint_x509_svid(black_box(&csr), black_box(&params), NOW)
                .expect("mint");
            black_box(issued)
        })
    });
    group.bench_function("raw_ecdsa_sign_and_verify", |b| {
        b.iter(|| {
            let signature = raw_key.sign(&rng, black_box(&message)).expect("sign");
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&public_key))
                .verify(black_box(&message), signature.as_ref())
                .expect("verify");
            black_box(signature)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_mint);
criterion_main!(benches);
