"""The fake farm's things: limits, jobs, steps and tasks, as plain records."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# tasks that hold the amounts their step needs: from their assignment to a worker; INTERRUPTING
# is a requeued run whose process has not exited yet (TaskRunStatus)
HOLDING = ("ASSIGNED", "SCHEDULED", "STARTING", "RUNNING", "INTERRUPTING")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED")
STOP_COMPLETE = "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"
STOP_CANCEL = "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"
# a job's taskRunStatus: the first of these that one of its tasks has
_JOB_STATUS_ORDER = (
    "RUNNING",
    "INTERRUPTING",
    "STARTING",
    "SCHEDULED",
    "ASSIGNED",
    "READY",
    "PENDING",
    "SUSPENDED",
    "FAILED",
    "CANCELED",
    "NOT_COMPATIBLE",
)


# bumped whenever a task's status changes: a job's taskRunStatus is worked out again only
# then (SearchJobs over a 10,000-job farm would otherwise spend its time counting tasks)
_changes = [0]


def task_changes() -> int:
    """How many task status changes there have been: a cache of what depends on them is
    good while this stays the same."""
    return _changes[0]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def same_amount(a: str, b: str) -> bool:
    """Amount names compare case-insensitively (OpenJD 2023-09 template schemas, 3.3.1.1:
    "amount.Nuke" and "amount.nuke" are one amount)."""
    return a.casefold() == b.casefold()


# how a session action ends when its task leaves RUNNING for this status
_ACTION_END = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "CANCELED": "CANCELED"}
# session actions that hold what they acquired: the scheduler takes a limit's units when it
# assigns the action to a worker, and a canceled or reclaimed run gives them back once its
# process has exited (CANCELING, RECLAIMING)
ACTION_HOLDING = ("ASSIGNED", "SCHEDULED", "RUNNING", "CANCELING", "RECLAIMING")


@dataclass
class Run:
    """One task-run session action: one task, or one chunk of a chunked step's tasks. A
    chunk's run names no task (`task_id` ""): the model's
    TaskRunSessionActionDefinitionSummary does not require `taskId`, and the worker agent's
    `TaskRunAction.taskId` is NotRequired."""

    action_id: str
    session_id: str
    task_id: str
    step_id: str
    assigned: datetime
    acquired: list[tuple[str, int]]  # (limit id, count): the action's acquiredLimits
    host: str  # the worker's host name: where the license is checked out
    uses: list[str] = field(default_factory=list)  # amounts whose licenses its process takes
    started: datetime | None = None  # None while ASSIGNED: the worker has not begun it
    ended: datetime | None = None
    action_status: str = "ASSIGNED"
    parameters: dict[str, Any] = field(default_factory=dict)  # the run's task parameters
    release_at: datetime | None = None  # canceled or reclaimed: the process exits then

    def end(self, now: datetime | None, task_status: str) -> None:
        if self.ended is None:
            self.ended = now or self.started or self.assigned
            self.action_status = _ACTION_END.get(task_status, "INTERRUPTED")

    @property
    def open(self) -> bool:
        """Holding what it acquired: assigned, running, or canceled and not yet exited."""
        return self.ended is None


@dataclass
class Session:
    """A worker's session for one job: the runs it was given one after another (a worker
    keeps a session while its job has work for it, as the worker agent's scheduler does),
    ENDED once the worker leaves the job."""

    session_id: str
    queue_id: str
    job_id: str
    fleet_id: str
    worker_id: str
    started: datetime
    runs: list[Run] = field(default_factory=list)
    ended: datetime | None = None

    @property
    def running(self) -> bool:
        return any(r.open for r in self.runs)


@dataclass
class Task:
    status: str = "READY"
    started: datetime | None = None
    duration: float = 60.0
    holds_license: bool = False
    task_id: str = field(default_factory=lambda: new_id("task") + "-0")
    run: Run | None = None  # the run in progress
    parameters: dict[str, Any] = field(default_factory=dict)  # its frame, as the API shows it
    ended: datetime | None = None

    def __setattr__(self, name: str, value: object) -> None:
        if name == "status":
            _changes[0] += 1
        object.__setattr__(self, name, value)

    def set_status(self, status: str, now: datetime | None = None) -> None:
        self.status = status
        self.ended = now if status in TERMINAL else None
        if status not in HOLDING:
            if self.run is not None:
                self.run.end(now, status)
            self.started, self.holds_license, self.run = None, False, None


@dataclass
class Step:
    step_id: str
    name: str
    amounts: list[tuple[str, int]]  # (amount.x, min units per task)
    tasks: list[Task]
    chunk: int = 1  # tasks one run takes at once (OpenJD TASK_CHUNKING); 1: not chunked
    depends_on: list[str] = field(default_factory=list)  # ids of the steps it waits for
    parameter_space: dict[str, Any] | None = None  # GetStep's parameterSpace
    target_runtime: int | None = None  # chunks.targetRuntimeSeconds (adaptive chunks)
    lifecycle_status: str = "CREATE_COMPLETE"  # UPDATE_IN_PROGRESS after UpdateStep, a tick
    command: str = ""  # its onRun command (`FakeFarm.products` says what license it takes)
    target_task_run_status: str | None = None
    updated: tuple[datetime, str] | None = None  # updatedAt, updatedBy

    def needs(self, amount: str) -> bool:
        return any(same_amount(name, amount) for name, _ in self.amounts)

    @property
    def task_run_status(self) -> str:
        return _run_status({t.status for t in self.tasks})


@dataclass
class Job:
    job_id: str
    queue_id: str
    name: str
    priority: int
    created_at: datetime
    created_by: str
    steps: list[Step]
    max_worker_count: int = -1
    lifecycle_status: str = "CREATE_COMPLETE"
    # CreateJob is asynchronous: the steps the template makes, and when they exist
    creating: tuple[datetime, list[Step]] | None = None
    description: str = ""
    max_failed_tasks_count: int = 100
    max_retries_per_task: int = 5
    target_task_run_status: str | None = None
    sessions: list[Session] = field(default_factory=list)
    updated_at: datetime | None = None
    updated_by: str | None = None
    # each write: when, and the wire values of the fields it changed as they were before
    # (SearchJobs answers from the job as it was `search_lag` ago: docs/design.md)
    trail: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)

    _status: tuple[int, str] = field(default=(-1, ""), repr=False, compare=False)

    @property
    def task_run_status(self) -> str:
        if self.creating is not None:
            return "PENDING"  # no task exists yet: none has run or ended
        changes, status = self._status
        if changes != _changes[0]:
            status = _run_status({t.status for s in self.steps for t in s.tasks})
            self._status = (_changes[0], status)
        return status

    @property
    def finished(self) -> bool:
        return self.task_run_status in TERMINAL

    def tasks(self) -> list[Task]:
        return [t for s in self.steps for t in s.tasks]

    @property
    def started_at(self) -> datetime | None:
        """When its first run started (a run that ended included)."""
        starts = [r.started for s in self.sessions for r in s.runs if r.started is not None]
        return min(starts) if starts else None

    @property
    def ended_at(self) -> datetime | None:
        """When its last task ended, once every task has."""
        if not self.steps or not self.finished:
            return None
        ends = [t.ended for t in self.tasks() if t.ended is not None]
        return max(ends) if ends else None


def _run_status(statuses: set[str]) -> str:
    for status in _JOB_STATUS_ORDER:
        if status in statuses:
            return status
    return "SUCCEEDED"


@dataclass
class Limit:
    limit_id: str
    display_name: str
    amount: str
    max_count: int
    created_at: datetime
    description: str = ""
    updated_at: datetime | None = None
    updated_by: str | None = None
    reported: deque[tuple[datetime, int]] = field(default_factory=deque)
