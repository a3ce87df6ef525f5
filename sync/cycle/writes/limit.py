"""A limit's maxCount (UpdateLimit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sync.cycle.writes.base import Keep, LimitOriginal, Nothing, Write
from sync.edges.deadline import Deadline
from sync.law.reasons import count


@dataclass(frozen=True)
class MaxCount(Write):
    kind: ClassVar[str] = "max_count"
    farm_id: str
    limit_id: str
    old: int | None
    new: int

    def original(self) -> Keep:
        if self.old is None:
            return Nothing("the limit's maxCount was not read")
        return LimitOriginal(self.farm_id, self.limit_id, self.old)

    def send(self, dl: Deadline) -> None:
        dl.update_limit(self.limit_id, self.new)

    def words(self) -> str:
        return f"maxCount {count(self.old)} → {count(self.new)}"
