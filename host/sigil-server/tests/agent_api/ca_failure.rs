//! A failure of the CA itself reaches the agent as Internal, with a fixed text and not the
//! cause. The CA here sits under an upstream authority (SPIRE's `disk`) whose certificate
//! expires while the server runs: from then on the CA cannot sign, which is the server's
//! problem, not the agent's.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sigil_testkit::conf::{JOIN_TOKEN_ATTESTOR, ServerConf};
use sigil_testkit::server::InProcessServer;

use crate::common::{attest, connect};

/// How long the upstream certificate is valid after the test starts: long enough for the
/// server to start on a loaded machine, short enough to wait for.
const UPSTREAM_LIFETIME: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_cannot_sign_answers_the_agent_internal_without_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expires = std::time::SystemTime::now() + UPSTREAM_LIFETIME;
    let (cert, key) = (
        dir.path().join("upstream.crt"),
        dir.path().join("upstream.key"),
    );
    write_upstream_ca(&cert, &key, expires);
    let server = InProcessServer::start_conf(&ServerConf {
        node_attestor: format!(
            "{JOIN_TOKEN_ATTESTOR}\n    UpstreamAuthority \"disk\" {{\n        plugin_data {{\n            \
             cert_file_path = \"{}\"\n            key_file_path = \"{}\"\n        }}\n    }}",
            cert.display(),
            key.display()
        ),
        ..ServerConf::in_dir(dir.path())
    })
    .await;
    let token = server.token().await;
    // Wait out the upstream certificate (and with it the CA under it).
    if let Ok(left) = expires.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_secs(2)).await;
    }
    // The server's own certificate has expired too: connect as an agent with
    // `insecure_bootstrap` would, checking the server's ID but not its validity.
    let verifier = sigil_tls::SpiffeServerVerifier::new(
        sigil_tls::provider(),
        "spiffe://example.org/spire/server"
            .parse()
            .expect("server ID"),
    );
    let agent_key = rcgen::KeyPair::generate().expect("agent key");
    let refused = attest(
        connect(server.address, verifier, None).await,
        &token,
        &agent_key,
    )
    .await
    .expect_err("a CA past its upstream's expiry cannot sign the agent's SVID");
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
    let message = refused.message().to_lowercase();
    assert!(message.contains("see the server log"), "{message}");
    for cause in [
        "expire",
        "not_after",
        "not after",
        "upstream",
        "csr",
        "ca certificate",
    ] {
        assert!(
            !message.contains(cause),
            "the cause {cause:?} leaked: {message}"
        );
    }
    assert!(
        !message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

/// A self-signed upstream CA valid from a minute ago until `expires`, its key 0600.
fn write_upstream_ca(
    cert: &std::path::Path,
    key: &std::path::Path,
    expires: std::time::SystemTime,
) {
    let pair = rcgen::KeyPair::generate().expect("upstream key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sigil test upstream");
    params.not_before = (std::time::SystemTime::now() - Duration::from_secs(60)).into();
    params.not_after = expires.into();
    let certificate = params.self_signed(&pair).expect("upstream certificate");
    std::fs::write(cert, certificate.pem()).expect("write the upstream certificate");
    std::fs::write(key, pair.serialize_pem()).expect("write the upstream key");
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}
