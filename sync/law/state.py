"""The cycle's state, one definition each: what a cycle read (`SourceState`, `FarmRead`,
`Observed`) and what the service carries across cycles and restarts (`Memory`). The
writes a cycle plans are `reconcile.Plan`. Pure values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sync.law.learn import Profile
from sync.licenses import Report
from sync.values.domain import (
    JobInfo,
    JobOriginal,
    LimitMemory,
    LimitState,
    StepAmounts,
    Undeclared,
)

Steps = Mapping[str, Sequence[StepAmounts]]  # job id → its steps' amounts


@dataclass(frozen=True, slots=True)
class Denial:
    """A checkout a license server's log recorded as refused, told apart (denials.py)."""

    at: datetime
    source: str
    pool: str  # "" when no pool takes the feature from this source
    feature: str
    user: str
    host: str
    who: str  # artist | farm
    reason: str


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the service knows of a source this cycle."""

    report: Report  # this cycle's read (may be down)
    last_good: datetime | None  # when it was last read up
    seconds: float = 0.0  # how long the read took
    last_good_report: Report | None = None  # what it said then (metrics keep showing it)
    refused: tuple[Denial, ...] = ()  # the refusals its log recorded since the last cycle
    log_error: str | None = None  # its log is down: why (None: fine, or no log)
    log_skipped: int = 0  # lines of its log over the length bound, skipped this cycle
    # by feature: artists its log refused lately, not served since (observe.py keeps them)
    waiting: Mapping[str, int] = field(default_factory=dict)


LimitKey = tuple[str, str]  # (farm id, limit ref as the policy names it)
LimitMemories = Mapping[LimitKey, LimitMemory]  # what each limit carries to the next cycle


@dataclass(frozen=True)
class FarmRead:
    """One farm as read this cycle."""

    farm_id: str
    limits: Mapping[str, LimitState | str] = field(default_factory=dict)  # ref → state or why
    error: str | None = None  # the farm's limits could not be read: hold everything on it
    jobs: tuple[JobInfo, ...] | None = None  # None: not read; hold its jobs as they are
    jobs_error: str | None = None
    unread: int = 0  # jobs that can run whose steps are not read yet (not capped yet)
    steps: Steps = field(default_factory=dict)
    held: frozenset[str] = frozenset()  # jobs BatchGetJob could not read: held as they are
    # jobs read this cycle as they are now (BatchGetJob); None: no such read is to be had
    # (offline), and the plan does not wait for one
    confirmed: frozenset[str] | None = None


@dataclass(frozen=True)
class Observed:
    """Everything one cycle read: the license sources and the farms."""

    sources: Mapping[str, SourceState]
    farms: Mapping[str, FarmRead]
    errors: tuple[str, ...] = ()  # reads that failed, in words for the operator
    profiles: Mapping[str, Profile] = field(default_factory=dict)  # learned reserves, by pool
    # each pool's undeclared use, named by the runs on its hosts (read after the plan)
    undeclared: Mapping[str, tuple[Undeclared, ...]] = field(default_factory=dict)
    # the farms' workers' hosts (short names, IPv4 addresses): a `workers: true` selector's
    worker_hosts: frozenset[str] = frozenset()

    @cached_property
    def lookup(self) -> dict[LimitKey, LimitState | str]:
        """Every limit read, by (farm, ref as the policy names it)."""
        out: dict[LimitKey, LimitState | str] = {}
        for farm in self.farms.values():
            for ref, found in farm.limits.items():
                out[(farm.farm_id, ref)] = found
        return out


@dataclass(frozen=True)
class Memory:
    """What the service carries across cycles and restarts (kept in the history)."""

    limits: LimitMemories = field(default_factory=dict)
    originals: Mapping[str, JobOriginal] = field(default_factory=dict)  # job id → record
    unadopted: frozenset[str] = frozenset()  # jobs left alone until `--adopt`
    first_look: bool = False  # a new history: capped jobs we have no record of wait
