"""Helpers for tests that run the real process: free loopback ports, its /metrics scraped
and read, a condition polled (never a sleep), the fake lmutil's environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.paths import BIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll an observable condition (not a sleep to wait for the scheduler)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def lm_env(status: Path, endpoint: str) -> dict[str, str]:
    """The environment of a service whose `lmutil` prints `status` and whose Deadline is
    the fake at `endpoint`."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LM_OUTPUT": str(status),
        "AWS_ENDPOINT_URL_DEADLINE": endpoint,
    }


def run_service(policy: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`license-sync run --config policy`, its output on one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--config", str(policy)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's memory as /proc says it, in MiB: VmRSS resident now, VmHWM its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")
