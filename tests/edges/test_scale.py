"""Reading a large farm: concurrent reads bounded by the policy, timestamps through the
standard library, and the scale benchmark's figures (its targets live in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import botocore.utils
import pytest

from sync.edges.deadline import factory_for, parse_timestamp
from sync.edges.metrics import Metrics
from sync.policy import FarmConfig
from tests.support.paths import ROOT


class InFlight:
    """The fake's calls of one operation in flight at once. After the first `alone`,
    calls wait for each other in groups of `hold`: they can only go on if the client sent
    `hold` of them together (else the group breaks after 10 s and `most` stays short)."""

    def __init__(self, operation: str, hold: int, alone: int = 0, linger: float = 0.0):
        self.operation, self.now, self.most, self.alone = operation, 0, 0, alone
        self.linger = linger  # how long each call takes: calls sent together overlap
        self.barrier = threading.Barrier(hold, timeout=10) if hold > 1 else None
        self.lock = threading.Lock()

    def __call__(self, op: str) -> None:
        if op != self.operation:
            return
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            wait = self.alone <= 0
            self.alone -= 1
        try:
            if wait and self.barrier is not None and not self.barrier.broken:
                self.barrier.wait()
            time.sleep(self.linger)
        except threading.BrokenBarrierError:
            pass  # the later calls, once the first `hold` met
        finally:
            with self.lock:
                self.now -= 1


def farm_with_jobs(sim, n: int) -> list[tuple[str, str]]:
    q = sim.farm.add_queue()
    return [(q, sim.farm.add_job(q, f"j{i}", tasks=3, amount="amount.nuke")) for i in range(n)]


@pytest.mark.parametrize("threads", [1, 4])
def test_steps_are_read_concurrently_up_to_the_policys_read_threads(sim, threads):
    jobs = farm_with_jobs(sim, 12)
    sim.before_op = seen = InFlight("ListSteps", hold=threads)
    farm = FarmConfig(id=sim.farm.farm_id, region="us-west-2", read_threads=threads)
    dl = factory_for(Metrics(), sim.url)(farm)
    steps = dl.step_amounts(jobs)
    assert sorted(steps) == sorted(j for _, j in jobs)
    assert seen.most == threads  # as many as allowed at once, and never more


def test_search_pages_after_the_first_are_read_at_once(sim):
    jobs = farm_with_jobs(sim, 450)
    sim.before_op = seen = InFlight("SearchJobs", hold=4, alone=1)  # the first page alone
    dl = factory_for(Metrics(), sim.url)(FarmConfig(id=sim.farm.farm_id, region="us-west-2"))
    found = dl.search_jobs([jobs[0][0]])
    assert sorted(j.job_id for j in found) == sorted(j for _, j in jobs)
    assert sim.calls["SearchJobs"] == 5 and seen.most == 4  # the first, then four at once


def test_groups_of_queues_and_their_pages_together_stay_within_read_threads(sim):
    queues = [sim.farm.add_queue() for _ in range(25)]  # three groups of ≤ 10 queues
    for i in range(600):
        sim.farm.add_job(queues[i % 25], f"j{i}", tasks=1, amount="amount.nuke")
    sim.before_op = seen = InFlight("SearchJobs", hold=1, linger=0.05)
    farm = FarmConfig(id=sim.farm.farm_id, region="us-west-2", read_threads=3)
    found = factory_for(Metrics(), sim.url)(farm).search_jobs(queues)
    assert len(found) == 600
    assert seen.most == 3  # groups and pages at once, but never past the farm's bound


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T09:30:00Z",
        "2026-11-28T09:30:00.123456Z",
        "2026-11-28T09:30:00+01:00",
        "2026-11-28T09:30:00",
        1795340000,
        1795340000.25,
        "Sat, 28 Nov 2026 09:30:00 GMT",  # not ISO: botocore's own parser
    ],
)
def test_timestamps_parse_as_botocore_would(value):
    ours, theirs = parse_timestamp(value), botocore.utils.parse_timestamp(value)
    assert (ours.tzinfo is None) == (theirs.tzinfo is None)
    assert ours == theirs


def test_jobs_read_carry_aware_creation_times(sim):
    jobs = farm_with_jobs(sim, 2)
    dl = factory_for(Metrics(), sim.url)(FarmConfig(id=sim.farm.farm_id, region="us-west-2"))
    [job, _] = sorted(dl.search_jobs([jobs[0][0]]), key=lambda j: j.created_at)
    assert job.created_at.utcoffset() == timedelta(0)
    assert abs(job.created_at - datetime.now(UTC)) < timedelta(hours=1)


def test_the_scale_benchmark_reports_every_figure(aws_env):
    p = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks/farm_scale.py"), "--farms", "2",
            "--pools", "4", "--jobs", "300", "--latency", "0ms", "--cycles", "2", "--json",
        ],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    keys = {"first_limits_s", "all_capped_s", "steady_wall_s", "steady_cpu_s", "peak_rss_mib"}
    assert keys <= set(r) and all(r[k] > 0 for k in keys)
    assert set(r["calls"]) == {"first", "steady"}
    assert r["calls"]["first"]["UpdateLimit"] == 4  # every limit written by the first cycle
    assert r["calls"]["steady"].get("ListSteps", 0) == 0  # steps are read once
    assert r["steady_writes"] == 0
    assert r["first_limits_s"] <= r["all_capped_s"]
