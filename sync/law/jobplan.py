"""Each job's maxWorkerCount this cycle (docs/design.md, "Sharing a pool between jobs"). Pure.

From the limits' decisions, the jobs as read and the originals we hold, this decides
what to write: a cap (the smallest any of the job's pools gives it, one write per job),
an original put back, a record settled or dropped. `act.py` writes it; nothing here does
I/O. Only a job that BatchGetJob no longer finds is "gone"; an error never is.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sync.law.allocation import allocate
from sync.law.state import Steps
from sync.policy import Pool
from sync.values.domain import (
    ACTIVE_TASK_STATES,
    Allocation,
    Decision,
    JobDemand,
    JobInfo,
    JobOriginal,
    JobWrite,
    LimitState,
    Reason,
    StepAmounts,
    Why,
)


@dataclass(frozen=True)
class PoolJobs:
    """How one pool's limit is shared between the jobs of its queues this cycle."""

    pool: str
    farm_id: str
    limit_id: str
    capacity: int  # -1: unlimited
    jobs: tuple[JobDemand, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    left_alone: frozenset[str] = frozenset()  # taken over by a person, or unadopted
    read_capacity: int = -1  # the limit's maxCount as this cycle read it (before its write)

    @property
    def demand(self) -> int:
        return sum(j.demand for j in self.jobs)

    def cap(self, job_id: str) -> int | None:
        return next((a.cap for a in self.allocations if a.job_id == job_id), None)


@dataclass(frozen=True)
class FarmJobs:
    """What one farm's jobs need this cycle, merged over its pools."""

    farm_id: str
    writes: tuple[JobWrite, ...] = ()
    records: tuple[JobOriginal, ...] = ()  # to be on disk before any write is sent
    taken_over: tuple[JobOriginal, ...] = ()  # newly seen edits by a person (in records)
    drops: tuple[tuple[str, Why], ...] = ()  # records to forget, and why
    left_alone: frozenset[str] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        return not (self.writes or self.records or self.drops)


class JobIndex:
    """A farm's jobs that can run, as demands by the amount their steps require: built once
    a farm and cycle, so that each pool takes its jobs without going over the farm's."""

    def __init__(
        self,
        jobs: Iterable[JobInfo],
        steps: Steps,
        originals: Mapping[str, JobOriginal] | None = None,
    ):
        self.by_amount: dict[str, list[JobDemand]] = {}
        for j in jobs:
            job_steps = steps.get(j.job_id)
            if not j.can_run or not job_steps:
                continue
            ceiling = own_ceiling(j, (originals or {}).get(j.job_id))
            for amount in sorted({a.casefold() for s in job_steps for a in s.amounts}):
                if (d := _demand(j, job_steps, amount)) is not None:
                    d = replace(d, ceiling=ceiling)
                    self.by_amount.setdefault(amount, []).append(d)

    def demands(self, amount: str, queues: Collection[str]) -> list[JobDemand]:
        """What each job of `queues` asks of the limit whose amount is `amount` (amount names
        compare case-insensitively: OpenJD 2023-09 template schemas, 3.3.1.1)."""
        return [d for d in self.by_amount.get(amount.casefold(), ()) if d.queue_id in queues]


def _demand(j: JobInfo, job_steps: Sequence[StepAmounts], amount: str) -> JobDemand | None:
    """What `j` asks of `amount` (casefolded), in runs: a chunked step's run takes a chunk
    of its tasks and holds one license for all of them. None when its steps' counts, read
    this cycle, show no task of the steps that need it able to run (done, or waiting on a
    dependency): such a job draws no share and is not capped."""
    needing = [s for s in job_steps if _units(s, amount) is not None]
    units = max(1, math.ceil(max(_units(s, amount) or 1 for s in needing)))
    asked = _runs_asked(j, job_steps, needing)
    if asked is None:
        return None
    runs, other = asked
    return JobDemand(
        j.job_id,
        j.queue_id,
        j.name,
        j.created_by,
        j.created_at,
        j.priority,
        units,
        runs,
        j.max_worker_count,
        other,
    )


def _runs_asked(
    j: JobInfo, job_steps: Sequence[StepAmounts], needing: list[StepAmounts]
) -> tuple[int, int] | None:
    """The runs the job's steps that need the amount can start, and its other steps' runs
    (which hold no license of it); None when the steps' own counts show none can."""
    if all(s.active is not None for s in job_steps):
        runs = sum(_runs(s.active or 0, s.chunk) for s in needing)
        other = sum(_runs(s.active or 0, s.chunk) for s in job_steps if s not in needing)
        return None if runs == 0 else (runs, other)
    tasks = sum(j.counts.get(s, 0) for s in ACTIVE_TASK_STATES)
    if len(needing) < len(job_steps):
        # the job-level counts include steps without the amount: bound by the amount
        # steps' size
        tasks = min(tasks, sum(s.tasks for s in needing))
    return _runs(tasks, min(s.chunk for s in needing)), 0


def own_ceiling(j: JobInfo, rec: JobOriginal | None) -> int | None:
    """The job's own maxWorkerCount, which we never write above (docs/policy.md, "Sharing
    a pool between jobs"): its original once we hold one, else its value now, which is
    not ours; None when that is unlimited (-1)."""
    own = rec.original if rec is not None else j.max_worker_count
    return None if own == -1 else own


def _runs(tasks: int, chunk: int) -> int:
    """The runs `tasks` take, `chunk` at a time (with the job-level counts alone, the
    smallest chunk of the steps: never fewer runs than there may be)."""
    return math.ceil(tasks / max(1, chunk))


def _units(step: StepAmounts, amount: str) -> float | None:
    return next((u for name, u in step.amounts.items() if name.casefold() == amount), None)


def pool_jobs(
    name: str, pool: Pool, decision: Decision, limit: LimitState, index: JobIndex
) -> PoolJobs:
    """One pool's caps for the jobs of its limit's queues, sized by the maxCount this
    cycle leaves the limit at."""
    capacity = decision.new if decision.new is not None else (decision.current or -1)
    queues = {a.queue_id for a in limit.associations}
    wanting = index.demands(limit.amount, queues)
    allocations = [
        _with_other(a, d)
        for a, d in zip(allocate(capacity, wanting, pool.jobs), wanting, strict=True)
    ]
    return PoolJobs(
        name,
        decision.farm_id,
        limit.limit_id,
        capacity,
        tuple(wanting),
        tuple(allocations),
        read_capacity=decision.current if decision.current is not None else -1,
    )


def _with_other(a: Allocation, d: JobDemand) -> Allocation:
    """`maxWorkerCount` caps the whole job: a job keeps workers for its active tasks of
    steps that need no license of the pool, above its licensed share; never above the
    job's own ceiling."""
    cap = a.cap
    if cap is None:
        return a
    if d.other and cap != -1:
        cap += d.other
        a = replace(a, cap=cap, why=(*a.why, Reason.of("unlicensed_tasks", tasks=d.other)))
    if d.ceiling is not None and (cap == -1 or cap >= d.ceiling):
        why = (*a.why, Reason.of("own_ceiling", ceiling=d.ceiling))
        a = replace(a, cap=d.ceiling, why=why, band=0)
    return a


def unclaimed(pools: Iterable[PoolJobs], originals: Mapping[str, JobOriginal]) -> set[str]:
    """On the first look of a new history: jobs it has no record of, already capped as we
    could have capped them (1 to the limit as read or as now, plus the job's unlicensed
    tasks and its slack). Their caps may be ours from a history that was lost, so they
    wait for `--adopt` rather than become originals."""
    found = set()
    for pj in pools:
        caps = {a.job_id: a for a in pj.allocations if a.cap is not None}
        for j in pj.jobs:
            if j.job_id not in caps or j.job_id in originals or j.max_worker_count == -1:
                continue
            # the most we could have written: the whole limit (as we last left it, read
            # this cycle, or as it is now), the job's unlicensed tasks, and its slack
            limit = max(pj.capacity, pj.read_capacity)
            most = limit + j.other + caps[j.job_id].band
            if -1 in (pj.capacity, pj.read_capacity) or j.max_worker_count <= most:
                found.add(j.job_id)
    return found


def farm_jobs(
    farm_id: str,
    pools: list[PoolJobs],
    respect_manual: Mapping[str, bool],
    jobs: list[JobInfo],
    originals: Mapping[str, JobOriginal],
    unadopted: frozenset[str],
    unread: frozenset[str] = frozenset(),
) -> FarmJobs:
    """Each job's cap: the smallest its pools give it; the records of jobs no pool caps
    now are settled against what the farm says of the job — except those whose steps are
    `unread` yet, which are held as they are."""
    managed = _tightest(pools)
    writes: list[JobWrite] = []
    records: list[JobOriginal] = []
    taken_over: list[JobOriginal] = []
    left_alone: set[str] = set()
    for job_id, (a, pj, job) in managed.items():
        rec = originals.get(job_id)
        if rec is not None and rec.pending == job.max_worker_count:
            rec = rec.landed()  # a write whose answer was lost did land
            records.append(rec)
        if job_id in unadopted or (rec is not None and rec.manual):
            left_alone.add(job_id)
        elif rec is not None and job.max_worker_count not in rec.ours() and respect_manual[pj.pool]:
            left_alone.add(job_id)
            taken_over.append(replace(rec, manual=True))
        elif (cap := cap_to_write(a, job.max_worker_count, _holds_ours(rec, job))) is not None:
            w = JobWrite(
                job.queue_id, job_id, cap, job.max_worker_count, pj.pool, pj.limit_id, a.why
            )
            writes.append(w)
            records.append(_pending(rec, farm_id, w))
    restores, drops = _settle_the_rest(farm_id, originals, set(managed) | unread, jobs)
    writes += restores
    records += taken_over
    return FarmJobs(
        farm_id,
        tuple(writes),
        tuple(records),
        tuple(taken_over),
        tuple(drops),
        frozenset(left_alone),
    )


def _tightest(pools: list[PoolJobs]) -> dict[str, tuple[Allocation, PoolJobs, JobDemand]]:
    """Each capped job's tightest allocation over the pools, with its pool and demand."""
    managed: dict[str, tuple[Allocation, PoolJobs, JobDemand]] = {}
    for pj in pools:
        wanting = {j.job_id: j for j in pj.jobs}
        for a in pj.allocations:
            if a.cap is not None and (
                a.job_id not in managed or _tighter(a.cap, managed[a.job_id][0].cap)
            ):
                managed[a.job_id] = (a, pj, wanting[a.job_id])
    return managed


def _settle_the_rest(
    farm_id: str,
    originals: Mapping[str, JobOriginal],
    skip: set[str],
    jobs: list[JobInfo],
) -> tuple[list[JobWrite], list[tuple[str, Why]]]:
    """The recorded jobs of this farm no pool caps now (and not `skip`ped): each one's
    original put back, or its record dropped and why."""
    live = {j.job_id: j for j in jobs}
    writes, drops = [], []
    for job_id, rec in originals.items():
        if rec.farm_id == farm_id and job_id not in skip:
            why, write = settle(rec, live.get(job_id))
            if write is not None:
                writes.append(write)
            else:
                drops.append((job_id, why))
    return writes, drops


def _holds_ours(rec: JobOriginal | None, job: JobDemand) -> bool:
    return rec is not None and job.max_worker_count in rec.ours()


def cap_to_write(a: Allocation, current: int, ours: bool) -> int | None:
    """The maxWorkerCount to write for a job, or None to leave its cap as it is. A cap of
    ours (`ours`: the job's record holds it) stands while it is in the band from the job's
    share to `jobs.slack` above it; a new cap goes to the middle of the band, so the share
    may move either way before the next write (docs/design.md, "Slack on job caps")."""
    assert a.cap is not None
    if ours and current != -1 and a.cap <= current <= a.cap + a.band:
        return None
    cap = a.cap + a.band // 2
    return None if cap == current else cap


def confirmed_only(fj: FarmJobs, confirmed: Collection[str]) -> tuple[FarmJobs, list[str]]:
    """The part of `fj` whose jobs were read as they are now (BatchGetJob), and the ids of
    the rest, sorted: a search answer lags the writes (docs/design.md, "Trust no single
    read"), so no write, original, "taken over" or release rests on it alone."""
    ids = {w.job_id for w in fj.writes} | {r.job_id for r in fj.records}
    ids |= {job_id for job_id, _ in fj.drops}
    waiting = ids - set(confirmed)
    if not waiting:
        return fj, []

    def ok(job_id: str) -> bool:
        return job_id not in waiting

    taken = {r.job_id for r in fj.taken_over}
    kept = FarmJobs(
        fj.farm_id,
        tuple(w for w in fj.writes if ok(w.job_id)),
        tuple(r for r in fj.records if ok(r.job_id)),
        tuple(r for r in fj.taken_over if ok(r.job_id)),
        tuple(d for d in fj.drops if ok(d[0])),
        frozenset(fj.left_alone - (waiting & taken)),
    )
    return kept, sorted(waiting)


def _tighter(cap: int, than: int | None) -> bool:
    """Whether `cap` holds a job tighter than `than`: -1 (unlimited) never hides a real cap."""
    if than is None or than == -1:
        return cap != -1
    return cap != -1 and cap < than


def _pending(rec: JobOriginal | None, farm_id: str, w: JobWrite) -> JobOriginal:
    """The record to have on disk before `w` is sent: a new one holds the job's original."""
    if rec is None:
        rec = JobOriginal(w.job_id, farm_id, w.queue_id, w.pool, w.limit_id, original=w.old)
    return replace(rec, pending=w.value)


def settle(rec: JobOriginal, job: JobInfo | None) -> tuple[Why, JobWrite | None]:
    """What becomes of the record of a job no pool caps now, and why: the write that puts
    its original back, or None — the record is dropped."""
    if job is None:
        return (Reason.of("job_gone"),), None
    if rec.manual or job.max_worker_count not in rec.ours():
        return (Reason.of("job_taken_over", value=job.max_worker_count),), None
    if job.lifecycle_status == "ARCHIVED":
        return (Reason.of("job_archived"),), None
    if job.max_worker_count == rec.original:
        return (Reason.of("job_already_original", original=rec.original),), None
    why = (Reason.of("job_released"),)
    write = JobWrite(
        job.queue_id,
        job.job_id,
        rec.original,
        job.max_worker_count,
        rec.pool,
        rec.limit_id,
        why,
        restore=True,
    )
    return why, write
