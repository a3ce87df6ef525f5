"""Sharing a limit between jobs: the pure allocation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.law.allocation import allocate
from sync.law.jobplan import cap_to_write
from sync.law.reasons import text
from sync.policy import JobsPolicy
from sync.values.domain import Allocation, JobDemand

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def job(
    n: int,
    tasks: int,
    units: int = 1,
    priority: int = 50,
    queue: str = "q1",
    name: str | None = None,
    user: str = "ana",
) -> JobDemand:
    return JobDemand(
        f"job-{n}",
        queue,
        name or f"shot{n}",
        user,
        T0 + timedelta(minutes=n),
        priority,
        units,
        tasks,
        -1,
    )


def caps(capacity, jobs, **policy):
    return [a.cap for a in allocate(capacity, jobs, JobsPolicy(**policy))]


@pytest.mark.parametrize(
    ("capacity", "tasks", "expected"),
    [
        (10, [8, 2], [8, 2]),  # enough for everyone
        (10, [20, 20], [5, 5]),
        (10, [10, 10, 10], [4, 3, 3]),  # the leftover goes to the oldest on a tie
        (10, [30, 2, 1], [7, 2, 1]),  # small demands are met in full, the rest to the big one
        (3, [5, 5, 5, 5], [1, 1, 1, 1]),  # min_workers keeps every job going
        (10, [0, 10], [1, 10]),  # nothing ready now: the floor only; the rest to the other
    ],
)
def test_fair(capacity, tasks, expected):
    assert caps(capacity, [job(i, t) for i, t in enumerate(tasks)], policy="fair") == expected


def test_units_per_task():
    # job 0 holds 2 units a task: 10 units are 5 workers for it
    assert caps(12, [job(0, 10, units=2), job(1, 10)], policy="fair") == [3, 6]


def test_weighted_by_priority():
    assert caps(
        12, [job(0, 50, priority=75), job(1, 50, priority=25)], policy="weighted", min_workers=1
    ) == [9, 3]


def test_weighted_by_queue():
    jobs = [job(0, 50, queue="qa"), job(1, 50, queue="qb")]
    assert caps(
        12, jobs, policy="weighted", weight_by="queue", queue_weights={"qa": 3, "qb": 1}
    ) == [9, 3]


def test_fixed():
    assert caps(100, [job(0, 50), job(1, 2)], policy="fixed", cap=4) == [4, 4]


def test_fixed_caps_are_raised_to_min_workers():
    assert caps(100, [job(0, 50)], policy="fixed", cap=2, min_workers=3) == [3]


def test_exempt_and_overrides():
    jobs = [job(0, 20, name="hero_comp"), job(1, 20, user="batch"), job(2, 20)]
    got = caps(
        10,
        jobs,
        policy="fair",
        exempt=[{"name": "^hero"}],
        overrides=[{"user": "batch", "max_workers": 2}],
    )
    assert got == [None, 2, 8]


def test_unlimited_capacity_uncaps():
    assert caps(-1, [job(0, 5)], policy="fair") == [-1]


@given(
    capacity=st.integers(1, 200),
    demands=st.lists(
        st.tuples(st.integers(0, 60), st.integers(1, 3), st.integers(0, 100)),
        min_size=1,
        max_size=12,
    ),
    min_workers=st.integers(1, 3),
    policy=st.sampled_from(["fair", "weighted"]),
)
@settings(max_examples=300, deadline=None)
def test_allocation_properties(capacity, demands, min_workers, policy):
    jobs = [job(i, t, u, p) for i, (t, u, p) in enumerate(demands)]
    allocs = allocate(capacity, jobs, JobsPolicy(policy=policy, min_workers=min_workers))
    used = 0
    for j, a in zip(jobs, allocs, strict=True):
        assert a.cap is not None and a.cap >= 1  # never 0
        assert a.cap >= min_workers
        extra = max(0, a.cap - min_workers)
        used += extra * j.units
        assert a.cap <= max(min_workers, j.tasks)  # no job gets more than it can use
    # beyond the floors, the units given never exceed the capacity
    assert used <= capacity


def test_units_lost_to_rounding_to_whole_tasks_go_to_whoever_can_use_them():
    # fair shares of 5 units each are one 3-unit task each: 4 units would sit idle
    assert caps(10, [job(0, 10, units=3), job(1, 10, units=3)], policy="fair") == [2, 1]
    # what the 3-unit job cannot use goes to the 1-unit job: all 10 units are held
    assert caps(10, [job(0, 10, units=3), job(1, 10)], policy="fair") == [1, 7]


def test_slack_gives_each_share_a_band_never_past_a_ceiling():
    policy = JobsPolicy(policy="fair", slack=3, overrides=[{"name": "^hero", "max_workers": 6}])
    out = allocate(10, [job(0, 20), job(1, 20, name="hero_1")], policy)
    assert [(a.cap, a.band) for a in out] == [(5, 3), (5, 1)]
    fixed = allocate(10, [job(0, 20)], JobsPolicy(policy="fixed", cap=4, slack=3))
    assert fixed[0].band == 0  # a fixed cap is the cap: no band


@pytest.mark.parametrize(
    ("share", "band", "current", "ours", "written"),
    [
        (5, 2, 5, True, None),  # at the share: in band
        (5, 2, 7, True, None),  # at the top of the band
        (5, 2, 4, True, 6),  # below the share: to the middle of the band
        (5, 2, 8, True, 6),  # above the band
        (5, 2, -1, False, 6),  # a new job
        (5, 2, 6, False, None),  # not ours, yet already what we would write
        (5, 2, 7, False, 6),  # not ours (respect_manual off): written
        (5, 0, 6, True, 5),  # no slack: the share itself
    ],
)
def test_a_cap_is_written_only_out_of_its_band(share, band, current, ours, written):
    assert cap_to_write(Allocation("j", share, 1.0, (), band), current, ours) == written


def test_each_allocation_says_its_job_cap_weight_and_why():
    exempt, plain = job(1, 4, queue="q9"), job(3, 9, priority=0)
    capped = replace(job(2, 6, priority=80), ceiling=3)
    bounds = {"exempt": [{"queue": "q9"}], "overrides": [{"name": "^shot3$", "max_workers": 5}]}
    three = [exempt, capped, plain]
    unlimited = allocate(-1, three, JobsPolicy(policy="weighted", **bounds))
    assert [(a.job_id, a.cap, a.weight, text(a.why)) for a in unlimited] == [
        ("job-1", None, 0, "exempt by the policy"),
        ("job-2", 3, 80.0, "the limit is unlimited"),  # its own ceiling
        ("job-3", 5, 1.0, "the limit is unlimited"),  # priority 0 weighs as 1
    ]
    fixed = allocate(10, three, JobsPolicy(policy="fixed", cap=4, **bounds))
    assert [(a.job_id, a.cap, a.weight, text(a.why)) for a in fixed] == [
        ("job-1", None, 0, "exempt by the policy"),
        ("job-2", 3, 1.0, "fixed cap 3"),
        ("job-3", 4, 1.0, "fixed cap 4"),
    ]
    weights = {"q2": 3.0}
    by_queue = JobsPolicy(policy="weighted", weight_by="queue", queue_weights=weights)
    assert [a.weight for a in allocate(-1, [job(4, 2, queue="q2"), job(5, 2)], by_queue)] == [
        3.0,
        1.0,
    ]
    tight = {"overrides": [{"queue": "q1", "max_workers": 5}]}
    ceilings = [replace(job(8, 9), ceiling=3), replace(job(9, 9), ceiling=7)]
    assert [a.cap for a in allocate(-1, ceilings, JobsPolicy(policy="fair", **tight))] == [3, 5]
    override = {"name": "^shot6$", "weight": 4, "min_workers": 3}
    favoured = JobsPolicy(policy="weighted", overrides=[override])
    assert [a.weight for a in allocate(10, [job(6, 10), job(7, 10)], favoured)] == [4.0, 50.0]
