"""The things license-sync reasons about, as plain values (docs/design.md, "The cycle").

The bottom of the house: every module may import these, and this imports nothing of the
project. No I/O, no clock, no text: a reason is a kind and its numbers (`Reason`);
`reasons.py` is the one place that turns it into words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

ACTIVE = "ACTIVE"  # a queue-limit association that lets tasks take the limit
STOPPED = "STOPPED"  # an association the service has stopped: only it sets this status
PAUSED = "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"  # what we set on a queue when licenses run out
# INTERRUPTING: a requeued run whose process has not exited yet; the task runs again
ACTIVE_TASK_STATES = ("READY", "ASSIGNED", "SCHEDULED", "STARTING", "RUNNING", "INTERRUPTING")
# a job's lifecycle statuses in which its steps are as they will stay until its next update
STEPS_SETTLED = ("CREATE_COMPLETE", "UPDATE_SUCCEEDED", "UPDATE_FAILED")
FINISHED_JOB_STATES = ("SUCCEEDED", "FAILED", "CANCELED", "SUSPENDED", "NOT_COMPATIBLE")


@dataclass(frozen=True, slots=True)
class Reason:
    """Why something was decided: a kind and the numbers behind it, never prose."""

    kind: str
    data: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, **data: Any) -> Reason:
        return cls(kind, tuple(data.items()))

    def __getitem__(self, key: str) -> Any:
        return dict(self.data)[key]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.data)}


Why = tuple[Reason, ...]  # the parts of one decision's reason, in the order they read


# -- the farm, as read -------------------------------------------------------------------------


Stamp = tuple[str, str]  # a resource's last write: (updatedAt as ISO 8601, updatedBy)


@dataclass(frozen=True, slots=True)
class Association:
    queue_id: str
    status: str
    updated: Stamp | None = None  # None: never updated, or not read (offline)


@dataclass(frozen=True, slots=True)
class LimitState:
    """A Deadline limit as last read, with its queue associations."""

    farm_id: str
    limit_id: str
    display_name: str
    amount: str
    max_count: int  # -1 = unlimited
    current_count: int
    associations: tuple[Association, ...] = ()
    # units the limit's task-run actions hold now (their acquiredLimits): a pool without a
    # farm_selector's farm use, a pool with one less its undeclared use; None: not read
    # (currentCount, which lags, stands in)
    held: int | None = None


def short_host(host: str) -> str:
    """A host as license servers and workers may both name it: the first label, lower
    case (a worker reports `render-012.farm.local`, lmstat may show `render-012`); an
    IPv4 address as it is."""
    host = host.strip().lower()
    return host if host.replace(".", "").isdigit() else host.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class FleetInfo:
    """A fleet as ListFleets shows it: what it declares of itself takes no limit's units."""

    fleet_id: str
    name: str
    custom_amounts: tuple[str, ...] = ()  # workerCapabilities.customAmounts' names


@dataclass(frozen=True, slots=True)
class HostRun:
    """A task run under way on a farm worker, found by the host a license server names:
    what it acquired tells use declared to a limit from use around it."""

    host: str  # as the license server names it (short name, lower case)
    worker_id: str
    queue_id: str
    job_id: str
    step_id: str
    acquired: Mapping[str, int]  # limit id → units (acquiredLimits)


@dataclass(frozen=True, slots=True)
class Undeclared:
    """Licenses a farm host holds that no limit of the pool counts, and the run that
    holds them when one was found (docs/design.md, "Use around the limit")."""

    pool: str
    host: str
    count: int
    worker_id: str = ""  # empty: no task run found on a worker of that host
    queue_id: str = ""
    job_id: str = ""
    step_id: str = ""
    job_name: str = ""
    step_name: str = ""


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as SearchJobs or BatchGetJob return it: enough to share a pool."""

    queue_id: str
    job_id: str
    name: str
    priority: int
    task_run_status: str
    lifecycle_status: str
    counts: Mapping[str, int]
    max_worker_count: int  # -1 = unlimited (also when unset)
    created_at: Any
    created_by: str

    @property
    def can_run(self) -> bool:
        return self.lifecycle_status != "ARCHIVED" and self.task_run_status not in (
            FINISHED_JOB_STATES
        )


@dataclass(frozen=True, slots=True)
class StepAmounts:
    step_id: str
    amounts: Mapping[str, float]  # amount name → min units per task
    tasks: int  # tasks in the step (all states)
    # tasks that can run now (READY to RUNNING), read this cycle for a job whose steps ask
    # for different amounts; None: not read, and the job-level counts stand in
    active: int | None = None
    # tasks one run takes at once (OpenJD TASK_CHUNKING: the step's CHUNK[INT] parameter's
    # chunks.defaultTaskCount); a run holds one license for its whole chunk
    chunk: int = 1


@dataclass(frozen=True, slots=True)
class RunningTask:
    """A task running now and the units of one limit it holds (from the sessions API)."""

    queue_id: str
    job_id: str
    step_id: str
    task_id: str
    started_at: datetime
    units: int


@dataclass(frozen=True, slots=True)
class Holding:
    """Who holds one limit now, from the sessions API (docs/design.md, "Preemption")."""

    running: tuple[RunningTask, ...] = ()  # runs that name their task: these may be requeued
    held: int = 0  # units the running actions hold, chunks' included
    releasing: int = 0  # units canceled actions hold until their process exits
    chunks: int = 0  # running chunks of a chunked step: they name no task, none is requeued
    errors: tuple[str, ...] = ()  # actions that could not be read (per-item errors)


# -- what the service carries from one cycle to the next ---------------------------------------


@dataclass(frozen=True, slots=True)
class LimitMemory:
    """What the control law carries from one cycle to the next for one limit."""

    paused: tuple[str, ...] = ()  # queues whose association we stopped
    # the pool's external use as last read, where the farm's use comes from the delayed
    # currentCount: a rise is believed once a second read shows it (`limits._held_external`)
    external: int | None = None
    # the stamp our pause left on each queue it stopped (read back after the write): a
    # later write by someone else means a person stopped it, and it is theirs to reopen
    stamps: tuple[tuple[str, Stamp], ...] = ()
    # the pool's use around its limits as last read: believed once a second read shows it,
    # since a run that just ended may still hold its license (`limits._confirmed_around`)
    undeclared: int | None = None
    # since when the target has stayed above maxCount (None: no rise wanted), and when
    # this rise last wrote an increase: settle and max_step are times, not cycle counts,
    # so a cycle a refusal starts never hurries a rise (`limits._step`)
    rising_since: datetime | None = None
    stepped_at: datetime | None = None

    def stamps_of(self, queues: tuple[str, ...]) -> tuple[tuple[str, Stamp], ...]:
        """The stamps of those of `queues` we paused: what a memory of them keeps."""
        return tuple(s for s in self.stamps if s[0] in queues)


@dataclass(frozen=True, slots=True)
class JobOriginal:
    """A job we capped: its maxWorkerCount before us, and what we wrote since.

    On disk before the first write to the job; kept until the original is back, the job
    no longer exists, or a person has taken the job over (`manual`)."""

    job_id: str
    farm_id: str
    queue_id: str
    pool: str
    limit_id: str
    original: int
    last_written: int | None = None
    pending: int | None = None  # a write sent whose answer we have not seen
    manual: bool = False

    def ours(self) -> set[int]:
        """Values that mean "as we left it": our last write, a write we may have made
        before a crash, or — if we never wrote — the original."""
        values = {v for v in (self.last_written, self.pending) if v is not None}
        if self.last_written is None:
            values.add(self.original)
        return values

    def landed(self) -> JobOriginal:
        """The pending write is known to have landed: it is our last write."""
        return replace(self, last_written=self.pending, pending=None)

    def as_row(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "farm_id": self.farm_id,
            "queue_id": self.queue_id,
            "pool": self.pool,
            "limit_id": self.limit_id,
            "original": self.original,
            "last_written": self.last_written,
            "pending": self.pending,
            "manual": int(self.manual),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobOriginal:
        def opt(key: str) -> int | None:
            return None if row.get(key) is None else int(row[key])

        return cls(
            job_id=row["job_id"],
            farm_id=row["farm_id"],
            queue_id=row["queue_id"],
            pool=row.get("pool") or "",
            limit_id=row.get("limit_id") or "",
            original=int(row["original"]),
            last_written=opt("last_written"),
            pending=opt("pending"),
            manual=bool(row.get("manual")),
        )


# -- what the control law computes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """One pool's arithmetic this cycle (docs/design.md, "The control law")."""

    total: int | None  # None: unlimited (uncounted)
    in_use: int
    farm_use: int
    farm_use_from: str  # "selector" | "acquiredLimits" | "currentCount"
    external: int
    reserve: int
    headroom: int
    queued: int = 0  # checkouts the license server has queued: someone is refused now
    waiting: int = 0  # artists its log refused lately and not served since (in external)
    # what farm hosts hold that no limit of the pool counts: steps that run the product
    # without declaring its amount, fleets that declare it as their own
    undeclared: int = 0
    # what this read alone shows of it: taken once a second read agrees (`undeclared`)
    undeclared_seen: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one limit this cycle: a maxCount, queues to pause or resume."""

    pool: str
    farm_id: str
    limit_ref: str
    limit_id: str | None
    current: int | None  # maxCount now
    target: int | None  # what the law asks for
    new: int | None  # what to write; None = no write
    why: Why
    status: str = "ok"  # ok | stale | down | error
    pause: tuple[str, ...] = ()  # queue ids to set to PAUSED
    resume: tuple[str, ...] = ()  # queue ids to set back to ACTIVE
    current_count: int | None = None
    exhausted: bool = False  # the raw target was below 1: no license free for the farm
    preempt: int = 0  # the farm's youngest tasks to requeue, to give licenses back now

    @property
    def changes_anything(self) -> bool:
        """Whether the decision writes anything: a maxCount, a pause or resume, a requeue."""
        return self.new is not None or bool(self.pause) or bool(self.resume) or self.preempt > 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.farm_id, self.limit_ref)


@dataclass(frozen=True, slots=True)
class JobDemand:
    """What one job asks of one limit now, in the limit's units."""

    job_id: str
    queue_id: str
    name: str
    created_by: str
    created_at: datetime
    priority: int
    units: int  # units one run holds
    tasks: int  # runs wanting to start or running now: a chunked step's run takes a chunk
    max_worker_count: int  # -1 = unlimited
    other: int = 0  # the job's active tasks of steps that do not need the amount
    # the job's own maxWorkerCount, before us (its original, or its value while we have
    # none): a person's cap is a ceiling we never write above; None: unlimited
    ceiling: int | None = None

    @property
    def demand(self) -> int:
        return self.tasks * self.units


@dataclass(frozen=True, slots=True)
class Allocation:
    job_id: str
    cap: int | None  # None: leave the job alone (exempt)
    weight: float
    why: Why
    band: int = 0  # a cap of ours from `cap` to `cap + band` stands (jobs.slack)


@dataclass(frozen=True, slots=True)
class JobWrite:
    """One maxWorkerCount to write: a cap, or an original put back (`restore`)."""

    queue_id: str
    job_id: str
    value: int
    old: int
    pool: str
    limit_id: str
    why: Why
    restore: bool = False


@dataclass(frozen=True, slots=True)
class JobChange:
    """One line of the job_changes history: a cap, a restore, or a manual edit seen."""

    at: datetime
    record: JobOriginal
    old: int | None
    new: int | None
    kind: str  # cap | restore | manual
    why: Why = field(default=())
