"""Issue 11 item 3 probe (not a test: pytest collects only test_*.py): 300 FetchJWTSVID calls with distinct 1 MiB audiences from a workload
with an entry (py-spiffe), agent VmRSS before and after; then 300 with distinct valid ones.
Run: target/python-venv/bin/python tests/python/probe_jwt_audiences.py (after scripts/test.sh
or a debug build of sigil-server and sigil-agent)."""
import shutil, sys, tempfile, time, uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Deployment
from spiffe import WorkloadApiClient

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
work = Path(tempfile.mkdtemp(prefix="probe-"))
d = Deployment(work)
d.start()
try:
    agent = [p for n, p in d.processes if n == "agent"][0]
    c = WorkloadApiClient(socket_path="unix:" + d.workload_socket, default_timeout=30)
    c.fetch_x509_svid()
    time.sleep(2)
    idle = rss(agent.pid)
    refused = 0
    for i in range(300):
        aud = (uuid.uuid4().hex * (1024 * 1024 // 32))[: 1024 * 1024 - 100]
        try:
            c.fetch_jwt_svid(audience={aud})
        except Exception as e:
            refused += 1
            last = str(e)[:200]
    after_big = rss(agent.pid)
    for i in range(300):
        c.fetch_jwt_svid(audience={f"spiffe://example.org/aud/{i}"})
    after_small = rss(agent.pid)
    time.sleep(5)
    print(f"idle {idle:.1f} MiB; after 300 x 1 MiB audiences {after_big:.1f} MiB "
          f"(refused {refused}/300: {last}); after 300 distinct valid audiences {after_small:.1f} MiB; "
          f"+5 s {rss(agent.pid):.1f} MiB")
finally:
    d.stop()
    shutil.rmtree(work, ignore_errors=True)
