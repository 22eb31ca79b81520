#!/usr/bin/env bash
# The README's run command. sigil-server and sigil-agent do not exist yet; until they do, this
# builds the workspace and runs the quickstart example, which uses the real CA and datastore:
# it registers the current uid in a SQLite datastore, mints an X509-SVID for that entry from a
# CSR, verifies it against the trust bundle, and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prepare.sh

prepare_toolchain

cat <<'NOTE'
note: sigil-server and sigil-agent are not built yet, so there is no server to start and no
      Workload API socket to fetch from. What follows runs the CA and the datastore directly.
NOTE

step "building"
cargo build --workspace --locked --quiet
cargo build --locked --quiet -p sigil-store --example quickstart

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "quickstart in $work"
cargo run --locked --quiet -p sigil-store --example quickstart -- "$work"

if command -v openssl >/dev/null; then
    step "openssl verify -x509_strict -CAfile bundle.pem svid.pem"
    openssl verify -x509_strict -CAfile "$work/bundle.pem" "$work/svid.pem"
    openssl x509 -in "$work/svid.pem" -noout -subject -ext subjectAltName -enddate
else
    echo "(openssl not installed: skipping the independent check of svid.pem against bundle.pem)"
fi
