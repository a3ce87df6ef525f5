"""Sharing a pool between jobs: discovery, caps, originals and restore (DESIGN §5).

The arithmetic is in `sharing.py` (pure); this module does the reads and writes around
it. Nothing is lost: a job's original maxWorkerCount is on disk before the first write to
it, and is written back when the job no longer needs the pool.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
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
GONE = ("ResourceNotFoundException", "ConflictException", "ValidationException")


@dataclass
class JobPlan:
    """What sharing decided for one limit this cycle."""

    pool: str
    limit_id: str
    capacity: int
    jobs: list[JobDemand] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    writes: list[tuple[JobDemand, int, str]] = field(default_factory=list)  # job, cap, why
    overrides: list[str] = field(default_factory=list)  # job ids left alone (manual)
    restores: list[tuple[str, str, int]] = field(default_factory=list)  # queue, job, original
    gone: list[str] = field(default_factory=list)  # recorded jobs no longer found: finished
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


class JobSharing:
    """Per-service state: the step cache and the originals on disk."""

    def __init__(self, history: History | None):
        self.history = history
        self.steps: dict[str, list[StepAmounts]] = {}  # job id → steps: they never change
        self.originals: dict[str, dict[str, Any]] = {}
        if history is not None:
            self.originals = history.job_originals()

    # -- discovery ------------------------------------------------------------------------

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

    def forget_unseen(self, seen: Iterable[str]) -> None:
        keep = set(seen)
        for job_id in [k for k in self.steps if k not in keep]:
            del self.steps[job_id]

    # -- planning -------------------------------------------------------------------------

    def plan(
        self,
        pool_name: str,
        pool: Pool,
        decision: Decision,
        limit: LimitState,
        jobs: list[JobInfo],
        dl: Deadline,
    ) -> JobPlan:
        capacity = decision.new if decision.new is not None else (decision.current or -1)
        jp = JobPlan(pool_name, limit.limit_id, capacity)
        queues = {a.queue_id for a in limit.associations}
        jp.jobs = self.demands(dl, [j for j in jobs if j.queue_id in queues], limit.amount)
        jp.allocations = allocate(capacity, jp.jobs, pool.jobs)
        by_id = {j.job_id: j for j in jp.jobs}
        for a in jp.allocations:
            job = by_id[a.job_id]
            rec = self.originals.get(job.job_id)
            if a.cap is None:
                continue  # exempt; restored below if we had capped it
            if rec is not None and rec.get("manual"):
                jp.overrides.append(job.job_id)
                continue
            if rec is not None and job.max_worker_count not in _ours(rec):
                if pool.jobs.respect_manual:
                    jp.overrides.append(job.job_id)
                    continue
            if a.cap != job.max_worker_count:
                jp.writes.append((job, a.cap, a.reason))
        managed = {a.job_id for a in jp.allocations if a.cap is not None}
        live = {j.job_id: j for j in jobs}
        for job_id, rec in self.originals.items():
            if rec["limit_id"] != limit.limit_id or job_id in managed:
                continue
            j = live.get(job_id)
            if j is None:  # finished, or deleted: nothing to restore, forget the record
                jp.gone.append(job_id)
                continue
            if rec.get("manual"):
                continue
            if j.max_worker_count in _ours(rec) and j.max_worker_count != rec["original"]:
                jp.restores.append((j.queue_id, job_id, int(rec["original"])))
        return jp

    # -- applying -------------------------------------------------------------------------

    def apply(self, jp: JobPlan, dl: Deadline, farm_id: str, now: datetime) -> list[dict]:
        """Write caps and restores; returns job_changes rows. Originals go to disk first."""
        changes: list[dict[str, Any]] = []
        at = now.isoformat()
        # newly detected overrides are remembered, so a later cap never fights them
        flagged = []
        for job_id in jp.overrides:
            rec = self.originals.get(job_id)
            if rec is not None and not rec.get("manual"):
                flagged.append({**rec, "manual": 1})
        pending = []
        for job, cap, _ in jp.writes:
            rec = self.originals.get(job.job_id) or {
                "job_id": job.job_id,
                "farm_id": farm_id,
                "queue_id": job.queue_id,
                "pool": jp.pool,
                "limit_id": jp.limit_id,
                "original": job.max_worker_count,
                "last_written": None,
                "manual": 0,
            }
            pending.append({**rec, "pending": cap})
        history = self.history
        if history is None:
            if jp.writes or jp.restores:
                jp.errors.append(
                    f"pool {jp.pool}: job caps not written: no history to record the originals in"
                )
            return changes
        try:
            history.save_job_originals(flagged + pending, now)
        except HistoryError as e:
            # no original on disk, no write: a crash now must not lose what we would change
            jp.errors.append(f"pool {jp.pool}: job caps not written: {e}")
            return changes
        for rec in flagged + pending:
            self.originals[rec["job_id"]] = rec
        for rec in flagged:  # first seen this cycle: say so once
            changes.append(
                {
                    "at": at,
                    "pool": jp.pool,
                    "farm_id": farm_id,
                    "queue_id": rec["queue_id"],
                    "job_id": rec["job_id"],
                    "original": rec["original"],
                    "old": rec.get("last_written"),
                    "new": None,
                    "kind": "manual",
                    "reason": "changed by someone else: left alone",
                }
            )
            log.warning(
                "pool %s: job %s was changed by someone else; left alone", jp.pool, rec["job_id"]
            )

        if jp.gone:
            try:
                history.drop_job_originals(jp.gone)
                for job_id in jp.gone:
                    self.originals.pop(job_id, None)
            except HistoryError as e:
                jp.errors.append(f"history: {e}")
        items = [(job.queue_id, job.job_id, cap) for job, cap, _ in jp.writes]
        items += [(q, j, orig) for q, j, orig in jp.restores]
        if not items:
            self._record(changes, jp)
            return changes
        try:
            errors = dl.update_jobs(items)
        except DeadlineError as e:
            jp.errors.append(f"pool {jp.pool}: BatchUpdateJob failed: {e}")
            self._record(changes, jp)
            return changes
        done, dropped = [], []
        for job, cap, why in jp.writes:
            err = errors.get(job.job_id)
            rec = self.originals[job.job_id]
            if err is None:
                rec = {**rec, "last_written": cap, "pending": None}
                self.originals[job.job_id] = rec
                done.append(rec)
                changes.append(
                    {
                        "at": at,
                        "pool": jp.pool,
                        "farm_id": farm_id,
                        "queue_id": job.queue_id,
                        "job_id": job.job_id,
                        "original": rec["original"],
                        "old": job.max_worker_count,
                        "new": cap,
                        "kind": "cap",
                        "reason": why,
                    }
                )
            elif err[0] in GONE:  # finished or deleted meanwhile: nothing to restore
                dropped.append(job.job_id)
            else:
                jp.errors.append(f"pool {jp.pool}: job {job.job_id}: {err[0]}: {err[1]}")
        for queue_id, job_id, orig in jp.restores:
            err = errors.get(job_id)
            if err is None or err[0] in GONE:
                dropped.append(job_id)
                if err is None:
                    changes.append(
                        {
                            "at": at,
                            "pool": jp.pool,
                            "farm_id": farm_id,
                            "queue_id": queue_id,
                            "job_id": job_id,
                            "original": orig,
                            "old": self.originals[job_id].get("last_written"),
                            "new": orig,
                            "kind": "restore",
                            "reason": "no longer needs the pool",
                        }
                    )
            else:
                jp.errors.append(f"pool {jp.pool}: restore {job_id}: {err[0]}: {err[1]}")
        try:
            history.save_job_originals(done, now)
            history.drop_job_originals(dropped)
        except HistoryError as e:
            jp.errors.append(f"history: {e}")
        for job_id in dropped:
            self.originals.pop(job_id, None)
        self._record(changes, jp)
        return changes

    def _record(self, changes: list[dict[str, Any]], jp: JobPlan) -> None:
        try:
            if self.history is not None:
                self.history.record_job_changes(changes)
        except HistoryError as e:
            jp.errors.append(f"history: {e}")

    def settle_departed(
        self, dl_for: Any, active_limits: set[str], live: set[str], now: datetime
    ) -> list[str]:
        """Restore jobs whose pool left the policy (or whose policy became `none`)."""
        stale = [
            r
            for r in self.originals.values()
            if r["limit_id"] not in active_limits and not r.get("manual")
        ]
        return restore_records(stale, dl_for, self, now) if stale else []


def _ours(rec: dict[str, Any]) -> set[int]:
    """Values that mean "as we left it": our last write, a write we may have made before a
    crash, or — if we never wrote — the original."""
    vals = {v for v in (rec.get("last_written"), rec.get("pending")) if v is not None}
    if rec.get("last_written") is None:
        vals.add(rec["original"])
    return {int(v) for v in vals}


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
        items, dropped, changes = [], [], []
        for r in recs:
            job = current.get(r["job_id"])
            if job is None:
                dropped.append(r["job_id"])
                messages.append(f"{r['job_id']}: gone; nothing to restore")
            elif r.get("manual") or job.max_worker_count not in _ours(r):
                dropped.append(r["job_id"])
                messages.append(
                    f"{r['job_id']}: changed by someone else ({job.max_worker_count}); left alone"
                )
            elif job.max_worker_count == r["original"]:
                dropped.append(r["job_id"])
                messages.append(f"{r['job_id']}: already {r['original']}")
            else:
                items.append((r["queue_id"], r["job_id"], int(r["original"])))
        errors = dl.update_jobs(items) if items else {}
        for q, job_id, orig in items:
            err = errors.get(job_id)
            if err is None or err[0] in GONE:
                dropped.append(job_id)
                messages.append(
                    f"{job_id}: maxWorkerCount restored to {orig}"
                    if err is None
                    else f"{job_id}: gone; nothing to restore"
                )
                if err is None:
                    changes.append(
                        {
                            "at": now.isoformat(),
                            "pool": "",
                            "farm_id": farm_id,
                            "queue_id": q,
                            "job_id": job_id,
                            "original": orig,
                            "old": None,
                            "new": orig,
                            "kind": "restore",
                            "reason": "restore",
                        }
                    )
            else:
                messages.append(f"{job_id}: restore failed: {err[0]}: {err[1]}")
        if sharing.history is not None:
            sharing.history.drop_job_originals(dropped)
            sharing.history.record_job_changes(changes)
        for job_id in dropped:
            sharing.originals.pop(job_id, None)
    return messages
