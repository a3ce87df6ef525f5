"""One reconcile step (docs/design.md, "The cycle"). Pure.

    observe() → Observed ─┐
    Memory ───────────────┼─ reconcile(policy, observed, memory, now) → Plan → act() → record()
    Policy ───────────────┘

`reconcile` decides everything a cycle writes — limits, queue associations and job caps —
from what was read and what is remembered. It reads no clock, does no I/O and keeps no
state: the same inputs give the same plan, which is what `plan`, `explain` and the tests
rely on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from sync.law import jobplan, limits
from sync.law.jobplan import FarmJobs, PoolJobs
from sync.law.limits import LimitPlan, PoolPlan
from sync.law.reasons import text
from sync.law.state import FarmRead, LimitKey, Memory, Observed
from sync.policy import Policy
from sync.values.domain import Decision, JobOriginal, LimitMemory, LimitState, Stamp


@dataclass(frozen=True)
class Reopen:
    """Queues paused for a limit that left the policy: put back to ACTIVE."""

    farm_id: str
    limit_ref: str
    limit_id: str
    queues: tuple[str, ...]


@dataclass(frozen=True)
class Requeue:
    """Requeue the youngest of these jobs' tasks that hold the limit, to give artists
    their licenses back now (docs/policy.md, "Preemption")."""

    farm_id: str
    pool: str
    limit_ref: str
    limit_id: str
    tasks: int  # at most this many a cycle
    younger_than: float
    jobs: tuple[tuple[str, str], ...]  # (queue, job) with tasks running in the limit's queues
    target: int = 0  # what the farm may hold: requeue until it holds no more
    release: float = 120.0  # how long a requeued run may hold its license before it exits


@dataclass(frozen=True)
class Plan:
    """Every write of one cycle, and the memory to carry if they all land."""

    limits: LimitPlan
    reopen: tuple[Reopen, ...]
    pools_jobs: tuple[PoolJobs, ...]
    farms_jobs: tuple[FarmJobs, ...]
    memory: Memory
    errors: tuple[str, ...]
    preempts: tuple[Requeue, ...] = ()
    # per farm, the (queue, job) whose write or record change waits on a read of the job
    # as it is now: a search answer lags the writes, so none rests on it alone
    unconfirmed: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def pools(self) -> dict[str, PoolPlan]:
        return self.limits.pools

    @property
    def decisions(self) -> list[Decision]:
        return self.limits.decisions

    @property
    def changes(self) -> list[Decision]:
        return [d for d in self.decisions if d.changes_anything]


def reconcile(policy: Policy, observed: Observed, memory: Memory, now: datetime) -> Plan:
    """The whole cycle's decisions. Pure."""
    lp = limits.plan(
        policy,
        observed.sources,
        observed.lookup,
        memory.limits,
        now,
        observed.profiles,
        observed.worker_hosts,
    )
    reopen, kept = _departed(policy, observed, memory.limits, lp)
    pools_jobs = _pools_jobs(policy, observed, lp, memory.originals)
    unadopted = set(memory.unadopted)
    if memory.first_look and pools_jobs:
        unadopted |= jobplan.unclaimed(pools_jobs, memory.originals)
    farms_jobs, unconfirmed = _farms_plans(policy, observed, pools_jobs, memory, unadopted)
    left_alone = frozenset().union(*(fj.left_alone for fj in farms_jobs))
    pools_jobs = tuple(_mark(pj, left_alone) for pj in pools_jobs)
    next_memory = _next_memory(observed, memory, {**lp.memory, **kept}, unadopted, farms_jobs)
    errors = observed.errors + tuple(
        f"pool {d.pool}: {text(d.why)}" for d in lp.decisions if d.status == "error"
    )
    preempts = _preempts(policy, observed, lp)
    return Plan(
        lp, reopen, pools_jobs, tuple(farms_jobs), next_memory, errors, preempts, unconfirmed
    )


def _farms_plans(
    policy: Policy,
    observed: Observed,
    pools_jobs: tuple[PoolJobs, ...],
    memory: Memory,
    unadopted: set[str],
) -> tuple[list[FarmJobs], dict[str, tuple[tuple[str, str], ...]]]:
    """Each farm's job plan whose jobs were read, and the reads each asks to confirm."""
    respect = {name: pool.jobs.respect_manual for name, pool in policy.pools.items()}
    farms_jobs, unconfirmed = [], {}
    for farm_id in sorted(f.id for f in policy.farms):
        read = observed.farms.get(farm_id)
        if read is None or read.jobs is None:
            continue  # a read that failed is not an empty farm: hold its jobs
        fj, asked = _farm_plan(farm_id, read, pools_jobs, respect, memory, frozenset(unadopted))
        if asked:
            unconfirmed[farm_id] = asked
        farms_jobs.append(fj)
    return farms_jobs, unconfirmed


def _next_memory(
    observed: Observed,
    memory: Memory,
    limits_memory: dict[LimitKey, LimitMemory],
    unadopted: set[str],
    farms_jobs: list[FarmJobs],
) -> Memory:
    """The memory the next cycle starts from."""
    if all(read.jobs is not None for read in observed.farms.values()):
        seen = {j.job_id for read in observed.farms.values() for j in read.jobs or ()}
        unadopted = unadopted & seen  # a job gone from the farm needs no adopting
    # the first look lasts until every job it could see has been seen (the step budget)
    waiting = any(read.unread for read in observed.farms.values())
    return Memory(
        limits_memory,
        memory.originals,
        frozenset(unadopted),
        memory.first_look and (not farms_jobs or waiting),
    )


def _farm_plan(
    farm_id: str,
    read: FarmRead,
    pools_jobs: tuple[PoolJobs, ...],
    respect: dict[str, bool],
    memory: Memory,
    unadopted: frozenset[str],
) -> tuple[FarmJobs, tuple[tuple[str, str], ...]]:
    """One farm's job caps, and the (queue, job) reads to confirm before writing them."""
    assert read.jobs is not None
    mine = [pj for pj in pools_jobs if pj.farm_id == farm_id]
    # a job whose steps are not read yet, or that could not be read, is neither capped nor
    # settled: held as it is
    unread = read.held | frozenset(
        j.job_id for j in read.jobs if j.can_run and j.job_id not in read.steps
    )
    fj = jobplan.farm_jobs(
        farm_id, mine, respect, list(read.jobs), memory.originals, unadopted, unread
    )
    if read.confirmed is None:
        return fj, ()
    fj, asked = jobplan.confirmed_only(fj, read.confirmed)
    queues = {j.job_id: j.queue_id for j in read.jobs}
    queues.update((k, r.queue_id) for k, r in memory.originals.items())
    return fj, tuple((queues[j], j) for j in asked)


def _preempts(policy: Policy, observed: Observed, lp: LimitPlan) -> tuple[Requeue, ...]:
    """Each decision to preempt, with the jobs whose running tasks may hold the limit."""
    out = []
    lookup = observed.lookup
    for d in lp.decisions:
        limit = lookup.get(d.key)
        read = observed.farms.get(d.farm_id)
        if not d.preempt or not isinstance(limit, LimitState) or read is None:
            continue
        queues = {a.queue_id for a in limit.associations}
        jobs = tuple(
            (j.queue_id, j.job_id)
            for j in read.jobs or ()
            if j.queue_id in queues and any(j.counts.get(s, 0) for s in ("RUNNING", "STARTING"))
        )
        p = policy.pools[d.pool].preempt
        target = d.target if d.target is not None else 0
        out.append(
            Requeue(
                d.farm_id,
                d.pool,
                d.limit_ref,
                limit.limit_id,
                p.max_per_cycle,
                p.younger_than,
                jobs,
                target,
                p.release,
            )
        )
    return tuple(out)


def carry(
    plan: Plan,
    failed: Iterable[LimitKey],
    originals: Mapping[str, JobOriginal],
    stamps: Mapping[LimitKey, Mapping[str, Stamp]] | None = None,
) -> Memory:
    """The memory for the next cycle once `plan` was acted on: a limit whose write failed
    starts its settle count again (a failed write is not a change); the job records are
    as the writes left them; each queue we paused keeps the stamp the pause left."""
    limits = dict(plan.memory.limits)
    for key in failed:
        limits[key] = replace(limits.get(key, LimitMemory()), rising_since=None, stepped_at=None)
    for key, left in (stamps or {}).items():
        mem = limits.get(key, LimitMemory())
        kept = {q: s for q, s in mem.stamps if q not in left}
        merged = kept | {q: s for q, s in left.items() if q in mem.paused}
        limits[key] = replace(mem, stamps=tuple(sorted(merged.items())))
    return replace(plan.memory, limits=limits, originals=dict(originals))


def _pools_jobs(
    policy: Policy, observed: Observed, lp: LimitPlan, originals: Mapping[str, JobOriginal]
) -> tuple[PoolJobs, ...]:
    """Each sharing pool's jobs, for every limit of it on a farm whose jobs were read."""
    out = []
    lookup = observed.lookup
    indexes: dict[str, jobplan.JobIndex] = {}
    for name, pool in policy.pools.items():
        if pool.jobs.policy == "none" or name not in lp.pools:
            continue
        for d in lp.pools[name].decisions:
            read = observed.farms.get(d.farm_id)
            limit = lookup.get(d.key)
            if read is None or read.jobs is None or not isinstance(limit, LimitState):
                continue
            index = indexes.get(d.farm_id)
            if index is None:
                jobs = [j for j in read.jobs if j.job_id not in read.held]
                index = indexes[d.farm_id] = jobplan.JobIndex(jobs, read.steps, originals)
            out.append(jobplan.pool_jobs(name, pool, d, limit, index))
    return tuple(out)


def _mark(pj: PoolJobs, left_alone: frozenset[str]) -> PoolJobs:
    return replace(pj, left_alone=frozenset(j.job_id for j in pj.jobs) & left_alone)


def _departed(
    policy: Policy, observed: Observed, memory: Mapping[LimitKey, LimitMemory], lp: LimitPlan
) -> tuple[tuple[Reopen, ...], dict[LimitKey, LimitMemory]]:
    """Queues we paused for limits the policy no longer names: reopen them. Their memory
    stays until they read ACTIVE, and while their farm is out of the policy (`restore
    --limits` needs it then)."""
    reopen, kept = [], {}
    farms = {f.id for f in policy.farms}
    for key, mem in memory.items():
        if key in lp.memory or not mem.paused:
            continue
        farm_id, ref = key
        read = observed.farms.get(farm_id)
        if farm_id not in farms or read is None or read.error is not None:
            kept[key] = mem
            continue
        found = read.limits.get(ref)
        if not isinstance(found, LimitState):
            continue  # the limit is gone, and its associations with it
        still = limits.still_ours(mem, found.associations)
        if still:
            reopen.append(Reopen(farm_id, ref, found.limit_id, still))
            kept[key] = LimitMemory(still, stamps=mem.stamps_of(still))
    return tuple(reopen), kept


def departed_refs(policy: Policy, memory: Memory) -> dict[str, set[str]]:
    """Per farm of the policy, the limits to read beyond its pools': those we paused
    queues of and that the policy no longer names."""
    named = {t.key for p in policy.pools.values() for t in p.targets(policy.default_farm)}
    farms = {f.id for f in policy.farms}
    out: dict[str, set[str]] = {}
    for (farm_id, ref), mem in memory.limits.items():
        if mem.paused and farm_id in farms and (farm_id, ref) not in named:
            out.setdefault(farm_id, set()).add(ref)
    return out
