"""A real sigil-server (SQLite) and sigil-agent (join token, unix attestor), started as
processes for the interop tests, with an entry for this test's uid."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("SIGIL_BIN_DIR", ROOT / "target" / "debug"))
TRUST_DOMAIN = "example.org"
# Short enough that a watch sees a rotation within the test (rotation at half-life).
SVID_TTL = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run(*args):
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args} exited {done.returncode}: {done.stderr}{done.stdout}"
    return done.stdout


class Deployment:
    def __init__(self, work: Path):
        self.work = work
        self.server_bin = str(BIN / "sigil-server")
        self.agent_bin = str(BIN / "sigil-agent")
        for binary in (self.server_bin, self.agent_bin):
            assert os.access(binary, os.X_OK), (
                f"{binary} is missing: build it first (cargo build -p sigil-server -p sigil-agent)"
            )
        self.admin_socket = str(work / "server" / "api.sock")
        self.workload_socket = str(work / "agent" / "public" / "api.sock")
        self.agent_admin_socket = str(work / "agent" / "admin" / "admin.sock")
        self.processes = []
        self.spiffe_id = f"spiffe://{TRUST_DOMAIN}/python/uid/{os.getuid()}"

    def start(self):
        port = free_port()
        server_conf = self.work / "server.conf"
        server_conf.write_text(f"""
server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{self.admin_socket}"
    trust_domain = "{TRUST_DOMAIN}"
    data_dir = "{self.work}/server-data"
    log_level = "INFO"
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{self.work}/server-data/datastore.sqlite3"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
""")
        self.spawn("server", self.server_bin, "run", "-config", str(server_conf))
        wait_for("the server's admin socket", lambda: subprocess.run(
            [self.server_bin, "healthcheck", "-socketPath", self.admin_socket],
            capture_output=True).returncode == 0)
        token = re.search(r"^Token: (\S+)$", self.server("token", "generate"), re.M).group(1)
        (self.work / "bootstrap.pem").write_text(self.server("bundle", "show"))
        agent_id = f"spiffe://{TRUST_DOMAIN}/spire/agent/join_token/{token}"
        self.server("entry", "create", "-spiffeID", self.spiffe_id, "-parentID", agent_id,
                    "-selector", f"unix:uid:{os.getuid()}", "-x509SVIDTTL", str(SVID_TTL))
        agent_conf = self.work / "agent.conf"
        agent_conf.write_text(f"""
agent {{
    data_dir = "{self.work}/agent-data"
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = "{port}"
    socket_path = "{self.workload_socket}"
    admin_socket_path = "{self.agent_admin_socket}"
    trust_bundle_path = "{self.work}/bootstrap.pem"
    trust_domain = "{TRUST_DOMAIN}"
}}
plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
""")
        self.spawn("agent", self.agent_bin, "run", "-config", str(agent_conf), "-joinToken", token)
        wait_for("an SVID from the agent", lambda: subprocess.run(
            [self.agent_bin, "api", "fetch", "x509", "-socketPath", self.workload_socket],
            capture_output=True).returncode == 0, timeout=60)

    def server(self, *args):
        return run(self.server_bin, *args, "-socketPath", self.admin_socket)

    def spawn(self, name, *args):
        log = open(self.work / f"{name}.log", "wb")
        self.processes.append((name, subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)))

    def stop(self):
        for name, process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self):
        return "\n".join(
            f"--- {name}.log\n{(self.work / f'{name}.log').read_text(errors='replace')[-4000:]}"
            for name, _ in self.processes)


@pytest.fixture(scope="session")
def deployment():
    work = Path(tempfile.mkdtemp(prefix="sigil-py-"))
    # The agent's sockets live in directories the test owns; the workload socket's directory
    # must be reachable by the agent.
    deployment = Deployment(work)
    try:
        deployment.start()
    except BaseException:
        deployment.stop()
        print(deployment.logs())
        raise
    yield deployment
    deployment.stop()
    shutil.rmtree(work, ignore_errors=True)
