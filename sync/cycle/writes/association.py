"""A queue's association with a limit (UpdateQueueLimitAssociation): paused, resumed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from sync.cycle.writes.base import Keep, Nothing, PausedQueues, Write
from sync.edges.deadline import Deadline
from sync.law.state import LimitKey
from sync.values.domain import ACTIVE, PAUSED, LimitMemory


@dataclass(frozen=True)
class _QueueStatus(Write):
    status: ClassVar[str]
    farm_id: str
    queue_id: str
    limit_id: str

    def send(self, dl: Deadline) -> None:
        dl.update_association(self.queue_id, self.limit_id, self.status)


@dataclass(frozen=True)
class Pause(_QueueStatus):
    """The queue may start no new task holding the limit (STOP_LIMIT_USAGE_AND_COMPLETE)."""

    kind: ClassVar[str] = "pause"
    status: ClassVar[str] = PAUSED
    level: ClassVar[int] = logging.WARNING
    # the limits' memory as this cycle leaves it, naming this queue among those we paused
    remembered: Mapping[LimitKey, LimitMemory] = field(default_factory=dict, compare=False)

    def original(self) -> Keep:
        return PausedQueues(self.remembered)

    def words(self) -> str:
        return f"queue {self.queue_id} paused"


@dataclass(frozen=True)
class Resume(_QueueStatus):
    """The queue's association back to ACTIVE."""

    kind: ClassVar[str] = "resume"
    status: ClassVar[str] = ACTIVE

    def original(self) -> Keep:
        return Nothing("it reopens a queue we paused: what it overwrites is ours")

    def words(self) -> str:
        return f"queue {self.queue_id} resumed"
