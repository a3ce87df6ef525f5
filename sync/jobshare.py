"""Sharing pools between jobs: discovery, caps, originals and restore (docs/design.md).

The arithmetic is in `sharing.py` (pure); this module does the reads and writes around
it. A job's cap is owned per job, not per pool: a job that needs two pools gets the
smallest cap any of them gives it, written once. Nothing is lost: a job's original
maxWorkerCount is on disk before the first write to it, and the record stays until the
original is back, the job no longer exists, or a person has taken the job over. Only a
job that BatchGetJob no longer finds is "gone"; an error is never taken for one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.deadline import Deadline, JobInfo, StepAmounts
from sync.errors import DeadlineError, HistoryError
from sync.history import History
from sync.planner import Decision, LimitState
from sync.policy import Pool
from sync.sharing import (
    ACTIVE_TASK_STATES,
    FINISHED_JOB_STATES,
    Allocation,
    JobDemand,
    allocate,
)

log = logging.getLogger("license_sync")
GONE = "ResourceNotFoundException"  # the only answer that means a job no longer exists


@dataclass
class JobPlan:
    """What sharing decided for one pool's limit this cycle."""

    pool: str
    limit_id: str
    capacity: int
    jobs: list[JobDemand] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    writes: list[tuple[JobDemand, int, str]] = field(default_factory=list)  # this pool's caps
    overrides: list[str] = field(default_factory=list)  # job ids left alone (manual)
    errors: list[str] = field(default_factory=list)

    @property
    def demand(self) -> int:
        return sum(j.demand for j in self.jobs)

    def lines(self) -> list[str]:
        out = [
            f"  jobs sharing {self.capacity if self.capacity != -1 else 'unlimited'} "
            f"units: {len(self.jobs)} jobs, demand {self.demand}"
        ]
        caps = {a.job_id: a for a in self.allocations}
        for j in sorted(self.jobs, key=lambda j: (j.created_at, j.job_id)):
            a = caps.get(j.job_id)
            cap = "exempt" if a is None or a.cap is None else str(a.cap)
            mark = " (manual override: left alone)" if j.job_id in self.overrides else ""
            out.append(
                f"    {j.job_id} {j.name!r}: demand {j.demand} "
                f"({j.tasks} tasks × {j.units}), weight {a.weight if a else 0:g}, "
                f"cap {cap}, now {j.max_worker_count}{mark}"
            )
        return out


@dataclass
class Write:
    """One maxWorkerCount to write: a cap, or an original put back."""

    queue_id: str
    job_id: str
    value: int
    old: int
    pool: str
    limit_id: str
    reason: str
    restore: bool = False


@dataclass
class FarmJobPlan:
    """Everything one farm's jobs need this cycle, merged over its pools."""

    farm_id: str
    writes: list[Write] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)  # newly seen manual edits
    settled: list[dict[str, Any]] = field(default_factory=list)  # records a read settled
    drops: list[tuple[str, str]] = field(default_factory=list)  # (job id, why) to forget
    errors: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.writes or self.flagged or self.settled or self.drops)


class JobSharing:
    """Per-service state: the step cache and the originals on disk."""

    def __init__(self, history: History | None, adopt: bool = False):
        self.history = history
        self.steps: dict[str, list[StepAmounts]] = {}  # job id → steps: they never change
        self.originals: dict[str, dict[str, Any]] = {}
        # A new, empty history beside jobs that already carry caps may mean the old history
        # was lost: those caps may be ours, and must not become "originals". They are left
        # alone (and remembered as such) unless the operator says `--adopt`.
        self.unadopted: set[str] = set()
        self.first_look = history is not None and history.fresh and not adopt
        if history is not None:
            self.originals = history.job_originals()
            self.unadopted = set() if adopt else set(history.get_state("unadopted_jobs", []))

    # -- discovery ------------------------------------------------------------------------

    def observe(self, dl: Deadline, farm_id: str, queues: list[str]) -> list[JobInfo]:
        """The jobs that can still run in `queues`, and every job we recorded on this farm
        that the search did not return (finished, requeued, moved past a page, …)."""
        jobs = dl.search_jobs(queues) if queues else []
        seen = {j.job_id for j in jobs}
        missing = [
            (r["queue_id"], job_id)
            for job_id, r in self.originals.items()
            if r["farm_id"] == farm_id and job_id not in seen
        ]
        if missing:
            jobs += list(dl.get_jobs(missing).values())
        return jobs

    def demands(self, dl: Deadline, jobs: list[JobInfo], amount: str) -> list[JobDemand]:
        # archived or finished jobs need nothing (the search filter may let some through)
        jobs = [
            j
            for j in jobs
            if j.lifecycle_status != "ARCHIVED" and j.task_run_status not in FINISHED_JOB_STATES
        ]
        new = [(j.queue_id, j.job_id) for j in jobs if j.job_id not in self.steps]
        if new:
            self.steps.update(dl.step_amounts(new))
        out = []
        for j in jobs:
            steps = self.steps.get(j.job_id)
            if not steps:
                continue
            needing = [s for s in steps if amount in s.amounts]
            if not needing:
                continue
            units = max(1, math.ceil(max(s.amounts[amount] for s in needing)))
            tasks = sum(j.counts.get(s, 0) for s in ACTIVE_TASK_STATES)
            if len(needing) < len(steps):
                # the job-level counts include steps without the amount: bound by the
                # amount steps' size (reading their counts each cycle would cost step reads)
                tasks = min(tasks, sum(s.tasks for s in needing))
            out.append(
                JobDemand(
                    j.job_id,
                    j.queue_id,
                    j.name,
                    j.created_by,
                    j.created_at,
                    j.priority,
                    units,
                    tasks,
                    j.max_worker_count,
                )
            )
        return out

    def forget_unseen(self, seen: set[str]) -> None:
        for job_id in [k for k in self.steps if k not in seen]:
            del self.steps[job_id]
        self.unadopted &= seen

    # -- planning -------------------------------------------------------------------------

    def pool_plan(
        self,
        pool_name: str,
        pool: Pool,
        decision: Decision,
        limit: LimitState,
        jobs: list[JobInfo],
        dl: Deadline,
    ) -> JobPlan:
        """One pool's caps for the jobs of its limit's queues (nothing decided per job yet)."""
        capacity = decision.new if decision.new is not None else (decision.current or -1)
        jp = JobPlan(pool_name, limit.limit_id, capacity)
        queues = {a.queue_id for a in limit.associations}
        jp.jobs = self.demands(dl, [j for j in jobs if j.queue_id in queues], limit.amount)
        jp.allocations = allocate(capacity, jp.jobs, pool.jobs)
        return jp

    def farm_plan(
        self,
        farm_id: str,
        plans: list[JobPlan],
        pools: dict[str, Pool],
        jobs: list[JobInfo],
    ) -> FarmJobPlan:
        """Each job's cap: the smallest its pools give it; records of jobs no pool caps now
        are settled against what the farm says of the job."""
        fp = FarmJobPlan(farm_id)
        managed: dict[str, tuple[Allocation, JobPlan]] = {}
        for jp in plans:
            for a in jp.allocations:
                if a.cap is not None and (
                    a.job_id not in managed or a.cap < (managed[a.job_id][0].cap or 0)
                ):
                    managed[a.job_id] = (a, jp)
        demand = {j.job_id: j for jp in plans for j in jp.jobs}
        if self.first_look:
            self._set_aside([(demand[job_id], jp.capacity) for job_id, (_, jp) in managed.items()])
        for job_id, (a, jp) in managed.items():
            if job_id in self.unadopted:
                jp.overrides.append(job_id)
                continue
            self._plan_cap(fp, demand[job_id], a, jp, pools[jp.pool].jobs.respect_manual)
        live = {j.job_id: j for j in jobs}
        for job_id, rec in self.originals.items():
            if rec["farm_id"] == farm_id and job_id not in managed:
                self._plan_settle(fp, rec, live.get(job_id))
        return fp

    def _set_aside(self, jobs: list[tuple[JobDemand, int]]) -> None:
        """The first look of a new history: jobs it has no record of, capped as we could
        have capped them (1 to the pool's capacity), wait for `--adopt` rather than have a
        cap that may be ours recorded as their original."""
        self.first_look = False
        found = {
            j.job_id
            for j, capacity in jobs
            if j.job_id not in self.originals
            and j.max_worker_count != -1
            and (capacity == -1 or j.max_worker_count <= capacity)
        }
        if not found or self.history is None:
            return
        self.unadopted |= found
        log.error(
            "a new history, and %d job(s) already capped (%s…): these caps may be ours from a "
            "history that was lost, so they are left alone; run with --adopt to take their "
            "current values as their originals",
            len(found),
            ", ".join(sorted(found)[:3]),
        )
        self.history.set_state("unadopted_jobs", sorted(self.unadopted), datetime.now(UTC))

    def _plan_cap(
        self, fp: FarmJobPlan, job: JobDemand, a: Allocation, jp: JobPlan, respect: bool
    ) -> None:
        assert a.cap is not None
        rec = self.originals.get(job.job_id)
        if rec is not None and rec.get("pending") == job.max_worker_count:
            # a write whose answer was lost did land: it is our last write
            rec = {**rec, "last_written": rec["pending"], "pending": None}
            fp.settled.append(rec)
        if rec is not None and rec.get("manual"):
            jp.overrides.append(job.job_id)
            return
        if rec is not None and job.max_worker_count not in ours(rec) and respect:
            jp.overrides.append(job.job_id)
            fp.flagged.append({**rec, "manual": 1})
            return
        if a.cap != job.max_worker_count:
            jp.writes.append((job, a.cap, a.reason))
            fp.writes.append(
                Write(
                    job.queue_id,
                    job.job_id,
                    a.cap,
                    job.max_worker_count,
                    jp.pool,
                    jp.limit_id,
                    a.reason,
                )
            )

    def _plan_settle(self, fp: FarmJobPlan, rec: dict[str, Any], job: JobInfo | None) -> None:
        action, why = settle(rec, job)
        if action == "drop":
            fp.drops.append((rec["job_id"], why))
        elif job is not None:
            fp.writes.append(
                Write(
                    job.queue_id,
                    job.job_id,
                    int(rec["original"]),
                    job.max_worker_count,
                    rec.get("pool", ""),
                    rec.get("limit_id", ""),
                    why,
                    restore=True,
                )
            )

    # -- applying -------------------------------------------------------------------------

    def apply(self, fp: FarmJobPlan, dl: Deadline, now: datetime) -> list[dict[str, Any]]:
        """Write caps and restores; returns job_changes rows. Originals go to disk first."""
        changes = [
            _change(
                now,
                fp.farm_id,
                r,
                r.get("last_written"),
                None,
                "manual",
                "changed by someone else: left alone",
            )
            for r in fp.flagged
        ]
        settled = {r["job_id"]: r for r in fp.settled}  # a read found our lost write landed
        pending = [
            {
                **settled.get(w.job_id, self.originals.get(w.job_id, _new_record(fp.farm_id, w))),
                "pending": w.value,
            }
            for w in fp.writes
            if not w.restore
        ]
        history = self.history
        if history is None:
            if fp.writes:
                fp.errors.append("job caps not written: no history to record the originals in")
            return []
        try:
            history.save_job_originals(fp.settled + fp.flagged + pending, now)
        except HistoryError as e:
            # no original on disk, no write: a crash now must not lose what we would change
            fp.errors.append(f"job caps not written: {e}")
            return []
        for rec in fp.settled + fp.flagged + pending:
            self.originals[rec["job_id"]] = rec
        for rec in fp.flagged:
            log.warning("job %s was changed by someone else; left alone", rec["job_id"])
        dropped = [job_id for job_id, _ in fp.drops]
        for job_id, why in fp.drops:
            log.info("job %s: %s; its record is dropped", job_id, why)
        errors: dict[str, tuple[str, str]] = {}
        if fp.writes:
            try:
                errors = dl.update_jobs([(w.queue_id, w.job_id, w.value) for w in fp.writes])
            except DeadlineError as e:
                fp.errors.append(f"BatchUpdateJob failed (retried next cycle): {e}")
                errors = {w.job_id: ("NotSent", str(e)) for w in fp.writes}
        done = self._results(fp, errors, now, changes, dropped)
        try:
            history.save_job_originals(done, now)
            history.drop_job_originals(dropped)
            history.record_job_changes(changes)
        except HistoryError as e:
            fp.errors.append(f"history: {e}")
        for job_id in dropped:
            self.originals.pop(job_id, None)
        return changes

    def _results(
        self,
        fp: FarmJobPlan,
        errors: dict[str, tuple[str, str]],
        now: datetime,
        changes: list[dict[str, Any]],
        dropped: list[str],
    ) -> list[dict[str, Any]]:
        """Per-item outcomes: a write landed, the job is gone, or the record waits."""
        done = []
        for w in fp.writes:
            err = errors.get(w.job_id)
            rec = self.originals[w.job_id]
            if err is not None and err[0] == GONE:
                dropped.append(w.job_id)
            elif err is not None:
                if err[0] != "NotSent":
                    fp.errors.append(f"job {w.job_id}: {err[0]}: {err[1]} (retried next cycle)")
            elif w.restore:
                dropped.append(w.job_id)
                changes.append(_change(now, fp.farm_id, rec, w.old, w.value, "restore", w.reason))
            else:
                rec = {**rec, "last_written": w.value, "pending": None, "pool": w.pool}
                self.originals[w.job_id] = rec
                done.append(rec)
                changes.append(_change(now, fp.farm_id, rec, w.old, w.value, "cap", w.reason))
        return done


def ours(rec: dict[str, Any]) -> set[int]:
    """Values that mean "as we left it": our last write, a write we may have made before a
    crash, or — if we never wrote — the original."""
    vals = {v for v in (rec.get("last_written"), rec.get("pending")) if v is not None}
    if rec.get("last_written") is None:
        vals.add(rec["original"])
    return {int(v) for v in vals}


def settle(rec: dict[str, Any], job: JobInfo | None) -> tuple[str, str]:
    """What becomes of the record of a job no pool caps now: ("restore" | "drop", why)."""
    if job is None:
        return "drop", "gone"
    if rec.get("manual") or job.max_worker_count not in ours(rec):
        return "drop", f"changed by someone else ({job.max_worker_count}); left alone"
    if job.lifecycle_status == "ARCHIVED":
        return "drop", "archived: Deadline takes no write to it"
    if job.max_worker_count == rec["original"]:
        return "drop", f"already {rec['original']}"
    return "restore", "no longer needs the pool"


def _new_record(farm_id: str, w: Write) -> dict[str, Any]:
    return {
        "job_id": w.job_id,
        "farm_id": farm_id,
        "queue_id": w.queue_id,
        "pool": w.pool,
        "limit_id": w.limit_id,
        "original": w.old,
        "last_written": None,
        "manual": 0,
    }


def _change(
    now: datetime,
    farm_id: str,
    rec: dict[str, Any],
    old: int | None,
    new: int | None,
    kind: str,
    reason: str,
) -> dict[str, Any]:
    """One job_changes row."""
    return {
        "at": now.isoformat(),
        "pool": rec.get("pool", ""),
        "farm_id": farm_id,
        "queue_id": rec["queue_id"],
        "job_id": rec["job_id"],
        "original": rec["original"],
        "old": old,
        "new": new,
        "kind": kind,
        "reason": reason,
    }


def restore_records(
    records: list[dict[str, Any]], dl_for: Any, sharing: JobSharing, now: datetime
) -> list[str]:
    """Write each record's original back where the job still holds our value. Idempotent."""
    messages = []
    by_farm: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_farm.setdefault(r["farm_id"], []).append(r)
    for farm_id, recs in by_farm.items():
        dl: Deadline = dl_for(farm_id)
        current = dl.get_jobs([(r["queue_id"], r["job_id"]) for r in recs])
        fp = FarmJobPlan(farm_id)
        for r in recs:
            sharing._plan_settle(fp, r, current.get(r["job_id"]))
        restored = {c["job_id"] for c in sharing.apply(fp, dl, now) if c["kind"] == "restore"}
        messages += [f"{job_id}: {why}; nothing to restore" for job_id, why in fp.drops]
        for w in fp.writes:
            if w.job_id in restored:
                messages.append(f"{w.job_id}: maxWorkerCount restored to {w.value}")
            elif w.job_id in sharing.originals:
                messages.append(f"{w.job_id}: restore failed; still recorded")
            else:
                messages.append(f"{w.job_id}: gone; nothing to restore")
        messages += [f"restore failed: {e}" for e in fp.errors]
    return messages
