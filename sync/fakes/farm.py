"""A fake Deadline farm: limits, queues, associations, jobs, steps and tasks.

State moves as the service documents it (docs/design.md, "The fake Deadline"): an
association set to a STOP status becomes STOPPED once the queue's tasks that hold the
limit are done (the CANCEL status cancels them first); tasks finish, fail, are requeued
and suspended; an archived job is never scheduled again. Time is injected (`tick(now)`),
so tests step it by hand and the demo runs it on a clock. The API operations live in
`sync.fakes.operations`.

Where the real service is less kind than a plain store, so is this, each a switch
(`REALISTIC` holds the values the demo, the farm state machine and the soak run with):

- `count_delay`: currentCount is the value of that long ago (ListLimits and GetLimit:
  "The result is delayed and may not be the count at the time that you called").
- `search_lag`: SearchJobs answers from each job as it was that long ago, and does not
  see jobs created since (AWS's `deadline` library, `_list_jobs_by_filter_expression`:
  "Eventual consistency in the deadline:SearchJobs API means that the result set can be
  missing jobs with a timestamp close to the current time"; its incremental download
  allows EVENTUAL_CONSISTENCY_MAX_SECONDS = 120). GetJob and BatchGetJob read the writes.
- `item_error_rate`: single items of every Batch* call fail inside an HTTP 200 with a code
  the model lists for that operation (`BatchGetJobErrorCode`, …). ResourceNotFound is
  only ever said of what does not exist.
- `release_delay`: a requeued task's run is canceled, and holds what it acquired until
  its process exits (the worker agent's cancelation: TERMINATE, or NOTIFY_THEN_TERMINATE
  and its notify period); the action reads CANCELING meanwhile.
- Steps may be chunked (`add_job(chunk=N)`, OpenJD TASK_CHUNKING): a run takes up to N
  tasks and its action names no task.

Always so, since the model and the specification say it: amount names compare
case-insensitively; writes stamp `updatedAt`/`updatedBy` with the caller's identity.
"""

from __future__ import annotations

import math
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from sync.fakes.fleets import CUSTOMER, SERVICE_MANAGED, Fleet, FleetOperations, Worker
from sync.fakes.model import (
    HOLDING,
    STOP_CANCEL,
    STOP_COMPLETE,
    TERMINAL,
    Job,
    Limit,
    Run,
    Session,
    Step,
    Task,
    new_id,
    same_amount,
)
from sync.fakes.operations import (
    PERSON,
    SEARCH_TOTAL_MAX,
    SERVICE,
    FakeError,
    FarmOperations,
)
from sync.fakes.sessions import SessionOperations
from sync.fakes.templates import JobSpec, build, simple_template

__all__ = ["PERSON", "REALISTIC", "FakeError", "FakeFarm", "Job", "Limit", "Step", "Task"]


# the values the demo, the farm state machine and the soak run the fake with
class Lateness(TypedDict):
    count_delay: float
    search_lag: float
    item_error_rate: float
    release_delay: float
    create_delay: float
    assign_delay: float


REALISTIC: Lateness = {
    "count_delay": 10.0,
    "search_lag": 90.0,  # longer than a cycle, within AWS's own 120 s allowance
    "item_error_rate": 0.02,
    "release_delay": 5.0,
    # CreateJob answers at once and the job's steps exist a little later
    # (`JobLifecycleStatus` CREATE_IN_PROGRESS; AWS's `deadline` library waits up to 300 s)
    "create_delay": 3.0,
    # a run is ASSIGNED to a worker, holding its limit's units, until the worker's agent
    # picks it up and starts the process, which then checks its license out
    "assign_delay": 2.0,
}


class FakeFarm(FarmOperations, SessionOperations, FleetOperations):
    """All state behind the fake endpoint. Thread-safe; every mutation under `lock`."""

    def __init__(
        self,
        farm_id: str | None = None,
        *,
        now: datetime | None = None,
        count_delay: float = 10.0,
        seed: int = 1,
        workers: int = 1000,
        search_lag: float = 0.0,
        item_error_rate: float = 0.0,
        release_delay: float = 0.0,
        create_delay: float = 0.0,
        assign_delay: float = 0.0,
        task_seconds: float = 60.0,
    ):
        self.farm_id = farm_id or new_id("farm")
        self.display_name = "demo farm"
        self.lock = threading.RLock()
        self.now = now or datetime.now(UTC)
        self.created: dict[str, datetime] = {self.farm_id: self.now}
        # the identity the service stamps its own move of an association to STOPPED with,
        # or None when that move leaves the last caller's stamp: the model does not say
        # which, so the tests run both (docs/design.md, "Paused queues")
        self.stopped_by: str | None = None
        self.count_delay = timedelta(seconds=count_delay)
        self.search_lag = timedelta(seconds=search_lag)
        self.item_error_rate = item_error_rate
        self.release_delay = timedelta(seconds=release_delay)
        self.create_delay = timedelta(seconds=create_delay)
        self.assign_delay = timedelta(seconds=assign_delay)
        self.task_seconds = task_seconds  # how long a frame runs (a template does not say)
        self.rng = random.Random(seed)
        self.caller = SERVICE  # who the operation in progress is done for (`call`)
        self.search_total_max = SEARCH_TOTAL_MAX  # the model's; tests scale it down
        self.open_runs: list[Run] = []  # runs holding what they acquired
        self.limits: dict[str, Limit] = {}
        self.queues: list[str] = []
        self.associations: dict[tuple[str, str], str] = {}
        self.jobs: dict[str, Job] = {}
        self.fleets: dict[str, Fleet] = {}
        self.fleet_links: dict[tuple[str, str], str] = {}  # (queue, fleet) → status
        # every queue runs on this service-managed fleet unless a test says otherwise
        self.default_fleet = self.add_fleet("render", workers, SERVICE_MANAGED) if workers else None
        self.denials = 0  # tasks that started and found no license
        # command → the amount of the product it runs: a step running "nuke" checks a Nuke
        # license out whether it declares amount.nuke or not (the studio's own mapping)
        self.products: dict[str, str] = {}
        # (amount, host) -> bool: can a run's process check a license out now?
        self.license_check: Any = None
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.tokens: dict[tuple[str, str], dict[str, Any]] = {}  # (operation, clientToken)
        self.stamps: dict[tuple[str, str], tuple[datetime, str]] = {}  # association → updated
        self.item_faults: dict[str, str] = {}  # job, step or action id → its item error code
        self._last_created = datetime.min.replace(tzinfo=UTC)
        self._index: tuple[Any, list[Job]] | None = None  # SearchJobs' (`_search_index`)

    # -- building ---------------------------------------------------------------------------

    def add_queue(self, queue_id: str | None = None) -> str:
        """A queue, associated with the default fleet."""
        with self.lock:
            q = queue_id or new_id("queue")
            self.queues.append(q)
            self.created[q] = self.now
            if self.default_fleet is not None:
                self.link_fleet(q, self.default_fleet)
            return q

    def add_fleet(
        self,
        name: str,
        workers: int,
        kind: str = CUSTOMER,
        amounts: tuple[tuple[str, float, float | None], ...] = (),
        host_prefix: str | None = None,
    ) -> str:
        """A fleet of up to `workers` workers declaring `amounts` (`customAmounts`: name,
        min, max). A customer-managed fleet's workers exist from the start; a
        service-managed fleet starts them as work comes."""
        with self.lock:
            fleet = Fleet(new_id("fleet"), name, kind, self.now, workers, list(amounts))
            fleet.host_prefix = host_prefix or name
            self.fleets[fleet.fleet_id] = fleet
            if kind == CUSTOMER:
                for _ in range(workers):
                    fleet.worker("", self.now, len(self.fleets))
            return fleet.fleet_id

    def link_fleet(self, queue_id: str, fleet_id: str, status: str = "ACTIVE") -> None:
        """A queue–fleet association (QueueFleetAssociationStatus)."""
        with self.lock:
            self.fleet_links[(queue_id, fleet_id)] = status
            self.created.setdefault(f"{queue_id}/{fleet_id}", self.now)

    def add_limit(
        self,
        amount: str,
        max_count: int,
        display_name: str | None = None,
        limit_id: str | None = None,
    ) -> str:
        with self.lock:
            lid = limit_id or new_id("limit")
            self.limits[lid] = Limit(
                lid, display_name or amount.removeprefix("amount."), amount, max_count, self.now
            )
            return lid

    def add_queue_with_limit(self, amount: str, max_count: int) -> tuple[str, str]:
        """A new queue and a new limit, associated: the smallest farm a test needs."""
        queue_id = self.add_queue()
        limit_id = self.add_limit(amount, max_count)
        self.associate(queue_id, limit_id)
        return queue_id, limit_id

    def associate(self, queue_id: str, limit_id: str, status: str = "ACTIVE") -> None:
        with self.lock:
            self.associations[(queue_id, limit_id)] = status
            self.created.setdefault(f"{queue_id}/{limit_id}", self.now)

    def add_job(
        self,
        queue_id: str,
        name: str,
        tasks: int,
        amount: str | None = None,
        units: int = 1,
        priority: int = 50,
        duration: float = 60.0,
        steps: int = 1,
        created_by: str = "artist",
        max_worker_count: int = -1,
        chunk: int = 1,
    ) -> str:
        """A job of `steps` alike steps of `tasks` frames, made from an OpenJD template as
        CreateJob makes it (`sync.fakes.templates`): the shortest way for a test to say
        what it needs."""
        text = simple_template(name, tasks, amount, units, steps, chunk)
        with self.lock:
            return self.create_job(
                queue_id,
                build(text, "JSON"),
                priority=priority,
                created_by=created_by,
                max_worker_count=max_worker_count,
                duration=duration,
            )

    def create_job(
        self,
        queue_id: str,
        spec: JobSpec,
        *,
        priority: int = 50,
        created_by: str = "artist",
        max_worker_count: int = -1,
        duration: float | None = None,
        name: str | None = None,
    ) -> str:
        """A job being created (CREATE_IN_PROGRESS, no steps) whose steps exist
        `create_delay` later, as CreateJob's are (`tick`)."""
        jid = new_id("job")
        # distinct creation times, in the order jobs were added, as Deadline's are
        created = max(self.now, self._last_created + timedelta(milliseconds=1))
        self._last_created = created
        job = Job(
            job_id=jid,
            queue_id=queue_id,
            name=name or spec.name,
            priority=priority,
            created_at=created,
            created_by=created_by,
            steps=[],
            max_worker_count=max_worker_count,
            description=spec.description,
        )
        job.lifecycle_status = "CREATE_IN_PROGRESS"
        job.creating = (created + self.create_delay, _steps(spec, duration or self.task_seconds))
        self.jobs[jid] = job
        self._created(job, created if not self.create_delay else self.now)
        return jid

    def _created(self, job: Job, now: datetime) -> None:
        if job.creating is not None and job.creating[0] <= now:
            job.steps = job.creating[1]
            job.creating = None
            job.lifecycle_status = "CREATE_COMPLETE"

    # -- what happens to jobs outside license-sync -------------------------------------------

    def end_job(self, job_id: str, status: str = "SUCCEEDED") -> None:
        """Every task that has not ended ends with `status` (SUCCEEDED, FAILED, CANCELED)."""
        with self.lock:
            for t in self.jobs[job_id].tasks():
                if t.status not in TERMINAL:
                    t.set_status(status)

    def remove_job(self, job_id: str) -> None:
        """The job no longer exists (Deadline deletes archived jobs after 120 days)."""
        with self.lock:
            self.jobs.pop(job_id, None)

    def set_target_status(self, job: Job, status: str, step: Step | None = None) -> None:
        """UpdateJob's or UpdateStep's `targetTaskRunStatus`: requeue, suspend, or end every
        task of the job or of the step."""
        if step is None:
            job.target_task_run_status = status
        for t in job.tasks() if step is None else step.tasks:
            if status in ("READY", "PENDING"):
                t.set_status(status, self.now)  # a requeue runs every task again
            elif t.status not in TERMINAL:
                t.set_status(status, self.now)

    def person_updates_job(self, job_id: str, **fields: object) -> None:
        """A wrangler's UpdateJob (maxWorkerCount=…, priority=…), stamped as theirs."""
        job = self.jobs[job_id]
        ident = {"farmId": self.farm_id, "queueId": job.queue_id, "jobId": job_id}
        self.call("UpdateJob", {**ident, **fields}, caller=PERSON)

    def person_sets_association(self, queue_id: str, limit_id: str, status: str) -> None:
        """A wrangler's UpdateQueueLimitAssociation, stamped as theirs."""
        ident = {"farmId": self.farm_id, "queueId": queue_id, "limitId": limit_id}
        self.call("UpdateQueueLimitAssociation", {**ident, "status": status}, caller=PERSON)

    # -- running ----------------------------------------------------------------------------

    def in_use(self, limit_id: str) -> int:
        """Units held right now under this limit (the true currentCount): what the runs
        that have not ended acquired, a canceled one included until its process exits."""
        return sum(n for r in self.open_runs if r.open for lid, n in r.acquired if lid == limit_id)

    def holders(self, amount: str) -> list[Run]:
        """The runs whose process holds a license of `amount` now: begun and not ended,
        whether a limit counted them or their fleet declares the amount."""
        return [
            r
            for r in self.open_runs
            if r.open and r.started is not None and any(same_amount(u, amount) for u in r.uses)
        ]

    def tick(self, now: datetime) -> None:
        """Advance to `now`: finish tasks that are done, move associations, start tasks."""
        with self.lock:
            self.now = now
            self._finish_tasks(now)
            self._move_associations()
            self._start_tasks(now)
            for lim in self.limits.values():
                lim.reported.append((now, self.in_use(lim.limit_id)))
                while len(lim.reported) > 1 and lim.reported[1][0] <= now - self.count_delay:
                    lim.reported.popleft()

    def requeue(self, job: Job, step: Step, task: Task) -> None:
        """UpdateTask READY on a running task: its run is canceled and gives back what it
        holds once its process exits (`release_delay` later); then the task is READY."""
        r = task.run
        if r is None or task.status not in HOLDING or not self.release_delay:
            task.set_status("READY", self.now)
            return
        task.status = "INTERRUPTING"
        r.action_status = "CANCELING"
        r.release_at = self.now + self.release_delay

    def lose_worker(self, worker_id: str) -> None:
        """The worker's host goes away (a Spot instance reclaimed): its run is RECLAIMING
        until the service gives up on it (`release_delay` later), then RECLAIMED and its
        task READY again."""
        with self.lock:
            w = next(w for f in self.fleets.values() for w in f.workers if w.worker_id == worker_id)
            w.lost = True
            for r in w.session.runs if w.session is not None else ():
                if r.open:
                    r.action_status = "RECLAIMING"
                    r.release_at = self.now + self.release_delay
            for job in self.jobs.values():
                for t in job.tasks():
                    if t.run is not None and t.run.action_status == "RECLAIMING":
                        t.status = "INTERRUPTING"

    def _prune(self) -> None:
        self.open_runs = [r for r in self.open_runs if r.open]

    def _finish_tasks(self, now: datetime) -> None:
        for job in self.jobs.values():
            self._created(job, now)
            for step in job.steps:
                if step.lifecycle_status == "UPDATE_IN_PROGRESS":
                    step.lifecycle_status = "UPDATE_SUCCEEDED"
            _release_dependents(job)
            for t in job.tasks():
                r = t.run
                if r is None or t.status == "PENDING":
                    continue  # `_release_dependents` moves a PENDING one
                if r.release_at is not None:
                    if now >= r.release_at:  # the canceled run's process has exited
                        ended = "RECLAIMED" if r.action_status == "RECLAIMING" else "CANCELED"
                        t.set_status("READY", now)
                        r.action_status = ended
                elif t.status == "ASSIGNED" and now >= r.assigned + self.assign_delay:
                    self._begin(t, r, now)
                elif (
                    t.status == "RUNNING"
                    and t.started is not None
                    and (now - t.started).total_seconds() >= t.duration
                ):
                    t.set_status("SUCCEEDED", now)
        self._prune()

    def _move_associations(self) -> None:
        """A STOP status becomes STOPPED once the queue's tasks under the limit are done."""
        for (queue_id, limit_id), status in list(self.associations.items()):
            if status not in (STOP_COMPLETE, STOP_CANCEL):
                continue
            amount = self.limits[limit_id].amount
            holding = [
                t
                for job in self.jobs.values()
                if job.queue_id == queue_id
                for step in job.steps
                if step.needs(amount)
                for t in step.tasks
                if t.status in HOLDING
            ]
            if status == STOP_CANCEL:
                for t in holding:
                    t.set_status("CANCELED")
                holding = []
            if not holding:
                self.associations[(queue_id, limit_id)] = "STOPPED"
                if self.stopped_by is not None:
                    self.stamps[(queue_id, limit_id)] = (self.now, self.stopped_by)

    def _start_tasks(self, now: datetime) -> None:
        given: set[str] = set()  # workers given a run this tick: they keep their session
        for job in sorted(self.jobs.values(), key=lambda j: (-j.priority, j.created_at)):
            if job.lifecycle_status == "ARCHIVED":
                continue
            job_running = len({id(t.run) for t in job.tasks() if t.status in HOLDING})
            for step in job.steps:
                if not self._compatible(job, step):
                    for t in step.tasks:
                        if t.status == "READY":
                            t.set_status("NOT_COMPATIBLE")
                    continue
                ready = [t for t in step.tasks if t.status == "READY"]
                for i in range(0, len(ready), step.chunk):
                    if job.max_worker_count != -1 and job_running >= job.max_worker_count:
                        break
                    placed = self._place(job, step, ready[i : i + step.chunk], now)
                    if placed is None:
                        break  # no worker or no limit room for this step now
                    given.add(placed.worker_id)
                    job_running += 1
        self._leave_sessions(given, now)

    def _place(self, job: Job, step: Step, tasks: list[Task], now: datetime) -> Worker | None:
        """Assign one run of `tasks` (one, or a chunk) to a worker of a fleet of the job's
        queue that can meet the step, taking the units of the limits that govern what the
        fleet does not declare."""
        for fleet in self._fleets_of(job.queue_id):
            limits = self._limits_for(job.queue_id, step, fleet)
            if limits is None or not all(self._room(lim, units) for lim, units in limits):
                continue
            worker = fleet.worker(job.job_id, now, len(self.fleets))
            if worker is None:
                continue
            acquired = [(lim.limit_id, units) for lim, units in limits]
            run = self._open_run(job, step, tasks, worker, acquired, now)
            for t in tasks:
                t.status, t.holds_license, t.run = "ASSIGNED", True, run
            if not self.assign_delay:
                for t in tasks:
                    self._begin(t, run, now)
            return worker
        return None

    def _begin(self, task: Task, run: Run, now: datetime) -> None:
        """The worker starts the run's process, which checks its licenses out; refused,
        the run fails and its frames are READY to run again."""
        if run.started is None:
            check = self.license_check
            if check is not None and not all(check(u, run.host) for u in run.uses):
                self.denials += 1
                run.started = now
                run.end(now, "FAILED")
            else:
                run.started, run.action_status = now, "RUNNING"
        if run.ended is not None:
            task.status, task.holds_license, task.run = "READY", False, None
        else:
            task.status, task.started = "RUNNING", now

    def _open_run(
        self,
        job: Job,
        step: Step,
        tasks: list[Task],
        worker: Worker,
        acquired: list[tuple[str, int]],
        now: datetime,
    ) -> Run:
        """The run, as the sessions API shows it, in the worker's session for the job (a
        new one if the worker was in another job's, or none): what limits it acquired,
        and its task (none for a chunk: its parameters say which frames it runs)."""
        session = worker.session
        if session is None or session.job_id != job.job_id:
            if session is not None:
                session.ended = now
            session = Session(
                new_id("session"), job.queue_id, job.job_id, worker.fleet_id, worker.worker_id, now
            )
            worker.session = session
            worker.sessions.append(session)
            job.sessions.append(session)
        chunked = step.chunk > 1
        first = step.tasks.index(tasks[0])
        frames = f"{first + 1}-{first + len(tasks)}" if chunked else str(first + 1)
        run = Run(
            f"{session.session_id.replace('session', 'sessionaction', 1)}-{len(session.runs)}",
            session.session_id,
            "" if chunked else tasks[0].task_id,
            step.step_id,
            now,
            acquired,
            worker.host_name,
            uses=self._uses(step),
            parameters={"Frame": {"chunkInt": frames} if chunked else {"int": frames}},
        )
        session.runs.append(run)
        self.open_runs.append(run)
        return run

    def _uses(self, step: Step) -> list[str]:
        """The amounts whose licenses a run of `step` checks out: those it declares, and
        the one of the product its command runs, declared or not (`products`)."""
        uses = [name for name, _ in step.amounts]
        product = self.products.get(step.command.rsplit("/", 1)[-1])
        if product is not None and not step.needs(product):
            uses.append(product)
        return uses

    def _leave_sessions(self, given: set[str], now: datetime) -> None:
        """A free worker given no new run leaves its job: its session ends."""
        for fleet in self.fleets.values():
            for w in fleet.workers:
                if w.session is not None and w.worker_id not in given and not w.session.running:
                    w.session.ended = now
                    w.session = None

    def _fleets_of(self, queue_id: str, status: str | None = "ACTIVE") -> list[Fleet]:
        return [
            f
            for f in self.fleets.values()
            if (queue_id, f.fleet_id) in self.fleet_links
            and status in (None, self.fleet_links[(queue_id, f.fleet_id)])
        ]

    def _limits_for(
        self, queue_id: str, step: Step, fleet: Fleet
    ) -> list[tuple[Limit, int]] | None:
        """The limits a run of `step` on `fleet` takes units of: those governing an amount
        the fleet does not declare, through an ACTIVE association with the queue; None if
        the fleet cannot run it now (an amount it lacks and no limit governs, or a limit
        whose association is stopping or stopped)."""
        out = []
        for name, units in step.amounts:
            if fleet.declares(name):
                if not fleet.has(name, units):
                    return None
                continue
            lim = self._governing(queue_id, name)
            if lim is None or self.associations[(queue_id, lim.limit_id)] != "ACTIVE":
                return None
            out.append((lim, units))
        return out

    def _governing(self, queue_id: str, amount: str) -> Limit | None:
        """The limit associated with the queue for `amount` (a queue has at most one)."""
        for lim in self.limits.values():
            if same_amount(lim.amount, amount) and (queue_id, lim.limit_id) in self.associations:
                return lim
        return None

    def _room(self, lim: Limit, units: int) -> bool:
        return lim.max_count == -1 or self.in_use(lim.limit_id) + units <= lim.max_count

    def _compatible(self, job: Job, step: Step) -> bool:
        """Some fleet of the queue could run the step: every amount is declared by it or
        governed by a limit associated with the queue (a queue with no fleet yet waits)."""
        fleets = self._fleets_of(job.queue_id, None)
        return not fleets or any(
            all(
                f.has(name, units) or self._governing(job.queue_id, name) is not None
                for name, units in step.amounts
            )
            for f in fleets
        )

    def reported_count(self, lim: Limit) -> int:
        """currentCount as the API reports it: the value of `count_delay` ago."""
        if not lim.reported:
            return 0
        return lim.reported[0][1]


def _steps(spec: JobSpec, duration: float) -> list[Step]:
    """The steps and tasks a template makes: a step waiting on others starts PENDING."""
    ids = {st.name: new_id("step") for st in spec.steps}
    return [
        Step(
            ids[st.name],
            st.name,
            [(name, math.ceil(low)) for name, low, _ in st.amounts],
            [
                Task("PENDING" if st.depends_on else "READY", duration=duration, parameters=p)
                for p in st.tasks
            ],
            chunk=st.chunk,
            depends_on=[ids[d] for d in st.depends_on],
            parameter_space=st.parameter_space,
            target_runtime=st.target_runtime,
            command=st.command,
        )
        for st in spec.steps
    ]


def _release_dependents(job: Job) -> None:
    """A step's PENDING tasks become READY once every step it depends on has succeeded
    (OpenJD's step dependencies; a requeued job's tasks wait again). Which steps have
    succeeded is worked out only for a job with dependencies: `tick` runs this for every
    job of the farm."""
    waiting = any(s.depends_on for s in job.steps)
    done = {s.step_id for s in job.steps if s.task_run_status == "SUCCEEDED"} if waiting else ()
    for step in job.steps:
        if all(d in done for d in step.depends_on):
            for t in step.tasks:
                if t.status == "PENDING":
                    t.set_status("READY")
