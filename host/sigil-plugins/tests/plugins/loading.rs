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

mod artifact_cache {
    use std::os::unix::fs::PermissionsExt;

    use super::super::*;

    fn cached_host(dir: &std::path::Path) -> PluginHost {
        PluginHost::new(HostConfig::default().with_artifact_cache(dir)).expect("host with cache")
    }

    fn cwasm_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .expect("read cache")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    }

    #[test]
    fn a_fresh_host_loads_what_an_earlier_one_compiled() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("plugin-cache");
        let spec = PluginSpec::builtin("unix", "");
        let (uid, _, _) = own_ids();
        let first = cached_host(&dir)
            .load_workload_attestor(&td(), &spec)
            .expect("compiled and cached");
        let files = cwasm_files(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
        };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&files[0]), 0o600);
        let second = cached_host(&dir)
            .load_workload_attestor(&td(), &spec)
            .expect("loaded from the cache");
        let pid = std::process::id();
        let expected = selector(&format!("unix:uid:{uid}"));
        assert!(first.attest(pid).expect("first").contains(&expected));
        assert!(second.attest(pid).expect("second").contains(&expected));
    }

    #[test]
    fn a_damaged_cache_file_is_compiled_again() {
        let root = tempfile::tempdir().expect("tempdir");
        let spec = PluginSpec::builtin("unix", "");
        cached_host(root.path())
            .load_workload_attestor(&td(), &spec)
            .expect("cached");
        let file = cwasm_files(root.path()).remove(0);
        std::fs::write(&file, b"not a compiled component").expect("damage");
        let plugin = cached_host(root.path())
            .load_workload_attestor(&td(), &spec)
            .expect("compiled again");
        assert!(
            !plugin
                .attest(std::process::id())
                .expect("attest")
                .is_empty()
        );
        assert!(
            std::fs::read(&file).expect("rewritten").len() > 1000,
            "the damaged file was replaced"
        );
    }

    #[test]
    fn a_cache_directory_others_may_write_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let error = PluginHost::new(HostConfig::default().with_artifact_cache(root.path()))
            .expect_err("world-writable cache");
        assert!(error.to_string().contains("0700"), "{error}");
    }
}
