"""Each kind of write license-sync makes to Deadline, as one type: the call it makes, the
words its log line says, its `changes_total{kind}` label and, where it leaves one, its
row in the history's `job_changes`. A new kind of write is a class here and its entry in
`WRITES` (docs/development.md, "A new Deadline write"); the law says when to make it and
`act.py` makes it.

What must be on disk before a write (a limit's or a job's original, the queues we pause)
is `act.py`'s business, not the write's: the order is the same for every kind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sync.domain import ACTIVE, PAUSED, JobChange, JobWrite, Reason, RunningTask
from sync.edges.deadline import Deadline
from sync.law import reasons
from sync.law.reasons import count


class Write:
    """One write to one farm."""

    kind: ClassVar[str]  # its `changes_total{kind}` label
    level: ClassVar[int] = logging.INFO  # how loud its log line is
    farm_id: str

    def send(self, dl: Deadline) -> object:  # pragma: no cover - interface
        raise NotImplementedError

    def words(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class MaxCount(Write):
    """A limit's maxCount (UpdateLimit)."""

    kind: ClassVar[str] = "max_count"
    farm_id: str
    limit_id: str
    old: int | None
    new: int

    def send(self, dl: Deadline) -> None:
        dl.update_limit(self.limit_id, self.new)

    def words(self) -> str:
        return f"maxCount {count(self.old)} → {count(self.new)}"


@dataclass(frozen=True)
class _QueueStatus(Write):
    """A queue's association with a limit (UpdateQueueLimitAssociation)."""

    status: ClassVar[str]
    farm_id: str
    queue_id: str
    limit_id: str

    def send(self, dl: Deadline) -> None:
        dl.update_association(self.queue_id, self.limit_id, self.status)


class Pause(_QueueStatus):
    """The queue may start no new task holding the limit (STOP_LIMIT_USAGE_AND_COMPLETE)."""

    kind: ClassVar[str] = "pause"
    status: ClassVar[str] = PAUSED
    level: ClassVar[int] = logging.WARNING

    def words(self) -> str:
        return f"queue {self.queue_id} paused"


class Resume(_QueueStatus):
    """The queue's association back to ACTIVE."""

    kind: ClassVar[str] = "resume"
    status: ClassVar[str] = ACTIVE

    def words(self) -> str:
        return f"queue {self.queue_id} resumed"


@dataclass(frozen=True)
class TaskRequeue(Write):
    """A running task back to READY (UpdateTask): its licenses come back now."""

    kind: ClassVar[str] = "preempt"
    level: ClassVar[int] = logging.WARNING
    pool: str
    farm_id: str
    task: RunningTask
    at: datetime

    def send(self, dl: Deadline) -> None:
        dl.requeue_task(self.task)

    @property
    def ran(self) -> int:
        return int((self.at - self.task.started_at).total_seconds())

    def words(self) -> str:
        t = self.task
        return (
            f"task {t.task_id} of job {t.job_id} requeued (ran {self.ran}s) "
            "to give its license back"
        )

    def row(self) -> dict[str, Any]:
        why = (Reason.of("preempted", task=self.task.task_id, ran=self.ran, units=self.task.units),)
        return {
            "at": self.at.isoformat(),
            "pool": self.pool,
            "farm_id": self.farm_id,
            "queue_id": self.task.queue_id,
            "job_id": self.task.job_id,
            "kind": self.kind,
            "reason": reasons.text(why),
            "why": json.dumps(reasons.data(why)),
        }


@dataclass(frozen=True)
class JobCaps(Write):
    """Jobs' maxWorkerCount, caps and restores, in BatchUpdateJob chunks. Counted per job
    whose write landed; each landed one is a `JobChange`, whose row is `job_change_row`.
    act.py sends it itself (its answers are per job), so it has no `words()` of its own."""

    kind: ClassVar[str] = "max_worker_count"
    farm_id: str
    writes: tuple[JobWrite, ...]

    def send(self, dl: Deadline) -> tuple[dict[str, tuple[str, str]], list[str]]:
        return dl.update_jobs([(w.queue_id, w.job_id, w.value) for w in self.writes])


def job_change_row(c: JobChange) -> dict[str, Any]:
    """One job_changes row: the one place its columns are spelt out."""
    return {
        "at": c.at.isoformat(),
        "pool": c.record.pool,
        "farm_id": c.record.farm_id,
        "queue_id": c.record.queue_id,
        "job_id": c.record.job_id,
        "original": c.record.original,
        "old": c.old,
        "new": c.new,
        "kind": c.kind,
        "reason": reasons.text(c.why),
        "why": json.dumps(reasons.data(c.why)),
    }


WRITES: tuple[type[Write], ...] = (MaxCount, Pause, Resume, TaskRequeue, JobCaps)
