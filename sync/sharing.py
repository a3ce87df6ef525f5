"""Sharing one limit's maxCount between the jobs that need it (docs/design.md). Pure.

Everything is counted in the limit's units: a task of a step requiring
`amount.nuke` with `min: 2` holds 2. A job's cap is in workers (`maxWorkerCount`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sync.policy import JobsPolicy, Selector

ACTIVE_TASK_STATES = ("READY", "ASSIGNED", "SCHEDULED", "STARTING", "RUNNING")
FINISHED_JOB_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SUSPENDED", "NOT_COMPATIBLE")


@dataclass(frozen=True, slots=True)
class JobDemand:
    job_id: str
    queue_id: str
    name: str
    created_by: str
    created_at: datetime
    priority: int
    units: int  # units one task holds
    tasks: int  # tasks wanting to run now
    max_worker_count: int  # -1 = unlimited

    @property
    def demand(self) -> int:
        return self.tasks * self.units


@dataclass(frozen=True, slots=True)
class Allocation:
    job_id: str
    cap: int | None  # None: leave the job alone (exempt)
    weight: float
    reason: str


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
    floors: dict[str, int] = {}
    ceilings: dict[str, int | None] = {}
    weights: dict[str, float] = {}
    for job in jobs:
        if any(matches(s, job) for s in policy.exempt):
            out[job.job_id] = Allocation(job.job_id, None, 0, "exempt by the policy")
            continue
        override = next((o for o in policy.overrides if matches(o, job)), None)
        floors[job.job_id] = (
            override.min_workers if override and override.min_workers else policy.min_workers
        )
        ceilings[job.job_id] = override.max_workers if override else None
        weights[job.job_id] = (
            override.weight if override and override.weight else _weight(job, policy)
        )
        managed.append(job)

    if policy.policy == "fixed":
        for job in managed:
            cap = policy.cap or 1
            ceiling = ceilings[job.job_id]
            if ceiling is not None:
                cap = min(cap, ceiling)
            out[job.job_id] = Allocation(
                job.job_id, max(cap, floors[job.job_id]), weights[job.job_id], f"fixed cap {cap}"
            )
        return [out[j.job_id] for j in jobs]

    if capacity == -1:
        for job in managed:
            out[job.job_id] = Allocation(
                job.job_id,
                ceilings[job.job_id] or -1,
                weights[job.job_id],
                "the limit is unlimited",
            )
        return [out[j.job_id] for j in jobs]

    # demand in units, bounded by any per-job ceiling
    want = {}
    for job in managed:
        d = job.demand
        ceiling = ceilings[job.job_id]
        if ceiling is not None:
            d = min(d, ceiling * job.units)
        want[job.job_id] = d
    alloc = waterfill(capacity, managed, want, weights)
    # units lost to rounding down to whole tasks go to whoever can still use them
    left = capacity - sum((alloc[j.job_id] // j.units) * j.units for j in managed)
    order = sorted(managed, key=lambda j: (j.created_at, j.job_id))
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
    for job in managed:
        a = alloc[job.job_id]
        cap = max(floors[job.job_id], a // job.units)
        ceiling = ceilings[job.job_id]
        if ceiling is not None:
            cap = min(cap, ceiling)
        reason = (
            f"{policy.policy}: {a} of {capacity} units for demand {job.demand} "
            f"({job.tasks} tasks × {job.units}), weight {weights[job.job_id]:g}"
        )
        out[job.job_id] = Allocation(job.job_id, max(1, cap), weights[job.job_id], reason)
    return [out[j.job_id] for j in jobs]


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
        break
    return alloc


def _weight(job: JobDemand, policy: JobsPolicy) -> float:
    if policy.policy != "weighted":
        return 1.0
    if policy.weight_by == "queue":
        return policy.queue_weights.get(job.queue_id, 1.0)
    return float(max(1, job.priority))  # Deadline priorities are 0–100
