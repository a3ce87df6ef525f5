"""Jobs' maxWorkerCount, caps and restores, in BatchUpdateJob chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from sync.cycle.writes.base import JobRecords, Keep, Write
from sync.edges.deadline import Deadline
from sync.law import reasons
from sync.values.domain import JobChange, JobOriginal, JobWrite

Answers = tuple[dict[str, tuple[str, str]], list[str]]  # per job (code, message); failures


@dataclass(frozen=True)
class JobCaps(Write):
    """One farm's job writes. Counted per job whose write landed; each landed one is a
    `JobChange`, whose row is `job_change_row`, so it has no log line of its own."""

    kind: ClassVar[str] = "max_worker_count"
    farm_id: str
    writes: tuple[JobWrite, ...]
    records: tuple[JobOriginal, ...]  # each written job's original and the value on its way

    def original(self) -> Keep:
        return JobRecords(self.records)

    def send(self, dl: Deadline) -> Answers:
        return dl.update_jobs([(w.queue_id, w.job_id, w.value) for w in self.writes])

    def words(self) -> str:
        return ""

    def landed(self, answer: object) -> int:
        answers, _ = cast(Answers, answer)
        return sum(w.job_id not in answers for w in self.writes)


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
