#!/usr/bin/env bash
# The README's run command: builds sigil-server and sigil-agent, starts the server on SQLite
# and an agent with a join token in a temporary directory, registers the current user's uid,
# fetches that uid's X509-SVID through the agent's Workload API socket (attested by uid),
# checks it with openssl, prints its SPIFFE ID and expiry, and stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prepare.sh

prepare_toolchain

step "building sigil-server and sigil-agent"
cargo build --locked --quiet -p sigil-server -p sigil-agent
server=target/debug/sigil-server
agent=target/debug/sigil-agent

work=$(mktemp -d)
server_pid=
agent_pid=
stop() {
    local pid=$1
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
}
cleanup() {
    stop "$agent_pid"
    stop "$server_pid"
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port for the agent API.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 18081)
admin_socket="$work/server/api.sock"
workload_socket="$work/agent/public/api.sock"
cat >"$work/server.conf" <<CONF
server {
    bind_address = "127.0.0.1"
    bind_port = "$port"
    socket_path = "$admin_socket"
    trust_domain = "example.org"
    data_dir = "$work/server-data"
    log_level = "WARN"
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "$work/server-data/datastore.sqlite3"
        }
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "$work/server-data/keys"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
CONF
cat >"$work/agent.conf" <<CONF
agent {
    data_dir = "$work/agent-data"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "$port"
    socket_path = "$workload_socket"
    trust_bundle_path = "$work/bootstrap.pem"
    trust_domain = "example.org"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
CONF

step "sigil-server run -config server.conf (in $work)"
"$server" validate -config "$work/server.conf"
"$server" run -config "$work/server.conf" &
server_pid=$!
for _ in $(seq 1 100); do
    if "$server" healthcheck -socketPath "$admin_socket" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
"$server" healthcheck -socketPath "$admin_socket"

step "sigil-server token generate; bundle show > bootstrap.pem"
token=$("$server" token generate -socketPath "$admin_socket" | sed -n 's/^Token: //p')
"$server" bundle show -socketPath "$admin_socket" >"$work/bootstrap.pem"
agent_id="spiffe://example.org/spire/agent/join_token/$token"

uid=$(id -u)
spiffe_id="spiffe://example.org/quickstart/uid/$uid"
step "sigil-server entry create (the current uid, $uid, on this agent)"
"$server" entry create -socketPath "$admin_socket" \
    -spiffeID "$spiffe_id" -parentID "$agent_id" -selector "unix:uid:$uid"

step "sigil-agent run -config agent.conf -joinToken …"
"$agent" validate -config "$work/agent.conf"
"$agent" run -config "$work/agent.conf" -joinToken "$token" &
agent_pid=$!
for _ in $(seq 1 150); do
    if "$agent" healthcheck -socketPath "$workload_socket" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
"$agent" healthcheck -socketPath "$workload_socket"

step "sigil-agent api fetch x509 (this process, attested by uid $uid)"
mkdir -p "$work/svid"
fetched=
for _ in $(seq 1 100); do
    # The agent syncs its entries and SVIDs right after attesting; give it a moment.
    if "$agent" api fetch x509 -socketPath "$workload_socket" -write "$work/svid" >"$work/fetch.txt" 2>&1; then
        fetched=yes
        break
    fi
    sleep 0.1
done
cat "$work/fetch.txt"
[ -n "$fetched" ] || { echo "no SVID from the agent" >&2; exit 1; }

if command -v openssl >/dev/null; then
    step "openssl verify -x509_strict -CAfile bundle.0.pem svid.0.pem"
    openssl verify -x509_strict -CAfile "$work/svid/bundle.0.pem" "$work/svid/svid.0.pem"
    openssl x509 -in "$work/svid/svid.0.pem" -noout -ext subjectAltName -enddate
else
    echo "(openssl not installed: skipping the independent check of svid.0.pem against bundle.0.pem)"
fi

step "stopping sigil-agent and sigil-server"
stop "$agent_pid"; agent_pid=
stop "$server_pid"; server_pid=
