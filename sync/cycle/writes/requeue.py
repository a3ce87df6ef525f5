"""A running task back to READY (UpdateTask): its licenses come back now."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sync.cycle.writes.base import Keep, Nothing, Write
from sync.edges.deadline import Deadline
from sync.law import reasons
from sync.values.domain import Reason, RunningTask


@dataclass(frozen=True)
class TaskRequeue(Write):
    kind: ClassVar[str] = "preempt"
    level: ClassVar[int] = logging.WARNING
    pool: str
    farm_id: str
    task: RunningTask
    at: datetime

    def original(self) -> Keep:
        return Nothing("a requeued task runs again from its start: nothing is left to put back")

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
