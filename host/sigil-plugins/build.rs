//! Builds the plugins workspace (`plugins/`: the built-in plugins and the test fixtures) for
//! `wasm32-wasip2` and copies the components into `OUT_DIR`, where `src/builtin.rs` and the
//! integration tests `include_bytes!` them.
//!
//! The plugins are a separate cargo workspace built by a nested
//! `cargo build --target wasm32-wasip2 --release` with its own target directory
//! (`<target>/wasm`), so the nested cargo never waits for a lock the outer one holds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Components the build produces: built-in plugins first, then the test fixtures.
const COMPONENTS: &[&str] = &[
    "unix",
    "k8s",
    "k8s_template",
    "disk",
    "k8s_configmap",
    "join_token_server",
    "join_token_agent",
    "x509pop_server",
    "x509pop_agent",
    "k8s_psat_server",
    "k8s_psat_agent",
    "hostile_attestor",
    "hostile_renderer",
    "sockets_attestor",
    "readme_example",
    "challenge_node_server",
    "challenge_node_agent",
    "capability_node_server",
    "pod_attestor",
];

/// Variables of the outer build that must not leak into the nested wasm build: target and
/// flags meant for the host, and clippy's wrapper.
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "__CARGO_FIX_PLZ",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: building the wasm plugins failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let root = manifest_dir.join("../..");
    let plugins = root.join("plugins");
    let sdk = root.join("sdk");
    println!("cargo::rerun-if-changed={}", plugins.display());
    println!("cargo::rerun-if-changed={}", sdk.display());

    let wasm_target = wasm_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&wasm_target)
        // plugins/.cargo/config.toml (the plugins' stack size) is found from the working
        // directory, not from --manifest-path.
        .current_dir(&plugins);
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("CARGO_PROFILE_"))
        {
            command.env_remove(name);
        }
    }
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release --target wasm32-wasip2 --manifest-path {}` exited with {status}",
            plugins.join("Cargo.toml").display()
        ));
    }

    let built = wasm_target.join("wasm32-wasip2/release");
    for component in COMPONENTS {
        let from = built.join(format!("{component}.wasm"));
        let to = out_dir.join(format!("{component}.wasm"));
        std::fs::copy(&from, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

/// `<target>/wasm`, next to the outer build's profile directories; `<target>` is the
/// nearest ancestor of `OUT_DIR` that cargo marked with `CACHEDIR.TAG`.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map_or_else(|| out_dir.join("wasm-target"), |target| target.join("wasm"))
}
