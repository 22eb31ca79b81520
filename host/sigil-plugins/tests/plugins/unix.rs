//! The built-in `unix` workload attestor against this test process, and the SDK README's plugin.

use super::*;

#[test]
fn unix_attests_the_current_process() {
    let unix = host()
        .load_workload_attestor(&td(), &PluginSpec::builtin("unix", ""))
        .expect("unix loads");
    let selectors = unix.attest(std::process::id()).expect("attest");
    let (uid, gid, groups) = own_ids();
    assert!(
        selectors.contains(&selector(&format!("unix:uid:{uid}"))),
        "{selectors:?}"
    );
    assert!(
        selectors.contains(&selector(&format!("unix:gid:{gid}"))),
        "{selectors:?}"
    );
    for group in groups {
        assert!(
            selectors.contains(&selector(&format!("unix:supplementary_gid:{group}"))),
            "{selectors:?}"
        );
    }
    if uid == 0 {
        assert!(
            selectors.contains(&selector("unix:user:root")),
            "{selectors:?}"
        );
    }
    assert!(selectors.iter().all(|s| s.selector_type() == "unix"));
    assert!(
        !selectors
            .iter()
            .any(|s| s.value().starts_with("path:") || s.value().starts_with("sha256:"))
    );
}

#[test]
fn unix_discovers_the_workload_path_only_when_enabled() {
    // Hashing the (large, unoptimised) test binary takes longer than the default budget.
    let limits = Limits::default().with_cpu(Duration::from_secs(30));
    let spec = PluginSpec::builtin("unix", "discover_workload_path = true").with_limits(limits);
    let unix = host()
        .load_workload_attestor(&td(), &spec)
        .expect("unix loads");
    let selectors = unix.attest(std::process::id()).expect("attest");
    let exe = std::fs::read_link("/proc/self/exe").expect("exe");
    let bytes = std::fs::read(&exe).expect("exe bytes");
    let sha256 = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &bytes,
    ));
    assert!(
        selectors.contains(&selector(&format!("unix:path:{}", exe.display()))),
        "{selectors:?}"
    );
    assert!(
        selectors.contains(&selector(&format!("unix:sha256:{sha256}"))),
        "{selectors:?}"
    );
}

#[test]
fn selector_type_comes_from_the_configured_name() {
    let spec = PluginSpec::bytes("posix", UNIX, "");
    let plugin = host().load_workload_attestor(&td(), &spec).expect("loads");
    let (uid, _, _) = own_ids();
    let selectors = plugin.attest(std::process::id()).expect("attest");
    assert!(
        selectors.contains(&selector(&format!("posix:uid:{uid}"))),
        "{selectors:?}"
    );
}

#[test]
fn bad_plugin_data_fails_at_load() {
    let error = host()
        .load_workload_attestor(&td(), &PluginSpec::builtin("unix", "discover = true"))
        .expect_err("unknown key");
    assert!(
        matches!(&error, PluginError::Plugin { plugin, reason } if plugin == "unix" && reason.contains("unknown key")),
        "{error}"
    );
}

#[test]
fn a_process_that_does_not_exist_is_an_error() {
    let unix = host()
        .load_workload_attestor(&td(), &PluginSpec::builtin("unix", ""))
        .expect("unix loads");
    let error = unix.attest(u32::MAX - 1).expect_err("no such process");
    assert!(matches!(error, PluginError::Process { .. }), "{error}");
}

#[test]
fn sdk_readme_plugin_loads_from_a_path_and_produces_selectors() {
    let readme = include_str!("../../../../sdk/README.md");
    let source = include_str!("../../../../plugins/fixtures/readme_example/src/lib.rs");
    assert!(
        readme.contains(source),
        "sdk/README.md shows plugins/fixtures/readme_example verbatim"
    );

    let wasm = include_bytes!(concat!(env!("OUT_DIR"), "/readme_example.wasm"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("uid_attestor.wasm");
    std::fs::write(&path, wasm).expect("write");
    let checksum = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, wasm));
    let spec = PluginSpec::file("uid", &path, "names = true").with_checksum(&checksum);
    let plugin = host().load_workload_attestor(&td(), &spec).expect("loads");
    let (uid, _, _) = own_ids();
    let selectors = plugin.attest(std::process::id()).expect("attest");
    assert_eq!(
        selectors.first(),
        Some(&selector(&format!("uid:uid:{uid}")))
    );
    if uid == 0 {
        assert!(
            selectors.contains(&selector("uid:user:root")),
            "{selectors:?}"
        );
    }
}

#[test]
fn hashing_the_executable_stops_at_the_cpu_budget() {
    // The (large, unoptimised) test binary takes far longer to hash than 20-30 ms.
    let limits = Limits::default().with_cpu(Duration::from_millis(20));
    let spec = PluginSpec::builtin("unix", "discover_workload_path = true").with_limits(limits);
    let unix = host()
        .load_workload_attestor(&td(), &spec)
        .expect("unix loads");
    let error = unix.attest(std::process::id()).expect_err("over budget");
    assert!(
        matches!(error, PluginError::CpuBudgetExceeded { .. }),
        "{error}"
    );
}
