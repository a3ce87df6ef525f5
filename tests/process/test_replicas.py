"""Two `license-sync run` processes on one DynamoDB table (moto's server on loopback) and
the fake farm: one writes, the other waits, and takes over when the first is killed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.support.clirun import run_cli
from tests.support.dynamo import TABLE, StallingProxy, state_table
from tests.support.process import free_port, run_service, scrape

LEASE = {"duration": "2s", "heartbeat": "0.5s", "margin": "0.5s"}


@pytest.fixture
def dynamodb(aws_env, moto_url):
    state_table(moto_url)
    return moto_url


def replica(farm_env, tmp_path: Path, name: str, url: str):
    """A copy of the farm's policy for one replica: its own history and metrics port,
    the shared table; started, calling Deadline with an access key of its name (the fake
    stamps writes with it)."""
    path, env, port = replica_policy(farm_env, tmp_path, name, url)
    return run_service(path, {**env, "AWS_ACCESS_KEY_ID": f"replica-{name}"}), port


WRITES = {"UpdateLimit", "UpdateJob", "BatchUpdateJob", "UpdateQueueLimitAssociation", "UpdateTask"}


def writes_of(farm) -> list[tuple[float, str]]:
    """Every write the fake farm takes from now on: (monotonic time, the caller's key)."""
    seen: list[tuple[float, str]] = []
    call = farm.call

    def recording(operation, p, caller="service"):
        answer = call(operation, p, caller)
        if operation in WRITES:  # the caller's key, as the fake names it in updatedBy
            seen.append((time.monotonic(), caller.rsplit("/", 1)[-1]))
        return answer

    farm.call = recording
    return seen


def artists_come_and_go(farm_env, stop) -> None:
    """Artists every 2 s, 5 then 7 then 5: a limit to write every few cycles (a rise
    settles an interval, a second read confirms more artists)."""
    n = 5
    while not stop.wait(2):
        n = 12 - n
        farm_env["lic"].set_artists("nuke_r", n)
        farm_env["status"].write_text(farm_env["lic"].lmstat())


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
        if line.startswith("license_sync_leader{"):
            return float(line.split()[1])
    return None


def wait(what: str, ok, seconds: float = 20) -> float:
    start = time.monotonic()
    while not ok():
        assert time.monotonic() - start < seconds, f"not within {seconds}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def second_in_waiting(farm_env, tmp_path, seen, names, url, stop):
    """Once the first replica writes, the second started and waiting, and artists coming
    and going (until `stop`) so that there is always a limit to write."""
    first, second = names
    wait(f"{first} writes", lambda: any(who == f"replica-{first}" for _, who in seen))
    proc, port = replica(farm_env, tmp_path, second, url)
    wait(f"{second} waits", lambda: leader(port) == 0.0)
    threading.Thread(target=artists_come_and_go, args=(farm_env, stop), daemon=True).start()
    return proc, port


def test_a_writer_cut_off_from_the_table_stops_writing_before_the_other_starts(
    farm_env, dynamodb, tmp_path
):
    """A reaches the table through a proxy that is then cut (no answer, no refusal); its
    lease runs out on its own clock and it stops writing to Deadline before B, waiting a
    whole lease duration on its own, takes over."""
    seen = writes_of(farm_env["farm"])
    proxy = StallingProxy(dynamodb)
    a, _ = replica(farm_env, tmp_path, "a", proxy.url)
    b, stop = None, threading.Event()
    try:
        b, _ = second_in_waiting(farm_env, tmp_path, seen, ("a", "b"), dynamodb, stop)
        proxy.cut.set()
        cut = time.monotonic()
        wait("b takes over", lambda: any(who == "replica-b" for _, who in seen), 30)
    finally:
        stop.set()
        a.kill()  # cut off, its calls to the table hang until their timeouts: no wait
        a.communicate(timeout=30)
        if b is not None:
            b.terminate()
            b.communicate(timeout=30)
        proxy.close()
    last_a = max(t for t, who in seen if who == "replica-a")
    first_b = min(t for t, who in seen if who == "replica-b")
    print(f"a's last write {last_a - cut:.1f} s after the cut, b's first {first_b - cut:.1f} s")
    assert last_a < first_b  # never two writers: a was done before b began


def test_a_rolling_update_hands_the_lease_over_and_a_killed_writer_is_taken_over(
    farm_env, dynamodb, tmp_path
):
    """The new replica starts before the old one stops (a rolling update): the old one,
    stopped cleanly, gives the lease up and the new one takes it at its next heartbeat,
    every old write before every new one. Then the writer is killed with SIGKILL: the
    one waiting takes over within a lease, an interval and a heartbeat. At the end a
    third machine's `restore --limits` finds every original in the table."""
    limits, lid = farm_env["farm"].limits, farm_env["limit"]
    seen = writes_of(farm_env["farm"])
    old, _ = replica(farm_env, tmp_path, "old", dynamodb)
    new, again, stop = None, None, threading.Event()
    try:
        names = ("old", "new")
        new, new_port = second_in_waiting(farm_env, tmp_path, seen, names, dynamodb, stop)
        old.send_signal(signal.SIGTERM)
        old.communicate(timeout=30)
        stopped = time.monotonic()
        took = wait("the new one leads", lambda: leader(new_port) == 1.0)
        print(f"from the old one's stop to the new one holding the lease: {took:.1f} s")
        # released: the new one takes it at its next heartbeat (0.5 s); not released, it
        # would have waited the old one's last version out, 2 s less a heartbeat at least
        assert took < 1.2
        wait("the new one writes", lambda: any(w == "replica-new" for _, w in seen))
        order = [who for _, who in sorted(seen)]
        assert order == sorted(order, key=lambda w: w == "replica-new")  # old, then new
        assert max(t for t, w in seen if w == "replica-old") < stopped
        again, again_port = replica(farm_env, tmp_path, "old", dynamodb)  # back, waiting
        wait("it waits", lambda: leader(again_port) == 0.0)
        stop.set()
        os.kill(new.pid, signal.SIGKILL)
        new.wait(timeout=10)
        killed = time.monotonic()
        farm_env["lic"].set_artists("nuke_r", 9)  # 10 now: only a new writer writes it
        farm_env["status"].write_text(farm_env["lic"].lmstat())
        took = wait("the other takes over and writes", lambda: limits[lid].max_count == 10)
        print(f"from kill -9 to the other replica's write: {took:.1f} s")
        assert took < 2 + 1 + 0.5 + 2  # a lease, an interval, a heartbeat, and slack
        assert not [t for t, w in seen if w == "replica-new" and t > killed]
    finally:
        stop.set()
        for p in (old, new, again):
            if p is not None and p.poll() is None:
                p.terminate()
                p.communicate(timeout=30)
    path, env, _ = replica_policy(farm_env, tmp_path, "third", dynamodb)
    p = run_cli("restore", "--config", str(path), "--limits", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert limits[lid].max_count == 19  # the maxCount before license-sync's first write
