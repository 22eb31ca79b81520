#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: format check, clippy with warnings denied, every
# test (SQLite and PostgreSQL), and the docs build. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prepare.sh

prepare_toolchain
prepare_postgres
prepare_openssl
prepare_python
prepare_fuzz
prepare_deny
prepare_deploy_validation

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# plugins/ is its own workspace (built for wasm32-wasip2 by sigil-plugins' build script), so
# the workspace-wide commands above do not reach it.
step "plugins workspace: fmt, clippy (wasm32-wasip2), unit tests"
cargo fmt --all --check --manifest-path plugins/Cargo.toml
# Run from plugins/ so its .cargo/config.toml (the plugins' link flags) applies, as in the
# build script.
(cd plugins && cargo clippy --locked --target wasm32-wasip2 --all-targets \
    --target-dir ../target/wasm -- -D warnings)
(cd plugins && cargo test --locked --target-dir ../target/wasm)

# deny.toml: one TLS/crypto stack (rustls on aws-lc-rs), licences on an allow-list, crates.io
# only; the plugins workspace has its own Cargo.lock and is held to the same policy.
step "cargo deny check bans licenses sources (host and plugins workspaces)"
cargo deny --locked check bans licenses sources
# (The plugins use a subset of the allowed licences: the unused allowances are not news.)
cargo deny --locked --config deny.toml --manifest-path plugins/Cargo.toml \
    check -A license-not-encountered bans licenses sources
echo "note: RustSec advisories are not checked here: the advisory database is fetched from GitHub," \
    "which CI cannot reach; run 'cargo deny check advisories' where it is reachable (deny.toml)"

step "cargo test (DATABASE_URL=$DATABASE_URL)"
cargo test --workspace --locked --no-fail-fast

# Clients the team did not write, with their default settings, against real sigil-server
# and sigil-agent processes: py-spiffe on the Workload API socket, grpcio on the admin sockets.
step "Python interop tests (py-spiffe, grpcio)"
cargo build --locked --quiet -p sigil-server -p sigil-agent
SIGIL_BIN_DIR="$PWD/target/debug" "$PYTHON_VENV/bin/python" -m pytest -q tests/python

# Every manifest under deploy/ against the Kubernetes and Istio schemas (pinned npm packages,
# deploy/validate/package-lock.json), the CRDs' schemas and the controller manager's field
# list, plus the references between them (deploy/validate/validate.mjs says what is checked).
# The self-test then breaks copies of deploy/ one way at a time and expects each reported.
step "deploy/ manifests validate (deploy/validate.sh)"
deploy/validate.sh
deploy/validate.sh --self-test

# Every fuzz target (fuzz/README.md) built and run for FUZZ_SMOKE_SECONDS (10) on its seeds;
# a crash or a broken property fails here with the input saved under fuzz/artifacts/.
step "fuzz smoke runs (fuzz/smoke.sh)"
fuzz/smoke.sh

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "all checks passed"
