"""A write to one farm, and what it must keep on disk before it is sent."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from sync.edges.deadline import Deadline
from sync.law.state import LimitKey
from sync.values.domain import JobOriginal, LimitMemory


@dataclass(frozen=True)
class LimitOriginal:
    """A limit's maxCount before our first write to it. Best effort: it only serves
    `restore --limits`, so a disk that refuses it does not stop the write."""

    farm_id: str
    limit_id: str
    value: int


@dataclass(frozen=True)
class PausedQueues:
    """The limits' memory naming every queue this cycle pauses: no queue is stopped that
    nothing on disk remembers to reopen. Strict: not kept, not sent."""

    limits: Mapping[LimitKey, LimitMemory]


@dataclass(frozen=True)
class JobRecords:
    """Each job's maxWorkerCount before us, and the value on its way. Strict."""

    records: tuple[JobOriginal, ...]


@dataclass(frozen=True)
class Nothing:
    """A write that overwrites nothing anyone needs back, and why."""

    because: str


Keep = LimitOriginal | PausedQueues | JobRecords | Nothing


class Write(ABC):
    """One write to one farm."""

    kind: ClassVar[str]  # its `changes_total{kind}` label
    level: ClassVar[int] = logging.INFO  # how loud its log line is
    farm_id: str

    @abstractmethod
    def original(self) -> Keep:
        """What must be on disk before this write is sent."""

    @abstractmethod
    def send(self, dl: Deadline) -> object:
        """The call; raises DeadlineError when it did not land."""

    @abstractmethod
    def words(self) -> str:
        """Its log line ("" for none: the write logs its own parts)."""

    def landed(self, answer: object) -> int:
        """How many changes `send`'s answer counts in `changes_total{kind}`."""
        return 1
