"""A short soak in the suite, run as the benchmark program it is (`benchmarks/soak.py`
runs the long one): random faults, and after every cycle the invariants hold; no
descriptor or thread is left behind."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

from sync.edges.deadline import make_client
from tests.support.paths import ROOT


def test_short_soak_keeps_the_invariants(aws_env):
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/soak.py"), "--cycles", "60", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("60 cycles in "), out
    assert "invariant violations: 0\n" in out, out
    fds = re.search(r"open file descriptors: (\d+) → (\d+); threads: (\d+) → (\d+)", out)
    assert fds, out
    fds_start, fds_end, threads_start, threads_end = map(int, fds.groups())
    # reads run concurrently: the client's keep-alive pool may open up to its size, no
    # more, and the fake endpoint in this process serves each connection on a thread
    pool = inspect.signature(make_client).parameters["pool_size"].default
    assert fds_end <= fds_start + 2 * pool + 1
    assert threads_end <= threads_start + pool
    injected = re.search(r"faults injected: (.*)", out)
    assert injected and len(injected.group(1).split(", ")) >= 5  # the faults were injected
