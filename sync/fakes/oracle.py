"""What the fake farm, which knows everything, can say of license-sync's caps: whether a
limit has units no job may take while a job capped below its own cap has licensed work
waiting (the farm state machine's and the soak's invariant)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.fakes.model import HOLDING

if TYPE_CHECKING:
    from sync.fakes.farm import FakeFarm
    from sync.fakes.model import Job


def idle_while_capped(
    farm: FakeFarm, queue_id: str, own_caps: dict[str, int]
) -> list[tuple[str, int, int]]:
    """Each limit of the queue, not paused, whose jobs' caps let fewer runs hold it than
    its maxCount while a job capped below its runs (and below `own_caps`, the cap its
    person gave it) has licensed frames READY: (amount, runs the caps allow, maxCount)."""
    out = []
    jobs = [j for j in farm.jobs.values() if j.lifecycle_status != "ARCHIVED"]
    for lid, lim in farm.limits.items():
        if lim.max_count == -1 or farm.associations.get((queue_id, lid)) != "ACTIVE":
            continue
        runs = {j.job_id: licensed_runs(j, lim.amount) for j in jobs}
        allowed = sum(
            runs[j.job_id] if j.max_worker_count == -1 else min(j.max_worker_count, runs[j.job_id])
            for j in jobs
        )
        held_back = any(
            j.max_worker_count not in (-1, own_caps.get(j.job_id, -1))
            and j.max_worker_count < runs[j.job_id]
            and _waiting(j, lim.amount)
            for j in jobs
        )
        if held_back and allowed < lim.max_count:
            out.append((lim.amount, allowed, lim.max_count))
    return out


def licensed_runs(job: Job, amount: str) -> int:
    """Runs the job's steps needing `amount` could hold at once: a chunk's frames one run."""
    return sum(
        -(-sum(t.status in ("READY", *HOLDING) for t in s.tasks) // s.chunk)
        for s in job.steps
        if s.needs(amount)
    )


def _waiting(job: Job, amount: str) -> bool:
    return any(t.status == "READY" for s in job.steps if s.needs(amount) for t in s.tasks)
