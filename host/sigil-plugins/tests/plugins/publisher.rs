//! Bundle publishers: the built-in `disk` writes the bundle to the granted file only.

use super::*;

use sigil_plugins::{BundlePublisher, PublishTarget};
use sigil_types::{Bundle, X509Authority};

fn bundle() -> Bundle {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["ca.example.org".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    let mut bundle = Bundle::new(td());
    bundle.x509_authorities.push(X509Authority {
        der: cert.der().to_vec(),
        tainted: false,
    });
    bundle.sequence_number = 7;
    bundle
}

/// The `disk` publisher, with the default CPU budget: its file write and fsync are host I/O,
/// which the budget leaves out.
fn disk(host: &PluginHost, data: &str, limits: Limits) -> Result<BundlePublisher, PluginError> {
    host.load_bundle_publisher(
        &td(),
        &PluginSpec::builtin("disk", data).with_limits(limits),
    )
}

#[test]
fn disk_writes_pem_and_spiffe_bundles_to_the_granted_file() {
    let host = host();
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = bundle();

    let pem_file = dir.path().join("bundle.pem");
    let pem = disk(&host, "format = \"pem\"", Limits::default()).expect("loads");
    pem.publish(&bundle, &PublishTarget::File(pem_file.clone()))
        .expect("publishes");
    assert_eq!(
        std::fs::read_to_string(&pem_file).expect("written"),
        bundle.x509_authorities_pem()
    );

    let json_file = dir.path().join("bundle.json");
    let spiffe = disk(&host, "format = \"spiffe\"", Limits::default()).expect("loads");
    spiffe
        .publish(&bundle, &PublishTarget::File(json_file.clone()))
        .expect("publishes");
    let written = std::fs::read_to_string(&json_file).expect("written");
    assert_eq!(written, bundle.to_jwks().expect("jwks"));
    let parsed = Bundle::from_jwks(td(), &written).expect("a SPIFFE bundle");
    assert_eq!(parsed.x509_authorities, bundle.x509_authorities);

    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(files.len(), 2, "no temporary files are left behind");
}

#[test]
fn disk_configuration_is_checked_at_load() {
    let host = host();
    for data in ["", "format = \"jwk\"", "file_path = \"/etc/passwd\""] {
        let error = disk(&host, data, Limits::default()).expect_err(data);
        assert!(
            matches!(&error, PluginError::Plugin { reason, .. } if reason.starts_with("invalid-argument")),
            "{data}: {error}"
        );
    }
}

#[test]
fn publish_size_limit_and_write_failures_are_errors() {
    let host = host();
    let dir = tempfile::tempdir().expect("tempdir");
    let small = disk(
        &host,
        "format = \"pem\"",
        Limits::default().with_max_publish_bytes(16),
    )
    .expect("loads");
    let error = small
        .publish(
            &bundle(),
            &PublishTarget::File(dir.path().join("bundle.pem")),
        )
        .expect_err("too large");
    assert!(
        error
            .to_string()
            .contains("more than the publish limit of 16"),
        "{error}"
    );

    let pem = disk(&host, "format = \"pem\"", Limits::default()).expect("loads");
    let missing = PublishTarget::File(dir.path().join("no/such/dir/bundle.pem"));
    let error = pem.publish(&bundle(), &missing).expect_err("no directory");
    assert!(
        matches!(&error, PluginError::Plugin { plugin, reason } if plugin == "disk" && reason.starts_with("unavailable")),
        "{error}"
    );
}
