//! Loading: names, sources, checksums, grants.

use super::*;

#[test]
fn external_plugin_loads_from_a_path_with_its_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("unix.wasm");
    std::fs::write(&path, UNIX).expect("write");
    let checksum = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, UNIX));
    let spec = PluginSpec::file("unix", &path, "").with_checksum(&checksum.to_uppercase());
    let unix = host().load_workload_attestor(&td(), &spec).expect("loads");
    let (uid, _, _) = own_ids();
    assert!(
        unix.attest(std::process::id())
            .expect("attest")
            .contains(&selector(&format!("unix:uid:{uid}")))
    );
}

#[test]
fn checksum_mismatch_is_refused() {
    let spec = PluginSpec::bytes("unix", UNIX, "").with_checksum(&"ab".repeat(32));
    let error = host()
        .load_workload_attestor(&td(), &spec)
        .expect_err("mismatch");
    assert!(
        matches!(&error, PluginError::ChecksumMismatch { plugin, .. } if plugin == "unix"),
        "{error}"
    );
    assert!(error.to_string().contains("checksum mismatch"), "{error}");

    let spec = PluginSpec::bytes("unix", UNIX, "").with_checksum("not-hex");
    let error = host()
        .load_workload_attestor(&td(), &spec)
        .expect_err("bad checksum");
    assert!(matches!(error, PluginError::BadChecksum { .. }), "{error}");
}

#[test]
fn missing_file_and_bad_bytes_are_errors() {
    let error = host()
        .load_workload_attestor(&td(), &PluginSpec::file("x", "/nonexistent/x.wasm", ""))
        .expect_err("no file");
    assert!(matches!(error, PluginError::ReadWasm { .. }), "{error}");
    let error = host()
        .load_workload_attestor(&td(), &PluginSpec::bytes("x", b"not wasm".to_vec(), ""))
        .expect_err("not wasm");
    assert!(
        matches!(error, PluginError::InvalidComponent { .. }),
        "{error}"
    );
}

#[test]
fn names_are_checked() {
    let error = host()
        .load_workload_attestor(&td(), &PluginSpec::builtin("a:b", ""))
        .expect_err("colon");
    assert!(matches!(error, PluginError::BadName(_)), "{error}");
    let error = host()
        .load_workload_attestor(&td(), &PluginSpec::builtin("docker", ""))
        .expect_err("none");
    assert!(
        matches!(error, PluginError::UnknownBuiltin { .. }),
        "{error}"
    );
}

#[test]
fn ungranted_wasi_sockets_import_is_refused_at_load() {
    let spec = PluginSpec::bytes("sockets", SOCKETS_ATTESTOR, "");
    let error = host()
        .load_workload_attestor(&td(), &spec)
        .expect_err("sockets");
    match &error {
        PluginError::UngrantedImport { plugin, import, .. } => {
            assert_eq!(plugin, "sockets");
            assert!(import.starts_with("wasi:sockets/"), "{import}");
        }
        other => panic!("expected UngrantedImport, got {other}"),
    }
    assert!(error.to_string().contains("wasi:sockets/"), "{error}");
}

#[test]
fn renderer_may_not_import_workload_facts() {
    let spec = PluginSpec::bytes("unix", UNIX, "");
    let error = host()
        .load_id_renderer(&td(), &spec)
        .expect_err("workload-facts not granted");
    assert!(
        matches!(&error, PluginError::UngrantedImport { import, .. } if import.starts_with("sigil:plugin/workload-facts")),
        "{error}"
    );
}
