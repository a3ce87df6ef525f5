"""What the service remembers across restarts, kept in the history's `state` and
`job_originals` tables: each limit's settle count and paused queues, the maxCount and
maxWorkerCount values we overwrote, and the jobs left alone until `--adopt`.

Without a history everything lives in memory only, and no job is capped (`act.py`):
a job's original must be on disk before we change it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sync.edges.history import History
from sync.law.state import LimitKey, Memory
from sync.values.domain import JobOriginal, LimitMemory
from sync.values.errors import HistoryError

log = logging.getLogger("license_sync")


class Durable(Protocol):
    """Where the durable memory is kept: the history (`History`) or a DynamoDB table
    replicas share (`DynamoState`)."""

    path: str
    fresh: bool

    def get_state(self, key: str, default: Any = None) -> Any: ...
    def set_state(self, key: str, value: Any, now: datetime) -> None: ...
    def job_originals(self) -> dict[str, dict[str, Any]]: ...
    def save_job_originals(self, rows: Iterable[dict[str, Any]], now: datetime) -> None: ...
    def drop_job_originals(self, job_ids: Iterable[str]) -> None: ...


class MemoryStore:
    def __init__(
        self, history: History | None, adopt: bool = False, durable: Durable | None = None
    ):
        self.history = history  # this replica's own: what `restore` records it did
        # where the durable memory is: the history, or a table replicas share
        self.durable: Durable | None = durable if durable is not None else history
        self.adopt = adopt
        self.limit_originals: dict[str, int] = {}  # "farm/limit id" → maxCount before us
        # each farm the history has known, as the policy named it: `restore` reaches a farm
        # the policy no longer names
        self.farms: dict[str, dict[str, Any]] = {}
        self.limit_originals_unsaved = False  # some known here only: the disk refused them
        # why the memory kept in the history could not be read; then nothing is written to
        # it and no job is capped, as without a history: caps read as originals are lost
        self.unreadable: str | None = None
        self.salvaged = Memory()  # what an unreadable memory still gave: `restore` uses it
        self.saved_limits: list[Any] | None = None  # the limits' memory as last written

    def load(self) -> Memory:
        """What the history remembers. One that cannot be read whole remembers nothing,
        and is `unreadable`: the service then writes no job cap (`writable` is False).
        What could be read of it is kept in `salvaged`, for `restore` to put back."""
        if self.durable is None:
            return Memory()
        h, failed = self.durable, []

        def part(what: str, read: Callable[[], Any], empty: Any) -> Any:
            try:
                return read()
            except (HistoryError, TypeError, ValueError, KeyError, IndexError) as e:
                failed.append(f"{what} ({e})")
                return empty

        rows = part("the limits' memory", lambda: h.get_state("memory", []), [])
        self.saved_limits = None  # read anew: written again at the next save
        self.limit_originals = part(
            "the limits' originals", lambda: dict(h.get_state("limit_originals", {})), {}
        )
        self.farms = part("the farms", lambda: dict(h.get_state("farms", {})), {})
        originals = part(
            "the jobs' originals",
            lambda: {k: JobOriginal.from_row(r) for k, r in h.job_originals().items()},
            {},
        )
        unadopted = (
            []
            if self.adopt
            else part("the jobs left alone", lambda: h.get_state("unadopted_jobs", []), [])
        )
        limits = part(
            "the limits' memory", lambda: {(r[0], r[1]): _limit_memory(r) for r in rows}, {}
        )
        if failed:
            self.unreadable = f"the memory kept in {h.path!r} cannot be read: {'; '.join(failed)}"
            log.error("%s; no job cap is written until it is repaired", self.unreadable)
            self.salvaged = Memory(limits, originals, frozenset(unadopted))
            return Memory()
        # A new, empty history beside jobs that already carry caps may mean the old history
        # was lost: those caps may be ours and must not become "originals" (`--adopt`).
        first_look = h.fresh and not self.adopt
        return Memory(limits, originals, frozenset(unadopted), first_look)

    @property
    def durable_path(self) -> str:
        """Where the durable memory is, as messages name it."""
        return self.durable.path if self.durable is not None else "(nowhere: no history)"

    @property
    def writable(self) -> bool:
        return self.durable is not None and self.unreadable is None

    def save_limits(self, limits: Mapping[LimitKey, LimitMemory], now: datetime) -> None:
        """Raises HistoryError when it is not on disk. What is already there as it is,
        is not written again: a steady cycle costs a shared table nothing."""
        if self.durable is None or self.unreadable:
            return
        rows = [
            [
                f,
                lim,
                _stamp(m.rising_since),
                list(m.paused),
                m.external,
                [[q, *st] for q, st in m.stamps],
                _stamp(m.stepped_at),
            ]
            for (f, lim), m in sorted(limits.items())
        ]
        if rows != self.saved_limits:
            self.durable.set_state("memory", rows, now)
            self.saved_limits = rows
        if self.limit_originals_unsaved:
            self._save_limit_originals(now)

    def remember_farms(self, farms: Mapping[str, dict[str, Any]], now: datetime) -> None:
        """Keep each farm's entry (region, read threads) beside what we wrote on it; farms
        the policy dropped stay known. Raises HistoryError when it is not on disk."""
        merged = {**self.farms, **farms}
        if merged == self.farms or self.durable is None or self.unreadable:
            return
        self.durable.set_state("farms", merged, now)
        self.farms = merged

    def remember_limit_original(
        self, farm_id: str, limit_id: str, value: int, now: datetime
    ) -> None:
        """Before the first write to a limit, keep its maxCount for `restore --limits`.
        Kept here at once (a later read would show our own value), and on disk by this call
        or, if the disk refuses it, by the next one or the cycle's end (`save_limits`).
        Raises HistoryError while it is not on disk."""
        key = f"{farm_id}/{limit_id}"
        if key in self.limit_originals and not self.limit_originals_unsaved:
            return
        self.limit_originals.setdefault(key, value)
        self._save_limit_originals(now)

    def _save_limit_originals(self, now: datetime) -> None:
        if self.durable is None or self.unreadable:
            return
        self.limit_originals_unsaved = True
        self.durable.set_state("limit_originals", self.limit_originals, now)
        self.limit_originals_unsaved = False

    def forget_limit_originals(self, keys: Iterable[str], now: datetime) -> None:
        for key in keys:
            self.limit_originals.pop(key, None)
        self._save_limit_originals(now)

    def save_jobs(self, records: Iterable[JobOriginal], now: datetime) -> None:
        """Raises HistoryError when they are not on disk."""
        assert self.durable is not None
        self.durable.save_job_originals([r.as_row() for r in records], now)

    def drop_jobs(self, job_ids: Iterable[str]) -> None:
        assert self.durable is not None
        self.durable.drop_job_originals(list(job_ids))

    def save_unadopted(self, job_ids: Iterable[str], now: datetime) -> None:
        if self.durable is not None:
            self.durable.set_state("unadopted_jobs", sorted(job_ids), now)


def _limit_memory(row: list[Any]) -> LimitMemory:
    """One kept row; rows kept before the external use (five members), the pauses'
    stamps (six) or the rise's last step (seven) were remembered are shorter. A row kept
    while settle counted cycles holds a count where the rise's start now is: that rise
    settles again from this cycle."""
    external = row[4] if len(row) > 4 else None
    stamps = tuple((q, (at, by)) for q, at, by in row[5]) if len(row) > 5 else ()
    since = _moment(row[2]) if isinstance(row[2], str) else None
    stepped = _moment(row[6]) if len(row) > 6 and row[6] is not None else None
    return LimitMemory(tuple(row[3]), external, stamps, rising_since=since, stepped_at=stepped)


def _stamp(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _moment(text: str) -> datetime:
    """A kept time; one without a zone (never written so) is read as UTC."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
