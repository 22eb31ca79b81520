#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: format check, clippy with warnings denied, every
# test (SQLite and PostgreSQL), and the docs build. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prepare.sh

prepare_toolchain
prepare_postgres
prepare_openssl

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (DATABASE_URL=$DATABASE_URL)"
cargo test --workspace --locked --no-fail-fast

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "all checks passed"
