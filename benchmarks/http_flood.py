"""The metrics endpoint under connection floods: how long /healthz takes and how much
memory the endpoint holds, behind idle connections and connections that reconnect as
soon as they are closed, from another address than the prober's and from its own.

    python benchmarks/http_flood.py [--idle 10000] [--reconnecting 3000] [--probes 30]

Each row starts a fresh endpoint (the real HealthServer, in a process of its own as in
the service), floods it, then asks /healthz `--probes` times and reads its RSS. The
flood runs in this process, so its size is bound by this shell's `ulimit -n`.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from subprocess import PIPE

from sync.edges.http_endpoint import raise_open_files_limit
from sync.fakes.flood import Flood

SERVE = """
import sys
from sync.edges.http_endpoint import HealthServer, raise_open_files_limit
from sync.edges.metrics import Metrics
raise_open_files_limit()
server = HealthServer(Metrics(), "127.0.0.1:0", lambda: (True, "ok")).start()
print(server.port, flush=True)
sys.stdin.read()
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(port: int) -> float:
    t0 = time.monotonic()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
    except OSError:
        return float("inf")
    return time.monotonic() - t0


def row(name: str, floods: list[tuple[str, int, bool]], probes: int) -> str:
    server = subprocess.Popen([sys.executable, "-c", SERVE], stdin=PIPE, stdout=PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    before = rss_mib(server.pid)
    held = [Flood(port, src, n, again) for src, n, again in floods]
    time.sleep(2)  # the flood settles (a benchmark's pace, not a test's wait)
    times = sorted(probe(port) for _ in range(probes))
    grew = rss_mib(server.pid) - before
    for f in held:
        f.close()
    server.communicate("")
    median, worst = statistics.median(times), times[-1]
    return f"{name:<44} {median * 1000:8.1f} {worst * 1000:9.1f} {grew:9.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--reconnecting", type=int, default=3_000)
    ap.add_argument("--probes", type=int, default=30)
    a = ap.parse_args()
    raise_open_files_limit()
    need = a.idle + a.reconnecting + 1000
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        raise SystemExit(f"needs an open-file limit of {need} (ulimit -n)")
    i, r = a.idle, a.reconnecting
    print(f"{'flood (probe from 127.0.0.1)':<44} {'p50 ms':>8} {'worst ms':>9} {'+RSS MiB':>9}")
    print(row("none", [], a.probes))
    print(row(f"{i:,} idle from another address", [("127.0.0.2", i, False)], a.probes))
    print(row(f"{r:,} reconnecting from another address", [("127.0.0.3", r, True)], a.probes))
    both = [("127.0.0.2", i, False), ("127.0.0.3", r, True)]
    print(row("both at once", both, a.probes))
    print(row(f"{i:,} idle from the probe's address", [("127.0.0.1", i, False)], a.probes))
    print(row(f"{i:,} reconnecting from the probe's address", [("127.0.0.1", i, True)], a.probes))


if __name__ == "__main__":
    main()
