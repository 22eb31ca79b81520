#!/usr/bin/env bash
# The README's run command: builds sigil-server, starts it on SQLite in a temporary
# directory, registers the current user's uid with the SPIRE-style CLI, and mints an
# X509-SVID for that SPIFFE ID through the server's admin API, checked with openssl.
#
# sigil-agent (the Workload API socket) is not built yet: once it is, the SVID will come from
# the agent, attested by uid, instead of `x509 mint`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prepare.sh

prepare_toolchain

step "building sigil-server"
cargo build --locked --quiet -p sigil-server
bin=target/debug/sigil-server

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

socket="$work/private/api.sock"
cat >"$work/server.conf" <<CONF
server {
    bind_address = "127.0.0.1"
    bind_port = "0"
    socket_path = "$socket"
    trust_domain = "example.org"
    data_dir = "$work/data"
    log_level = "WARN"
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "$work/data/datastore.sqlite3"
        }
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "$work/data/keys"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
CONF

step "sigil-server validate -config server.conf"
"$bin" validate -config "$work/server.conf"

step "sigil-server run -config server.conf (in $work)"
"$bin" run -config "$work/server.conf" &
server_pid=$!
for _ in $(seq 1 100); do
    if "$bin" healthcheck -socketPath "$socket" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
"$bin" healthcheck -socketPath "$socket"

uid=$(id -u)
spiffe_id="spiffe://example.org/quickstart/uid/$uid"
step "sigil-server entry create (the current uid, $uid)"
"$bin" entry create -socketPath "$socket" \
    -spiffeID "$spiffe_id" \
    -parentID "spiffe://example.org/spire/agent/join_token/quickstart" \
    -selector "unix:uid:$uid"

step "sigil-server token generate"
"$bin" token generate -socketPath "$socket"

step "sigil-server x509 mint -spiffeID $spiffe_id"
mkdir -p "$work/svid"
"$bin" x509 mint -socketPath "$socket" -spiffeID "$spiffe_id" -write "$work/svid"

if command -v openssl >/dev/null; then
    step "openssl verify -x509_strict -CAfile bundle.pem svid.pem"
    openssl verify -x509_strict -CAfile "$work/svid/bundle.pem" "$work/svid/svid.pem"
    openssl x509 -in "$work/svid/svid.pem" -noout -subject -ext subjectAltName -enddate
else
    echo "(openssl not installed: skipping the independent check of svid.pem against bundle.pem)"
fi

step "stopping sigil-server"
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
