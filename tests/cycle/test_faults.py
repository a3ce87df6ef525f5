"""Faults, bad input, and nothing lost (issue: license-sync must be the most boring thing
in the studio). Against the simulated endpoint over HTTP, with real subprocesses."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from sync.cycle.restore import restore
from sync.cycle.service import Service
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.edges.http_endpoint import HealthServer
from sync.edges.metrics import Metrics
from sync.edges.sources import ToolSource
from sync.fakes.deadline import FakeDeadline, Faults
from sync.fakes.farm import FakeError, FakeFarm
from sync.policy import load_policy
from sync.values.domain import Reason
from tests.support.fakes import Clock, FakeSource
from tests.support.paths import BIN, ROOT
from tests.support.paths import FIXTURES as FIXTURES_DIR
from tests.support.policy import RENDER_HOSTS, edited, policy, pool, write_policy
from tests.support.process import free_port

FIX = FIXTURES_DIR


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    for fam in metrics.registry.collect():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def policy_for(farms: list[FakeFarm], tmp: Path, jobs: str = "none") -> Path:
    """A pool per farm, each sharing `nuke_r` through its farm's `amount.nuke`."""
    pools = {
        f"pool{i}": pool(
            farm=f.farm_id,
            farm_selector=RENDER_HOSTS,
            jobs={"policy": jobs},
            hysteresis={"settle": 1},
        )
        for i, f in enumerate(farms)
    }
    farm_ids = [f.farm_id for f in farms]
    return write_policy(tmp / "policy.yaml", policy(*farm_ids, history=tmp / "h.db", pools=pools))


def ceiling(n: int, metrics: bool = True) -> Callable[[dict[str, Any]], None]:
    """An edit of policy_for's policy: its first pool capped at `n` (and with no metrics
    address of its own, for a second process told its address on the command line)."""

    def change(doc: dict[str, Any]) -> None:
        doc["pools"]["pool0"]["ceiling"] = n
        if not metrics:
            doc.pop("metrics", None)

    return change


def farm_with_limit(max_count: int = 19) -> FakeFarm:
    farm = FakeFarm(count_delay=0)
    farm.add_queue_with_limit("amount.nuke", max_count)
    return farm


def farm_with_jobs(max_count: int) -> tuple[FakeFarm, list[str]]:
    """A farm with one limit and three jobs of 40 tasks needing it, their own caps 20, 21
    and 22 (the originals a restore must put back)."""
    farm = farm_with_limit(max_count)
    q = next(iter(farm.associations))[0]
    jobs = [
        farm.add_job(q, f"j{i}", tasks=40, amount="amount.nuke", max_worker_count=20 + i)
        for i in range(3)
    ]
    return farm, jobs


def limit_of(farm: FakeFarm) -> int:
    return next(iter(farm.limits.values())).max_count


def service(
    policy: Path,
    servers: dict[str, FakeDeadline],
    tmp: Path,
    *,
    history=True,
    attempts: int = 2,
    read_timeout: float = 20.0,
    source=None,
    call_deadline: float = 30.0,
    cycle_budget: float | None = None,
) -> Service:
    metrics = Metrics()
    src = source or FakeSource("lic")
    return Service(
        load_policy(policy),
        metrics=metrics,
        clock=Clock(),
        deadline_factory=lambda f: Deadline(
            make_client(
                "us-west-2", servers[f.id].url, attempts=attempts, read_timeout=read_timeout
            ),
            f.id,
            on_call=metrics.count_call,
            on_throttle=metrics.count_throttle,
            call_deadline=call_deadline,
        ),
        history=History(str(tmp / "h.db"), timeout=0.2) if history else None,
        policy_quiet=0,  # edits here are whole: reload them at once
        source_factory=lambda n, c: src,
        cycle_budget=cycle_budget,
    )


# -- API faults -----------------------------------------------------------------------------


def test_5xx_holds_the_last_value_then_recovers(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        svc.source_factory = None
        src = svc.sources["lic"]
        assert isinstance(src, FakeSource)
        src.artists = 5
        svc.run_cycle()
        assert limit_of(farm) == 15
        server.faults.error_rate = 1.0
        src.artists = 10
        r = svc.run_cycle()
        assert not r.ok and limit_of(farm) == 15
        assert "InternalServerErrorException" in r.errors[0]
        assert counter(svc.metrics, "license_sync_api_calls_total", outcome="error") >= 1
        assert counter(svc.metrics, "license_sync_cycles_total", result="error") == 1
        assert svc.history.query("errors")[0]["message"] == r.errors[0]
        server.faults.error_rate = 0.0
        assert svc.run_cycle().ok
        assert limit_of(farm) == 10


def test_slow_responses_time_out_and_hold(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm, faults=Faults(latency=1.5)) as server:
        svc = service(
            policy_for([farm], tmp_path),
            {farm.farm_id: server},
            tmp_path,
            attempts=1,
            read_timeout=0.5,
        )
        t0 = time.monotonic()
        r = svc.run_cycle()
        assert time.monotonic() - t0 < 10
        assert not r.ok and "check the network" in r.errors[0]
        assert limit_of(farm) == 19
        server.faults.latency = 0
        assert svc.run_cycle().ok and limit_of(farm) == 20


def test_a_trickled_answer_ends_at_the_calls_deadline_and_holds(aws_env, tmp_path):
    """botocore's read timeout is per read: a byte every 50 ms never trips it, and this
    ListLimits answer would take minutes. The call has a second in all, then it is over."""
    farm = farm_with_limit()
    with FakeDeadline(farm, faults=Faults(trickle=0.05)) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        svc.deadline(farm.farm_id).call_deadline = 1.0
        t0 = time.monotonic()
        r = svc.run_cycle()
        assert time.monotonic() - t0 < 8
        assert not r.ok and "within 1s in all" in r.errors[0], r.errors
        assert counter(svc.metrics, "license_sync_api_calls_total", outcome="timeout") == 1
        assert limit_of(farm) == 19  # held
        server.faults.trickle = 0
        assert svc.run_cycle().ok and limit_of(farm) == 20


@pytest.mark.parametrize("fault", ["trickle_head", "trickle_chunks"])
def test_a_trickled_head_or_chunk_framing_ends_at_the_calls_deadline_too(aws_env, tmp_path, fault):
    """What no per-read timeout bounds: the status line and headers, or a chunked body's
    size lines, a byte every 200 ms: half a minute and more for one answer (before: 726 s
    for one, /healthz green the while). A timer shuts the call's socket at its deadline:
    a second in all, then over."""
    farm = farm_with_limit()
    with FakeDeadline(farm, faults=Faults(**{fault: 0.2})) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        svc.deadline(farm.farm_id).call_deadline = 1.0
        setattr(server.faults, fault, 0)
        # a call made past the adapter has no deadline (before: its endless wait ended
        # the deadline thread with an OverflowError, and no call was cut again)
        svc.deadline(farm.farm_id).client.list_limits(farmId=farm.farm_id)
        setattr(server.faults, fault, 0.2)
        t0 = time.monotonic()
        r = svc.run_cycle()
        assert time.monotonic() - t0 < 4
        assert not r.ok and "within 1s in all" in r.errors[0], r.errors
        assert limit_of(farm) == 19  # held
        setattr(server.faults, fault, 0)
        assert svc.run_cycle().ok and limit_of(farm) == 20


def test_a_cycle_over_its_budget_sends_nothing_more_and_says_so(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm, faults=Faults(latency=0.4)) as server:
        svc = service(
            policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path, cycle_budget=0.6
        )
        r = svc.run_cycle()
        assert r.over_budget and any("over its budget of 1s" in e for e in r.errors), r.errors
        assert counter(svc.metrics, "license_sync_cycles_total", result="over_budget") == 1
        assert limit_of(farm) == 19  # the write after the budget was not sent
        db = svc.history.db
        assert [r[0] for r in db.execute("select result from cycles")] == ["over_budget"]
        assert any("budget" in m for (m,) in db.execute("select message from errors"))
        server.faults.latency = 0  # each cycle has its budget anew
        assert svc.run_cycle().ok and limit_of(farm) == 20


def test_an_answer_over_the_size_bound_is_refused_unread(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm, faults=Faults(pad=40 * 2**20)) as server:  # valid JSON, 40 MiB
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        r = svc.run_cycle()
        assert not r.ok and "more than the 32 MiB" in r.errors[0], r.errors
        assert counter(svc.metrics, "license_sync_api_calls_total", outcome="too_large") == 1
        assert limit_of(farm) == 19
        server.faults.pad = 0
        assert svc.run_cycle().ok and limit_of(farm) == 20


def test_throttling_burst_is_absorbed(aws_env, tmp_path, retry_sleeps):
    farm = farm_with_limit()
    with FakeDeadline(farm, faults=Faults(throttle_first=2)) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path, attempts=5)
        assert svc.run_cycle().ok
        assert counter(svc.metrics, "license_sync_api_throttles_total") == 2
        assert limit_of(farm) == 20


def test_access_denied_on_one_farm_of_two(aws_env, tmp_path):
    a, b = farm_with_limit(), farm_with_limit()
    with (
        FakeDeadline(a) as sa,
        FakeDeadline(b, faults=Faults(deny=frozenset({"ListLimits"}))) as sb,
    ):
        svc = service(policy_for([a, b], tmp_path), {a.farm_id: sa, b.farm_id: sb}, tmp_path)
        r = svc.run_cycle()
        assert limit_of(a) == 20  # the healthy farm is synced
        assert limit_of(b) == 19  # the denied one keeps its value
        assert any(b.farm_id in e and "deadline:ListLimits" in e for e in r.errors)
        assert (
            counter(
                svc.metrics,
                "license_sync_api_calls_total",
                operation="ListLimits",
                outcome="denied",
            )
            == 1
        )
        decisions = {d["pool"]: d for d in svc.history.query("decisions")}
        assert decisions["pool1"]["status"] == "error"
        assert "AccessDenied" in decisions["pool1"]["reason"]


def test_batch_update_partial_failure_keeps_the_original(aws_env, tmp_path):
    farm = farm_with_limit(10)
    q = next(iter(farm.associations))[0]
    ok = farm.add_job(q, "ok", tasks=40, amount="amount.nuke")
    # 30: above what license-sync could have written, so a new history takes it as original
    bad = farm.add_job(q, "bad", tasks=40, amount="amount.nuke", max_worker_count=30)
    real = farm.op_BatchUpdateJob

    def partial(p):
        keep = [j for j in p["jobs"] if j["jobId"] != bad]
        out = real({**p, "jobs": keep})
        out["errors"].append(
            {
                "farmId": farm.farm_id,
                "queueId": q,
                "jobId": bad,
                "code": "InternalServerErrorException",
                "message": "try again",
            }
        )
        return out

    farm.op_BatchUpdateJob = partial
    with FakeDeadline(farm) as server:
        svc = service(policy_for([farm], tmp_path, jobs="fair"), {farm.farm_id: server}, tmp_path)
        svc.sources["lic"].total = 10
        r = svc.run_cycle()
        assert farm.jobs[ok].max_worker_count == 5
        assert farm.jobs[bad].max_worker_count == 30
        assert any(bad in e and "try again" in e for e in r.errors)
        rec = svc.history.job_originals()[bad]
        assert (rec["original"], rec["last_written"]) == (30, None)


# -- source faults --------------------------------------------------------------------------


@pytest.fixture
def fake_tools(monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    for var in ("FAKE_LM_OUTPUT", "FAKE_LM_MODE"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_fifty_megabytes_of_output_is_a_down_source(fake_tools):
    fake_tools.setenv("FAKE_LM_MODE", "big")
    t0 = time.monotonic()
    r = ToolSource("lic", "flexlm", ["27000@lic1"], "lmutil", 30).read()
    assert not r.up and "no lmstat output" in r.errors[0]
    assert time.monotonic() - t0 < 30


def test_vendor_daemon_down_holds_the_pool(aws_env, tmp_path, fake_tools):
    """The feature's vendor daemon is down: the feature is missing, the pool holds."""
    farm = farm_with_limit()
    fake_tools.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/two_vendors.txt"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""\
farms: [{{id: {farm.farm_id}, region: us-west-2}}]
sources: {{lic: {{kind: flexlm, servers: ["27000@flex1"]}}}}
pools: {{matlab: {{limit: amount.nuke, features: [{{source: lic, feature: MATLAB, vendor: MLM}}]}}}}
""")
    with FakeDeadline(farm) as server:
        metrics = Metrics()
        svc = Service(
            load_policy(policy),
            metrics=metrics,
            clock=Clock(),
            deadline_factory=lambda f: Deadline(make_client("us-west-2", server.url), f.id),
        )
        r = svc.run_cycle()
    [d] = r.plan.decisions
    assert d.new is None or d.new < 19
    assert d.why[0] == Reason.of("feature_missing", feature="MATLAB", source="lic")


# -- policy faults --------------------------------------------------------------------------


def test_atomic_rename_of_a_valid_policy_is_picked_up(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        svc = service(policy, {farm.farm_id: server}, tmp_path)
        svc.run_cycle()
        new = tmp_path / "policy.yaml.tmp"
        new.write_text(edited(policy, ceiling(6)))
        os.replace(new, policy)
        svc.run_cycle()
        assert limit_of(farm) == 6


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """`license-sync validate PATH`, as a TD's CI runs it."""
    return subprocess.run(
        [sys.executable, "-m", "sync", "validate", str(path)], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "bad", ["pools: [\n", "", "farms: []\nsources: {}\npools: {}\n", "farms:\n  - id: farm-0\n"]
)
def test_validate_catches_each_bad_edit(tmp_path, bad):
    path = tmp_path / "p.yaml"
    path.write_text(bad)
    p = validate(path)
    assert p.returncode == 1
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", p.stderr)


DEEP = "interval: 60s\nfarms: " + "[" * 500 + "]" * 500 + "\n"  # 1 KB, 500 levels


@pytest.mark.parametrize("depth", [500, 5000])
def test_a_policy_nested_too_deep_is_a_policy_error_from_validate(tmp_path, depth):
    path = tmp_path / "p.yaml"
    path.write_text("interval: 60s\nfarms: " + "[" * depth + "]" * depth + "\n")
    p = validate(path)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines and len(lines) <= 3, lines  # what is wrong, said briefly
    assert all(str(path) in line for line in lines), lines


def test_a_policy_nested_too_deep_keeps_the_last_good_one_running(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        svc = service(policy, {farm.farm_id: server}, tmp_path)
        svc.run_cycle()
        policy.write_text(DEEP)
        r = svc.run_cycle()
        assert r.ok and svc.loaded.sha != "" and limit_of(farm) == 20
        valid = svc.metrics.registry.get_sample_value("license_sync_policy_file_valid")
        assert valid == 0


@pytest.mark.parametrize(
    ("exe", "ok"),
    [
        ("lmutil", True),
        ("/opt/flexlm/lmutil", True),
        ("bin/lmutil", False),
        ("", False),
        ("a\nb", False),
    ],
)
def test_executable_paths_validated(exe, ok):
    from sync.policy import PolicyErrors, parse_policy

    text = (
        "farms: [{id: farm-" + "0" * 32 + "}]\nsources:\n"
        f"  lic: {{kind: flexlm, servers: ['27000@h'], executable: {json.dumps(exe)}}}\n"
        "pools: {p: {limit: x, features: [{source: lic, feature: f}]}}\n"
    )
    if ok:
        parse_policy(text)
    else:
        with pytest.raises(PolicyErrors, match="executable"):
            parse_policy(text)


# -- history faults -------------------------------------------------------------------------


def test_history_locked_by_a_reader_does_not_stop_syncing(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        blocker = sqlite3.connect(tmp_path / "h.db", timeout=0.1)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            r = svc.run_cycle()
            assert limit_of(farm) == 20  # synced all the same
            assert counter(svc.metrics, "license_sync_history_errors_total") >= 1
            assert r.plan.decisions[0].new == 20
        finally:
            blocker.rollback()
            blocker.close()
        svc.sources["lic"].artists = 3
        svc.run_cycle()
        assert [c["changes"] for c in svc.history.query("cycles")] == [1]


def test_a_limits_original_the_disk_refused_is_written_once_it_takes_it(aws_env, tmp_path):
    farm = farm_with_limit(19)
    with FakeDeadline(farm) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        blocker = sqlite3.connect(tmp_path / "h.db", timeout=0.1)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer past the timeout
        try:
            svc.run_cycle()
            assert limit_of(farm) == 20  # synced all the same; the original not on disk
        finally:
            blocker.rollback()
            blocker.close()
        svc.run_cycle()  # nothing to write to the limit; the disk takes the original now
        assert limit_of(farm) == 20
        svc.history.close()
        reopened = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        done = restore(reopened.memory, reopened.writer, reopened.clock(), limits=True)
        assert not done.failed, done.failed
        assert limit_of(farm) == 19  # the value from before our first write, not ours


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs: a real file system that fills up (needs root, as CI runs)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {p.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("option", ["ro", "nr_inodes=1"])  # read-only; no inode to spare
def test_a_history_volume_that_cannot_be_written_at_start_syncs_limits(
    aws_env, tmp_path, small_disk, option
):
    subprocess.run(["mount", "-o", f"remount,{option}", str(small_disk)], check=True)
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        policy.write_text(
            policy.read_text().replace(str(tmp_path / "h.db"), str(small_disk / "h.db"))
        )
        p = run_proc(policy, server, tmp_path, "run", "--once")
        out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out  # no traceback, no crash loop
    assert "Traceback" not in out and "syncing limits without a history" in out
    assert limit_of(farm) == 10  # the limit synced all the same


def test_restore_puts_everything_back_from_a_read_only_copy(aws_env, tmp_path, small_disk):
    """The service's volume is gone; a snapshot of it is mounted read-only: `restore`
    reads the originals from it and puts them back, and says it could not record that."""
    farm, jobs = farm_with_jobs(7)
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path, jobs="fair")
        policy.write_text(
            policy.read_text().replace(str(tmp_path / "h.db"), str(small_disk / "h.db"))
        )
        out, _ = run_proc(policy, server, tmp_path, "run", "--once").communicate(timeout=60)
        assert [farm.jobs[j].max_worker_count for j in jobs] == [3, 3, 4], out
        assert limit_of(farm) == 10
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        rest = run_proc(policy, server, tmp_path, "restore", "--limits")
        out, _ = rest.communicate(timeout=60)
    assert rest.returncode == 0, out
    assert "Traceback" not in out and "read-only" in out
    assert [farm.jobs[j].max_worker_count for j in jobs] == [20, 21, 22]
    assert limit_of(farm) == 7


def fill(disk: Path) -> None:
    fd = os.open(disk / "ballast", os.O_CREAT | os.O_WRONLY)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        os.close(fd)


def test_disk_full_leaves_jobs_untouched(aws_env, tmp_path, small_disk):
    farm = farm_with_limit(10)
    q = next(iter(farm.associations))[0]
    job = farm.add_job(q, "a", tasks=40, amount="amount.nuke", max_worker_count=33)
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path, jobs="fair")
        policy.write_text(
            policy.read_text().replace(str(tmp_path / "h.db"), str(small_disk / "h.db"))
        )
        metrics = Metrics()
        src = FakeSource("lic", total=10)
        svc = Service(
            load_policy(policy),
            metrics=metrics,
            clock=Clock(),
            deadline_factory=lambda f: Deadline(make_client("us-west-2", server.url), f.id),
            history=History(str(small_disk / "h.db"), timeout=0.2),
            source_factory=lambda n, c: src,
        )
        fill(small_disk)
        src.artists = 2
        r = svc.run_cycle()
        assert limit_of(farm) == 8  # limits keep syncing
        assert farm.jobs[job].max_worker_count == 33  # its original could not be recorded
        assert any("job caps not written" in e for e in r.errors), r.errors
        assert counter(metrics, "license_sync_history_errors_total") >= 1
        (small_disk / "ballast").unlink()  # space again: the next cycle records and caps
        r = svc.run_cycle()
        assert farm.jobs[job].max_worker_count == 8
        assert svc.history.job_originals()[job]["original"] == 33


def test_corrupt_history_file(aws_env, tmp_path):
    (tmp_path / "h.db").write_bytes(b"this is not a database" * 100)
    farm = farm_with_limit(10)
    q = next(iter(farm.associations))[0]
    job = farm.add_job(q, "a", tasks=40, amount="amount.nuke", max_worker_count=33)
    from sync.process.app import open_history

    metrics = Metrics()
    assert open_history(str(tmp_path / "h.db"), 86400, metrics) is None
    assert counter(metrics, "license_sync_history_errors_total") == 1
    with FakeDeadline(farm) as server:
        svc = service(
            policy_for([farm], tmp_path, jobs="fair"),
            {farm.farm_id: server},
            tmp_path,
            history=False,
        )
        svc.sources["lic"].artists = 12
        r = svc.run_cycle()
        assert limit_of(farm) == 8  # limits still sync
        assert farm.jobs[job].max_worker_count == 33  # jobs are not touched
        assert any("no history" in e for e in r.errors)
    assert (tmp_path / "h.db").read_bytes().startswith(b"this is not")  # kept for a human


# -- process faults -------------------------------------------------------------------------


@contextmanager
def stopping(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """`proc`, terminated and waited for however the block ends."""
    try:
        yield proc
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def run_proc(policy: Path, server: FakeDeadline, tmp: Path, *extra: str) -> subprocess.Popen:
    status = tmp / "lmstat.txt"
    if not status.exists():
        from sync.fakes.license import FakeFeature, FakeLicenseServer

        status.write_text(FakeLicenseServer(None, [FakeFeature("nuke_r", 10)]).lmstat())
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LM_OUTPUT": str(status),
        "AWS_ENDPOINT_URL_DEADLINE": server.url,
    }
    serving = extra[:1] == ("run",) and "--once" not in extra
    if serving and "--metrics-address" not in extra and "metrics:" not in policy.read_text():
        extra = (*extra, "--metrics-address", f"127.0.0.1:{free_port()}")  # never 9462
    return subprocess.Popen(
        [sys.executable, "-m", "sync", *extra, "--config", str(policy)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigterm_mid_cycle_finishes_the_write(aws_env, tmp_path):
    farm = farm_with_limit()
    port = free_port()
    gate, entered = threading.Event(), threading.Event()

    def hold_update(op: str) -> None:
        if op == "UpdateLimit":
            entered.set()
            gate.wait(20)

    with FakeDeadline(farm) as server:
        server.before_op = hold_update
        policy = policy_for([farm], tmp_path)
        policy.write_text(policy.read_text() + f'metrics: {{address: "127.0.0.1:{port}"}}\n')
        p = run_proc(policy, server, tmp_path, "run")
        lines: list[str] = []
        got_signal = threading.Event()

        def read() -> None:
            assert p.stdout is not None
            for line in p.stdout:
                lines.append(line)
                if "signal 15" in line:
                    got_signal.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert entered.wait(30), "no UpdateLimit"
            p.send_signal(signal.SIGTERM)  # while the write is in flight
            assert got_signal.wait(30), "".join(lines)
            gate.set()  # only now may the write complete
            p.wait(timeout=30)
            reader.join(10)
        finally:
            gate.set()
            if p.poll() is None:
                p.kill()
        out = "".join(lines)
        assert p.returncode == 0, out
        assert limit_of(farm) == 10  # the write finished
        assert out.index("signal 15") < out.index("maxCount 19 → 10") < out.index("stopped cleanly")


def _lines(p: subprocess.Popen, lines: list[str], seen: dict[str, threading.Event]) -> None:
    assert p.stdout is not None
    for line in p.stdout:
        lines.append(line)
        for words, event in seen.items():
            if words in line:
                event.set()


def test_sigterm_stops_within_docker_stops_ten_seconds_while_a_write_hangs(aws_env, tmp_path):
    farm = farm_with_limit()
    hung, release = threading.Event(), threading.Event()

    def hang_update(op: str) -> None:
        if op == "UpdateLimit":
            hung.set()
            release.wait(120)  # far longer than a docker stop allows

    with FakeDeadline(farm) as server:
        server.before_op = hang_update
        policy = policy_for([farm], tmp_path)
        policy.write_text(policy.read_text() + f'metrics: {{address: "127.0.0.1:{free_port()}"}}\n')
        p = run_proc(policy, server, tmp_path, "run", "--stop-grace", "1")
        lines: list[str] = []
        reader = threading.Thread(target=_lines, args=(p, lines, {}), daemon=True)
        reader.start()
        try:
            assert hung.wait(30), "".join(lines)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)  # what `docker stop` gives before SIGKILL (default grace: 7 s)
        finally:
            release.set()
            if p.poll() is None:
                p.kill()
        reader.join(10)
        out = "".join(lines)
        assert p.returncode == 0, out
        assert "after 1.0s; it was abandoned" in out
        assert "Traceback" not in out


def test_sighup_reloads_the_policy_without_waiting_for_the_interval(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        policy.write_text(
            policy.read_text() + f'interval: 1h\nmetrics: {{address: "127.0.0.1:{free_port()}"}}\n'
        )
        p = run_proc(policy, server, tmp_path, "run")
        lines: list[str] = []
        first, reloaded = threading.Event(), threading.Event()
        seen = {"maxCount 19 → 10": first, "maxCount 10 → 5": reloaded}
        reader = threading.Thread(target=_lines, args=(p, lines, seen), daemon=True)
        reader.start()
        try:
            assert first.wait(30), "".join(lines)
            policy.write_text(edited(policy, ceiling(5)))
            p.send_signal(signal.SIGHUP)  # "the file is ready": no quiet period, no hour
            assert reloaded.wait(30), "".join(lines)
            assert p.poll() is None  # SIGHUP is no reason to die
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
        reader.join(10)
        assert p.returncode == 0, "".join(lines)
        assert limit_of(farm) == 5


LIBFAKETIME = next(
    (p for p in glob.glob("/usr/lib/*/faketime/libfaketime.so.1") if os.path.exists(p)), None
)


def test_cycles_go_on_when_the_wall_clock_steps_back_a_day(aws_env, tmp_path):
    """The real process under libfaketime: the wall clock steps back a day mid-run (NTP
    correcting a clock that ran ahead); the monotonic clock, untouched, keeps the beat."""
    if LIBFAKETIME is None:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing: apt-get install faketime")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    farm = farm_with_limit()
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        port = free_port()
        policy.write_text(
            policy.read_text() + f'interval: 1s\nmetrics: {{address: "127.0.0.1:{port}"}}\n'
        )
        faked = {
            "LD_PRELOAD": LIBFAKETIME,
            "FAKETIME_TIMESTAMP_FILE": str(offset),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        with mock.patch.dict(os.environ, faked):
            p = run_proc(policy, server, tmp_path, "run")
        try:
            assert _wait_for(lambda: _cycles(port) >= 2, 30), "no first cycles"
            offset.write_text("-1d\n")  # the wall clock steps back a day, at once
            before = _cycles(port)
            assert _wait_for(lambda: _cycles(port) >= before + 2, 20), "cycles stopped"
            health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            said = health.read().decode()
            assert health.status == 200 and "-" not in said.split("started")[-1], said
        finally:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=15)
        assert "the wall clock moved" in out, out


def test_two_instances_never_both_write_even_with_the_lock_file_removed(aws_env, tmp_path):
    farm = farm_with_limit()
    writes: list[int] = []
    real = farm.op_UpdateLimit

    def counted(p):
        writes.append(p["maxCount"])
        return real(p)

    farm.op_UpdateLimit = counted
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        port = free_port()
        base = policy.read_text() + "interval: 1s\n"
        policy.write_text(base + f'metrics: {{address: "127.0.0.1:{port}"}}\n')
        with stopping(run_proc(policy, server, tmp_path, "run")):
            assert _wait_for(lambda: _cycles(port) >= 1, 30), "no first cycle"
            Path(f"{tmp_path / 'h.db'}.lock").unlink()  # a cleanup takes the lock file
            other = tmp_path / "other.yaml"  # a rolling update's second policy
            other.write_text(edited(policy, ceiling(5, metrics=False)))
            second = run_proc(other, server, tmp_path, "run", "--metrics-address", "127.0.0.1:0")
            out, _ = second.communicate(timeout=30)
            assert second.returncode == 1, out
            assert "another license-sync" in out and "is using the history" in out
            assert farm.limits[next(iter(farm.limits))].max_count != 5  # it wrote nothing
            # the history itself removed: a second one starts on a new file; the first,
            # displaced, then writes nothing, so the limit is not flapped between the two
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp_path / 'h.db'}{suffix}").unlink(missing_ok=True)
            again = run_proc(other, server, tmp_path, "run", "--metrics-address", "127.0.0.1:0")
            with stopping(again):
                assert _wait_for(lambda: 5 in writes, 30), writes
                seen = len(writes)
                assert _wait_for(lambda: _ready(port) is False, 10)
                done = _cycles(port, "error")  # each says the history is not its own
                assert _wait_for(lambda: _cycles(port, "error") >= done + 3, 15)
                assert writes[seen:] == [], writes  # three cycles of the first: no write


def test_a_history_on_network_storage_keeps_no_wal_and_one_writer(aws_env, tmp_path):
    """`history.journal: rollback` (NFS, EFS): no -wal or -shm ever; the lock is a POSIX
    lock on PATH.lock, so a second writer is refused; and if a cleanup removes that file,
    the instance a second one displaces writes nothing more."""
    farm = farm_with_limit()
    writes: list[int] = []
    real = farm.op_UpdateLimit
    farm.op_UpdateLimit = lambda p: (writes.append(p["maxCount"]), real(p))[1]
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path)
        port = free_port()
        base = edited(policy, lambda doc: doc["history"].update(journal="rollback"))
        base += "interval: 1s\n"
        policy.write_text(base + f'metrics: {{address: "127.0.0.1:{port}"}}\n')
        with stopping(run_proc(policy, server, tmp_path, "run")):
            assert _wait_for(lambda: _cycles(port) >= 2, 30), "no cycles"
            db = tmp_path / "h.db"
            assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            other = tmp_path / "other.yaml"
            other.write_text(edited(policy, ceiling(5, metrics=False)))
            second = run_proc(other, server, tmp_path, "run", "--metrics-address", "127.0.0.1:0")
            out, _ = second.communicate(timeout=30)
            assert second.returncode == 1 and "is using the history" in out, out
            Path(f"{db}.lock").unlink()  # a cleanup takes the lock file
            again = run_proc(other, server, tmp_path, "run", "--metrics-address", "127.0.0.1:0")
            with stopping(again):
                assert _wait_for(lambda: 5 in writes, 30), writes
                assert _wait_for(lambda: _ready(port) is False, 10)
                seen = len(writes)
                ran = lambda: _cycles(port) + _cycles(port, "error")  # noqa: E731
                done = ran()
                assert _wait_for(lambda: ran() >= done + 3, 15)
                assert writes[seen:] == [], writes  # three cycles of the displaced: no write


def _ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
    except urllib.error.HTTPError:
        return False
    except OSError:
        return True


def _cycles(port: int, result: str = "ok") -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return 0.0
    m = re.search(rb'license_sync_cycles_total\{result="%s"\} ([0-9.]+)' % result.encode(), text)
    return float(m.group(1)) if m else 0.0


def _wait_for(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_kill_9_between_original_and_write_then_restart_and_restore(aws_env, tmp_path):
    farm, jobs = farm_with_jobs(10)
    entered = threading.Event()
    release = threading.Event()

    def die_on_write(op: str) -> None:
        if op == "BatchUpdateJob":
            entered.set()
            release.wait(20)
            raise FakeError("InternalServerErrorException", "the caller is gone", 500)

    with FakeDeadline(farm) as server:
        server.before_op = die_on_write
        policy = policy_for([farm], tmp_path, jobs="fair")
        p = run_proc(policy, server, tmp_path, "run")
        try:
            assert entered.wait(30), "no BatchUpdateJob"
            p.kill()  # SIGKILL: no chance to clean up
            p.wait(10)
        finally:
            release.set()
        assert [farm.jobs[j].max_worker_count for j in jobs] == [20, 21, 22]  # never landed
        with sqlite3.connect(tmp_path / "h.db") as db:
            rows = db.execute(
                "select original, pending, last_written from job_originals order by original"
            ).fetchall()
        assert rows == [(20, 3, None), (21, 3, None), (22, 4, None)]
        # restart: the originals are read back and the caps converge
        server.before_op = None
        once = run_proc(policy, server, tmp_path, "run", "--once")
        out, _ = once.communicate(timeout=60)
        assert once.returncode == 0, out
        assert [farm.jobs[j].max_worker_count for j in jobs] == [3, 3, 4]
        # and restore puts back every original, from the records made before the crash
        rest = run_proc(policy, server, tmp_path, "restore", "--limits")
        out, _ = rest.communicate(timeout=60)
        assert rest.returncode == 0, out
        assert [farm.jobs[j].max_worker_count for j in jobs] == [20, 21, 22]
        assert limit_of(farm) == 10


# -- security -------------------------------------------------------------------------------


def test_no_shell_anywhere():
    for path in (ROOT / "sync").rglob("*.py"):
        text = path.read_text()
        for bad in ("shell=True", "os.system(", "os.popen(", "commands.getoutput"):
            assert bad not in text, f"{path}: {bad}"


def test_metrics_server_binds_only_where_configured(aws_env, tmp_path):
    from sync.edges.http_endpoint import HealthServer

    server = HealthServer(Metrics(), "127.0.0.2:0", lambda: (True, "ok")).start()
    try:
        assert server.address == "127.0.0.2"
    finally:
        server.stop()


def test_readyz_and_healthz_times(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        assert svc.ready() == (False, "no successful cycle yet")
        svc.run_cycle()
        assert svc.ready()[0]
        svc.clock.advance(3 * 60 + 1)
        assert not svc.ready()[0]


def test_healthz_fails_once_no_cycle_has_started_for_long(aws_env, tmp_path):
    farm = farm_with_limit()
    with FakeDeadline(farm) as server:
        svc = service(policy_for([farm], tmp_path), {farm.farm_id: server}, tmp_path)
        assert svc.alive()[0]  # just started
        svc.run_cycle()
        svc.clock.advance(14 * 60)  # a slow farm: still within the grace
        assert svc.alive()[0]
        svc.clock.advance(2 * 60)  # 16 minutes and no cycle started: the loop is stuck
        ok, why = svc.alive()
        assert not ok and "no cycle started for 960s" in why
        health = HealthServer(svc.metrics, "127.0.0.1:0", svc.ready, alive=svc.alive).start()
        try:
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://127.0.0.1:{health.port}/healthz", timeout=10)
            assert e.value.code == 503
        finally:
            health.stop()
        svc.run_cycle()
        assert svc.alive()[0]


def test_restore_puts_back_what_a_garbled_memory_still_holds_and_says_what_it_could_not(
    aws_env, tmp_path
):
    """The `state` table's memory row garbled: `restore --limits` still puts back every
    job and the limit from the tables it can read, names what it could not, and exits 1
    (before: "0 job(s) checked", exit 0, the farm left at our caps)."""
    farm, jobs = farm_with_jobs(7)
    with FakeDeadline(farm) as server:
        policy = policy_for([farm], tmp_path, jobs="fair")
        out, _ = run_proc(policy, server, tmp_path, "run", "--once").communicate(timeout=60)
        assert [farm.jobs[j].max_worker_count for j in jobs] == [3, 3, 4], out
        with sqlite3.connect(tmp_path / "h.db") as db:
            db.execute("update state set value = '{garbage' where key = 'memory'")
        rest = run_proc(policy, server, tmp_path, "restore", "--limits")
        out, _ = rest.communicate(timeout=60)
    assert rest.returncode == 1, out
    assert [farm.jobs[j].max_worker_count for j in jobs] == [20, 21, 22], out
    assert limit_of(farm) == 7
    assert "3 job(s) checked" in out and "the limits' memory" in out and "Traceback" not in out
