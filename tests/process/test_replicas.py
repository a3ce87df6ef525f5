"""Two `license-sync run` processes on one DynamoDB table (moto's server on loopback) and
the fake farm: one writes, the other waits, and takes over when the first is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.dynamo import TABLE, moto_server, state_table
from tests.support.process import free_port, run_service, scrape

LEASE = {"duration": "3s", "heartbeat": "0.5s", "margin": "0.5s"}


@pytest.fixture
def dynamodb(aws_env):
    with moto_server() as url:
        state_table(url)
        yield url


def replica(farm_env, tmp_path: Path, name: str, url: str):
    """A copy of the farm's policy for one replica: its own history and metrics port,
    the shared table; started."""
    path, env, port = replica_policy(farm_env, tmp_path, name, url)
    return run_service(path, env), port


def replica_policy(farm_env, tmp_path: Path, name: str, url: str):
    doc = yaml.safe_load(Path(farm_env["policy"]).read_text())
    port = free_port()
    doc.update(
        interval="1s",
        history={"path": str(tmp_path / f"{name}.db")},
        metrics={"address": f"127.0.0.1:{port}"},
        state={"store": "dynamodb", "table": TABLE, "region": "us-west-2", "lease": LEASE},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, {**farm_env["env"], "AWS_ENDPOINT_URL_DYNAMODB": url}, port


def leader(port: int) -> float | None:
    for line in scrape(port).splitlines():
        if line.startswith("license_sync_leader "):
            return float(line.split()[1])
    return None


def wait(what: str, ok, seconds: float = 20) -> float:
    start = time.monotonic()
    while not ok():
        assert time.monotonic() - start < seconds, f"not within {seconds}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def test_one_replica_writes_the_other_takes_over_when_it_is_killed(farm_env, dynamodb, tmp_path):
    limits, lid = farm_env["farm"].limits, farm_env["limit"]
    a, a_port = replica(farm_env, tmp_path, "a", dynamodb)
    b = None
    try:
        wait("a writes", lambda: limits[lid].max_count == 14)  # 20 − 5 artists − headroom 1
        b, b_port = replica(farm_env, tmp_path, "b", dynamodb)
        wait("b serves its metrics", lambda: leader(b_port) is not None)
        assert (leader(a_port), leader(b_port)) == (1.0, 0.0)
        farm_env["lic"].set_artists("nuke_r", 7)  # the limit's next value: 12
        farm_env["status"].write_text(farm_env["lic"].lmstat())
        wait("a writes again", lambda: limits[lid].max_count == 12)
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=10)
        farm_env["lic"].set_artists("nuke_r", 9)  # 10 now: only a new writer writes it
        farm_env["status"].write_text(farm_env["lic"].lmstat())
        took = wait("b takes over and writes", lambda: limits[lid].max_count == 10)
        print(f"from kill -9 to the other replica's write: {took:.1f} s")
        assert took < 3 + 1 + 0.5 + 2  # a lease, an interval, a heartbeat, and slack
        assert leader(b_port) == 1.0
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.terminate()
        out = b.communicate(timeout=30)[0] if b is not None else ""
        a.communicate(timeout=30)
    assert "this replica writes to the farms now" in out, out
    # a third machine, with a history of its own: restore finds the originals in the table
    path, env, _ = replica_policy(farm_env, tmp_path, "c", dynamodb)
    p = subprocess.run(
        [sys.executable, "-m", "sync", "restore", "--config", str(path), "--limits"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert limits[lid].max_count == 19  # the maxCount before license-sync's first write
