"""Sharing one limit's maxCount between the jobs that need it (docs/design.md,
"Sharing a pool between jobs"). Pure.

Everything is counted in the limit's units: a task of a step requiring
`amount.nuke` with `min: 2` holds 2. A job's cap is in workers (`maxWorkerCount`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

from sync.policy import JobsPolicy, Selector
from sync.values.domain import Allocation, JobDemand, Reason


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(sel: Selector, job: JobDemand) -> bool:
    if sel.queue is not None and sel.queue != job.queue_id:
        return False
    if sel.user is not None and sel.user != job.created_by:
        return False
    return not (sel.name is not None and not _regex(sel.name).search(job.name))


def allocate(capacity: int, jobs: Sequence[JobDemand], policy: JobsPolicy) -> list[Allocation]:
    """Each job's worker cap for a limit of `capacity` units (-1: unlimited)."""
    out: dict[str, Allocation] = {}
    managed: list[JobDemand] = []
    bounds: dict[str, tuple[int, int | None, float]] = {}  # job → (floor, ceiling, weight)
    for job in jobs:
        if any(matches(s, job) for s in policy.exempt):
            out[job.job_id] = Allocation(job.job_id, None, 0, (Reason.of("exempt"),))
            continue
        bounds[job.job_id] = _bounds(job, policy)
        managed.append(job)
    if policy.policy == "fixed":
        out.update(_fixed(managed, bounds, policy.cap or 1))
    elif capacity == -1:
        for job in managed:
            _, ceiling, weight = bounds[job.job_id]
            why = (Reason.of("unlimited_limit"),)
            out[job.job_id] = Allocation(job.job_id, ceiling or -1, weight, why)
    else:
        out.update(_shared(capacity, managed, bounds, policy.policy, policy.slack))
    return [out[j.job_id] for j in jobs]


def _bounds(job: JobDemand, policy: JobsPolicy) -> tuple[int, int | None, float]:
    """A job's floor, ceiling and weight: the first override that matches it, else the
    pool's, its own maxWorkerCount bounding the ceiling."""
    o = next((o for o in policy.overrides if matches(o, job)), None)
    return (
        o.min_workers if o and o.min_workers else policy.min_workers,
        _lowest(o.max_workers if o else None, job.ceiling),
        o.weight if o and o.weight else _weight(job, policy),
    )


def _lowest(a: int | None, b: int | None) -> int | None:
    """The tighter of two ceilings (None: none)."""
    return b if a is None else a if b is None else min(a, b)


def _fixed(
    jobs: list[JobDemand], bounds: dict[str, tuple[int, int | None, float]], cap: int
) -> dict[str, Allocation]:
    out = {}
    for job in jobs:
        floor, ceiling, weight = bounds[job.job_id]
        mine = cap if ceiling is None else min(cap, ceiling)
        why = (Reason.of("fixed_cap", cap=mine),)
        out[job.job_id] = Allocation(job.job_id, max(mine, floor), weight, why)
    return out


def _shared(
    capacity: int,
    jobs: list[JobDemand],
    bounds: dict[str, tuple[int, int | None, float]],
    kind: str,
    slack: int = 0,
) -> dict[str, Allocation]:
    """Fair or weighted shares of `capacity` units, in whole tasks; each with the band
    of `slack` tasks above it a cap of ours may stand in (never past a job's ceiling)."""
    want = {}  # demand in units, bounded by any per-job ceiling
    for job in jobs:
        ceiling = bounds[job.job_id][1]
        want[job.job_id] = job.demand if ceiling is None else min(job.demand, ceiling * job.units)
    weights = {j: b[2] for j, b in bounds.items()}
    alloc = _whole_tasks(capacity, jobs, want, waterfill(capacity, jobs, want, weights))
    out = {}
    for job in jobs:
        a = alloc[job.job_id]
        floor, ceiling, weight = bounds[job.job_id]
        cap = max(floor, a // job.units)
        cap = cap if ceiling is None else min(cap, ceiling)
        why = Reason.of(
            "share",
            policy=kind,
            units=a,
            capacity=capacity,
            tasks=job.tasks,
            per_task=job.units,
            weight=weight,
        )
        cap = max(1, cap)
        band = slack if ceiling is None else max(0, min(slack, ceiling - cap))
        out[job.job_id] = Allocation(job.job_id, cap, weight, (why,), band)
    return out


def _whole_tasks(
    capacity: int, jobs: list[JobDemand], want: dict[str, int], alloc: dict[str, int]
) -> dict[str, int]:
    """Units lost to rounding down to whole tasks go to whoever can still use them."""
    alloc = dict(alloc)
    left = capacity - sum((alloc[j.job_id] // j.units) * j.units for j in jobs)
    order = sorted(jobs, key=lambda j: (j.created_at, j.job_id))
    while left > 0:
        fits = [
            j
            for j in order
            if j.units <= left and (alloc[j.job_id] // j.units + 1) * j.units <= want[j.job_id]
        ]
        if not fits:
            break
        j = max(fits, key=lambda j: (want[j.job_id] - alloc[j.job_id], -order.index(j)))
        alloc[j.job_id] = (alloc[j.job_id] // j.units + 1) * j.units
        left -= j.units
    return alloc


def waterfill(
    capacity: int, jobs: Sequence[JobDemand], want: dict[str, int], weights: dict[str, float]
) -> dict[str, int]:
    """Weighted max-min fair shares of `capacity` units, never more than a job wants.

    Jobs that want less than their share get all they want and drop out; the rest is
    shared again by weight. Units left after rounding go to the largest fractional share,
    then the largest remaining demand, then the oldest job.
    """
    alloc = {j.job_id: 0 for j in jobs}
    age = {j.job_id: i for i, j in enumerate(sorted(jobs, key=lambda j: (j.created_at, j.job_id)))}
    active = [j.job_id for j in jobs if want[j.job_id] > 0]
    left = capacity
    while left > 0 and active:
        total_w = sum(weights[j] for j in active)
        exact = {j: left * weights[j] / total_w for j in active}
        met = [j for j in active if want[j] - alloc[j] <= exact[j]]
        if met:
            for j in met:
                left -= want[j] - alloc[j]
                alloc[j] = want[j]
            active = [j for j in active if j not in met]
            continue
        _round(active, exact, alloc, left, want, age)
        break
    return alloc


def _round(
    active: list[str],
    exact: dict[str, float],
    alloc: dict[str, int],
    left: int,
    want: dict[str, int],
    age: dict[str, int],
) -> None:
    """Give each job the whole units of its exact share, then the units left one each by
    the largest fraction, then the largest remaining demand, then the oldest job."""
    for j in active:
        give = math.floor(exact[j])
        alloc[j] += give
        left -= give
    ranked = sorted(
        active,
        key=lambda j: (-(exact[j] - math.floor(exact[j])), -(want[j] - alloc[j]), age[j]),
    )
    for j in ranked[:left]:
        alloc[j] += 1


def _weight(job: JobDemand, policy: JobsPolicy) -> float:
    if policy.policy != "weighted":
        return 1.0
    if policy.weight_by == "queue":
        return policy.queue_weights.get(job.queue_id, 1.0)
    return float(max(1, job.priority))  # Deadline priorities are 0–100
