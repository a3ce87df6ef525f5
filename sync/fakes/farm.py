"""A fake Deadline farm: limits, queues, associations, jobs, steps and tasks.

State moves as the service documents it (docs/design.md, "The fake Deadline"): an
association set to a STOP status becomes STOPPED once the queue's tasks that hold the
limit are done (the CANCEL status cancels them first); tasks finish, fail, are requeued
and suspended; an archived job is never scheduled again. Time is injected (`tick(now)`),
so tests step it by hand and the demo runs it on a clock. currentCount is reported with
a delay, as Deadline does. The API operations live in `sync.fakes.operations`.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.fakes.model import (
    HOLDING,
    STOP_CANCEL,
    STOP_COMPLETE,
    TERMINAL,
    Job,
    Limit,
    Session,
    Step,
    Task,
    new_id,
)
from sync.fakes.operations import FakeError, FarmOperations
from sync.fakes.sessions import SessionOperations

__all__ = ["FakeError", "FakeFarm", "Job", "Limit", "Step", "Task", "new_id"]


class FakeFarm(FarmOperations, SessionOperations):
    """All state behind the fake endpoint. Thread-safe; every mutation under `lock`."""

    def __init__(
        self,
        farm_id: str | None = None,
        *,
        now: datetime | None = None,
        count_delay: float = 10.0,
        seed: int = 1,
        workers: int = 1000,
    ):
        self.farm_id = farm_id or new_id("farm")
        self.lock = threading.RLock()
        self.now = now or datetime.now(UTC)
        self.count_delay = timedelta(seconds=count_delay)
        self.rng = random.Random(seed)
        self.limits: dict[str, Limit] = {}
        self.queues: list[str] = []
        self.associations: dict[tuple[str, str], str] = {}
        self.jobs: dict[str, Job] = {}
        self.workers = workers
        self.denials = 0  # tasks that started and found no license
        self.license_check: Any = None  # (amount) -> bool: can a task check out now?
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.tokens: dict[tuple[str, str], dict[str, Any]] = {}  # (operation, clientToken)
        self.item_faults: dict[str, str] = {}  # job or step id → its Batch* item error code
        self._last_created = datetime.min.replace(tzinfo=UTC)

    # -- building ---------------------------------------------------------------------------

    def add_queue(self, queue_id: str | None = None) -> str:
        with self.lock:
            q = queue_id or new_id("queue")
            self.queues.append(q)
            return q

    def add_limit(
        self,
        amount: str,
        max_count: int,
        display_name: str | None = None,
        limit_id: str | None = None,
    ) -> str:
        with self.lock:
            lid = limit_id or new_id("limit")
            self.limits[lid] = Limit(
                lid, display_name or amount.removeprefix("amount."), amount, max_count, self.now
            )
            return lid

    def add_queue_with_limit(self, amount: str, max_count: int) -> tuple[str, str]:
        """A new queue and a new limit, associated: the smallest farm a test needs."""
        queue_id = self.add_queue()
        limit_id = self.add_limit(amount, max_count)
        self.associate(queue_id, limit_id)
        return queue_id, limit_id

    def associate(self, queue_id: str, limit_id: str, status: str = "ACTIVE") -> None:
        with self.lock:
            self.associations[(queue_id, limit_id)] = status

    def add_job(
        self,
        queue_id: str,
        name: str,
        tasks: int,
        amount: str | None = None,
        units: int = 1,
        priority: int = 50,
        duration: float = 60.0,
        steps: int = 1,
        created_by: str = "artist",
        max_worker_count: int = -1,
    ) -> str:
        with self.lock:
            jid = new_id("job")
            # distinct creation times, in the order jobs were added, as Deadline's are
            created = max(self.now, self._last_created + timedelta(milliseconds=1))
            self._last_created = created
            self.jobs[jid] = Job(
                jid,
                queue_id,
                name,
                priority,
                created,
                created_by,
                [
                    Step(
                        new_id("step"),
                        f"step{i}",
                        [(amount, units)] if amount else [],
                        [Task(duration=duration) for _ in range(tasks)],
                    )
                    for i in range(steps)
                ],
                max_worker_count=max_worker_count,
            )
            return jid

    # -- what happens to jobs outside license-sync -------------------------------------------

    def end_job(self, job_id: str, status: str = "SUCCEEDED") -> None:
        """Every task that has not ended ends with `status` (SUCCEEDED, FAILED, CANCELED)."""
        with self.lock:
            for t in self.jobs[job_id].tasks():
                if t.status not in TERMINAL:
                    t.set_status(status)

    def remove_job(self, job_id: str) -> None:
        """The job no longer exists (Deadline deletes archived jobs after 120 days)."""
        with self.lock:
            self.jobs.pop(job_id, None)

    def set_target_status(self, job: Job, status: str) -> None:
        """UpdateJob's `targetTaskRunStatus`: requeue, suspend, or end every task."""
        job.target_task_run_status = status
        for t in job.tasks():
            if status in ("READY", "PENDING"):
                t.set_status(status)  # a requeue runs every task again
            elif t.status not in TERMINAL:
                t.set_status(status)

    # -- running ----------------------------------------------------------------------------

    def in_use(self, limit_id: str) -> int:
        """Units held right now by tasks under this limit (the true currentCount)."""
        lim = self.limits[limit_id]
        return sum(
            units
            for job in self.jobs.values()
            for step in job.steps
            for name, units in step.amounts
            if name == lim.amount
            for t in step.tasks
            if t.status in HOLDING
        )

    def holders(self, amount: str) -> list[tuple[Job, Task]]:
        return [
            (job, t)
            for job in self.jobs.values()
            for step in job.steps
            for name, _ in step.amounts
            if name == amount
            for t in step.tasks
            if t.status == "RUNNING" and t.holds_license
        ]

    def tick(self, now: datetime) -> None:
        """Advance to `now`: finish tasks that are done, move associations, start tasks."""
        with self.lock:
            self.now = now
            self._finish_tasks(now)
            self._move_associations()
            self._start_tasks(now)
            for lim in self.limits.values():
                lim.reported.append((now, self.in_use(lim.limit_id)))
                while len(lim.reported) > 1 and lim.reported[1][0] <= now - self.count_delay:
                    lim.reported.popleft()

    def _finish_tasks(self, now: datetime) -> None:
        for job in self.jobs.values():
            for t in job.tasks():
                if t.status == "PENDING":
                    t.set_status("READY")  # the fake has no step dependencies
                elif (
                    t.status == "RUNNING"
                    and t.started is not None
                    and (now - t.started).total_seconds() >= t.duration
                ):
                    t.set_status("SUCCEEDED", now)

    def _move_associations(self) -> None:
        """A STOP status becomes STOPPED once the queue's tasks under the limit are done."""
        for (queue_id, limit_id), status in list(self.associations.items()):
            if status not in (STOP_COMPLETE, STOP_CANCEL):
                continue
            amount = self.limits[limit_id].amount
            holding = [
                t
                for job in self.jobs.values()
                if job.queue_id == queue_id
                for step in job.steps
                if any(name == amount for name, _ in step.amounts)
                for t in step.tasks
                if t.status in HOLDING
            ]
            if status == STOP_CANCEL:
                for t in holding:
                    t.set_status("CANCELED")
                holding = []
            if not holding:
                self.associations[(queue_id, limit_id)] = "STOPPED"

    def _start_tasks(self, now: datetime) -> None:
        running = sum(1 for job in self.jobs.values() for t in job.tasks() if t.status in HOLDING)
        for job in sorted(self.jobs.values(), key=lambda j: (-j.priority, j.created_at)):
            if job.lifecycle_status == "ARCHIVED":
                continue
            job_running = sum(1 for t in job.tasks() if t.status in HOLDING)
            for step in job.steps:
                if not self._compatible(job, step):
                    for t in step.tasks:
                        if t.status == "READY":
                            t.set_status("NOT_COMPATIBLE")
                    continue
                for t in step.tasks:
                    if t.status != "READY" or running >= self.workers:
                        continue
                    if job.max_worker_count != -1 and job_running >= job.max_worker_count:
                        break
                    if not self._may_start(job, step):
                        break
                    t.status, t.started = "RUNNING", now
                    if all(
                        self.license_check(name) if self.license_check else True
                        for name, _ in step.amounts
                    ):
                        t.holds_license = True
                        self._open_session(job, step, t, now)
                        running += 1
                        job_running += 1
                    else:  # started, found no license: the frame fails and is retried
                        self.denials += 1
                        t.set_status("READY")

    def _open_session(self, job: Job, step: Step, t: Task, now: datetime) -> None:
        """The task's run, as the sessions API shows it: what limits it acquired."""
        acquired = [
            (lim.limit_id, units)
            for name, units in step.amounts
            for lim in self.limits.values()
            if lim.amount == name
        ]
        t.session = Session(
            new_id("session"),
            new_id("sessionaction") + "-0",
            t.task_id,
            step.step_id,
            now,
            acquired,
        )
        job.sessions.append(t.session)

    def _compatible(self, job: Job, step: Step) -> bool:
        """A step needing a limited amount its queue has no association for can never run."""
        for name, _ in step.amounts:
            for lim in self.limits.values():
                if lim.amount == name and (job.queue_id, lim.limit_id) not in self.associations:
                    return False
        return True

    def _may_start(self, job: Job, step: Step) -> bool:
        for name, units in step.amounts:
            for lim in self.limits.values():
                if lim.amount != name:
                    continue  # an amount no limit governs is unconstrained
                if self.associations.get((job.queue_id, lim.limit_id)) != "ACTIVE":
                    return False  # stopping or stopped
                if lim.max_count != -1 and self.in_use(lim.limit_id) + units > lim.max_count:
                    return False
        return True

    def reported_count(self, lim: Limit) -> int:
        """currentCount as the API reports it: the value of `count_delay` ago."""
        if not lim.reported:
            return 0
        return lim.reported[0][1]
