"""The Deadline Cloud adapter: the only class of the service that calls AWS. Reads limits
with their queue associations, jobs (search, then confirmed by BatchGetJob), their steps
and running sessions; writes maxCount, association status, jobs' maxWorkerCount and task
requeues. Every call goes through `_call`: bounded in time and size, counted by
operation and outcome, its answer checked against the service model."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import botocore.exceptions
import botocore.loaders
import botocore.session
import botocore.utils
from botocore.model import Shape

from sync.edges.answers import (
    CALL_DEADLINE,
    Budget,
    OutOfTime,
    TooLarge,
    deadline_for_call,
)
from sync.edges.deadline.client import (
    _outcome,
    _snake,
    _throwaway_session,
    _to_error,
    make_client,
    new_session,
)
from sync.edges.deadline.shapes import (
    _BUSY_WORKER,
    _HOLDING,
    GONE,
    PAGE,
    JobLookup,
    _host_of,
    _names_of,
    chunk_size,
    holding_from,
    job_from_api,
    missing_member,
    stamp,
)
from sync.values.domain import (
    ACTIVE_TASK_STATES,
    Association,
    FleetInfo,
    Holding,
    HostRun,
    JobInfo,
    LimitState,
    RunningTask,
    Stamp,
    StepAmounts,
    short_host,
)
from sync.values.errors import DeadlineError

CallCounter = Callable[[str, str], None]  # (operation, outcome)


T = TypeVar("T")


R = TypeVar("R")


# Only jobs that can still run: finished ones would page through the whole history.
_ACTIVE_FILTER = {
    "groupFilter": {
        "filters": [
            {"stringFilter": {"name": "TASK_RUN_STATUS", "operator": "NOT_EQUAL", "value": v}}
            for v in ("SUCCEEDED", "CANCELED", "FAILED")
        ],
        "operator": "AND",
    }
}


_OLDEST_FIRST = [{"fieldSort": {"name": "CREATED_AT", "sortOrder": "ASCENDING"}}]


class Deadline:
    """One farm's view through one botocore client. Every call goes through `_call`."""

    def __init__(
        self,
        client: Any,
        farm_id: str,
        on_call: CallCounter | None = None,
        on_throttle: Callable[[str], None] | None = None,
        threads: int = 8,
        call_deadline: float = CALL_DEADLINE,
    ):
        self.client = client
        self.farm_id = farm_id
        self.threads = threads
        self.call_deadline = call_deadline
        self.budget = Budget()  # the cycle's: the service shares one with every view
        self._amounts_seen: dict[tuple[tuple[str, float], ...], Mapping[str, float]] = {}
        # every call takes a slot: reads that fan out twice (groups of queues, then their
        # pages) still have at most `threads` calls in flight on the farm
        self._slots = threading.BoundedSemaphore(max(1, threads))
        self.on_call = on_call or (lambda op, outcome: None)
        self.on_throttle = on_throttle
        # every throttled attempt, also those botocore retries away; one handler a client
        # (the first view's): each view made of it would otherwise add one to every attempt
        client.meta.events.register(
            "needs-retry.deadline", self._seen_retry, unique_id="license-sync-throttles"
        )

    def _seen_retry(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        if response is None or self.on_throttle is None or len(response) < 2:
            return
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code in ("ThrottlingException", "TooManyRequestsException", "Throttling"):
            self.on_throttle(getattr(operation, "name", "unknown"))

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, _snake(operation))
        try:
            with self._slots, deadline_for_call(self.budget, self.call_deadline):
                result = method(**kwargs)
        except (OutOfTime, TooLarge) as e:
            slow = isinstance(e, OutOfTime)
            self.on_call(operation, "timeout" if slow else "too_large")
            over = isinstance(e, OutOfTime) and e.over_budget
            raise DeadlineError(
                f"{operation} on {self.farm_id}: {e}",
                code="CycleBudget" if over else ("Timeout" if slow else "AnswerTooLarge"),
            ) from e
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "Unknown")
            self.on_call(operation, _outcome(code))
            raise _to_error(e, operation, self.farm_id, kwargs) from e
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ) as e:
            self.on_call(operation, "denied")
            raise DeadlineError(
                f"{operation} on {self.farm_id}: no usable AWS credentials ({e}); give the "
                "container a role, or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                code="NoCredentials",
            ) from e
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            self.on_call(operation, "network")
            raise DeadlineError(
                f"{operation} on {self.farm_id}: {e}; check the network, the region and "
                "AWS_ENDPOINT_URL_DEADLINE",
                code="Network",
            ) from e
        missing = missing_member(self._output(operation), result, operation)
        if missing is not None:
            # botocore makes `{}` of a 200 whose body was empty or cut short: an answer
            # without what the model requires is no answer, never an empty list
            self.on_call(operation, "error")
            raise DeadlineError(
                f"{operation} on {self.farm_id}: the answer lacks {missing}, which the "
                "service model requires (cut short?); retried next cycle",
                code="IncompleteAnswer",
            )
        self.on_call(operation, "ok")
        return result  # type: ignore[no-any-return]

    def _output(self, operation: str) -> Shape | None:
        return self.client.meta.service_model.operation_model(operation).output_shape

    def _pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self._call(operation, **kwargs, **({"nextToken": token} if token else {}))
            yield from page[key]  # required: an answer without it raised in _call
            token = page.get("nextToken")
            if not token:
                return

    def _map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over `items`, up to `threads` calls in flight (docs/design.md, "Reading
        jobs"): botocore's adaptive retry paces them, and the first error is raised once
        the calls in flight have ended. Results in the order of `items`."""
        todo = list(items)
        if self.threads <= 1 or len(todo) <= 1:
            return [fn(item) for item in todo]
        workers = min(self.threads, len(todo))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"read-{self.farm_id[-6:]}") as pool:
            return list(pool.map(fn, todo))

    # -- reads ----------------------------------------------------------------------------

    def limits(self) -> list[LimitState]:
        """Every limit of the farm, with its queue associations."""
        assocs: dict[str, list[Association]] = {}
        for a in self._pages(
            "ListQueueLimitAssociations",
            "queueLimitAssociations",
            farmId=self.farm_id,
            maxResults=100,
        ):
            assocs.setdefault(a["limitId"], []).append(
                Association(a["queueId"], a["status"], stamp(a))
            )
        out = []
        for lim in self._pages("ListLimits", "limits", farmId=self.farm_id, maxResults=100):
            out.append(
                LimitState(
                    farm_id=self.farm_id,
                    limit_id=lim["limitId"],
                    display_name=lim.get("displayName", ""),
                    amount=lim.get("amountRequirementName", ""),
                    max_count=int(lim.get("maxCount", -1)),
                    current_count=int(lim.get("currentCount", 0)),
                    associations=tuple(
                        sorted(assocs.get(lim["limitId"], []), key=lambda a: a.queue_id)
                    ),
                )
            )
        return out

    def queues(self) -> dict[str, str]:
        """Every queue of the farm: queue id → display name (`init`)."""
        return {
            q["queueId"]: q.get("displayName", q["queueId"])
            for q in self._pages("ListQueues", "queues", farmId=self.farm_id, maxResults=100)
        }

    def fleets(self) -> list[FleetInfo]:
        """Every fleet of the farm with the amounts its workers declare (`customAmounts` of a
        customer-managed fleet's workerCapabilities, a service-managed one's
        instanceCapabilities)."""
        out = []
        for f in self._pages("ListFleets", "fleets", farmId=self.farm_id):
            config = f.get("configuration") or {}
            caps = (config.get("customerManaged") or {}).get("workerCapabilities") or (
                config.get("serviceManagedEc2") or {}
            ).get("instanceCapabilities")
            amounts = (caps or {}).get("customAmounts") or ()
            out.append(
                FleetInfo(f["fleetId"], f.get("displayName", ""), tuple(a["name"] for a in amounts))
            )
        return out

    def queue_fleets(self) -> list[tuple[str, str, str]]:
        """(queue, fleet, status) of every queue-fleet association of the farm: every
        queue whose jobs can run is in it."""
        return [
            (a["queueId"], a["fleetId"], a.get("status", ""))
            for a in self._pages(
                "ListQueueFleetAssociations", "queueFleetAssociations", farmId=self.farm_id
            )
        ]

    # SearchJobs' itemOffset stops at 10000 (the service model's maximum)
    max_item_offset = 10000

    def search_jobs(self, queue_ids: list[str]) -> list[JobInfo]:
        """Jobs that can still run in these queues (SearchJobs, ≤10 queues and 100 a page).

        Oldest first; where the offset would pass its maximum, the search starts again from
        the last creation time seen rather than fail (docs/design.md, "Reading jobs").
        Groups of queues, and the pages after each group's first, are read concurrently.
        """
        groups = [queue_ids[i : i + 10] for i in range(0, len(queue_ids), 10)]
        out: dict[str, JobInfo] = {}
        for found in self._map(self._search_group, groups):
            out.update((j.job_id, j) for j in found if j.job_id not in out)
        return list(out.values())

    def _search_group(self, queue_ids: list[str]) -> list[JobInfo]:
        out: dict[str, JobInfo] = {}
        since: Any = None
        while True:
            found, more = self._search_from(queue_ids, since)
            new = {j.job_id: j for j in found if j.job_id not in out}
            out.update(new)
            if not more or not new:
                return list(out.values())
            since = found[-1].created_at

    def _search_from(self, queue_ids: list[str], since: Any) -> tuple[list[JobInfo], bool]:
        """The pages up to the offset maximum — the first, then at once as many as its
        totalResults says, then one by one while a page says more follow (totalResults
        stops at 10,000: a hint, never the count) — and True if more lie past them."""
        filters: list[dict[str, Any]] = [_ACTIVE_FILTER]
        if since is not None:
            filters.append(
                {
                    "dateTimeFilter": {
                        "name": "CREATED_AT",
                        "operator": "GREATER_THAN_EQUAL_TO",
                        "dateTime": since,
                    }
                }
            )

        def page(offset: int) -> dict[str, Any]:
            return self._call(
                "SearchJobs",
                farmId=self.farm_id,
                queueIds=queue_ids,
                itemOffset=offset,
                pageSize=PAGE,
                filterExpressions={"filters": filters, "operator": "AND"},
                sortExpressions=_OLDEST_FIRST,
            )

        first = page(0)
        hint = int(first["totalResults"]) if "nextItemOffset" in first else 0
        pages = [first, *self._map(page, range(PAGE, min(hint, self.max_item_offset + 1), PAGE))]
        more = False
        while "nextItemOffset" in pages[-1]:
            offset = int(pages[-1]["nextItemOffset"])
            if offset > self.max_item_offset:
                more = True  # a full page at the offset maximum: narrow by creation time
                break
            pages.append(page(offset))
        return [job_from_api(j) for p in pages for j in p["jobs"]], more

    def step_amounts(self, jobs: list[tuple[str, str]]) -> dict[str, list[StepAmounts]]:
        """Each job's steps with their amount requirements: ListSteps, then BatchGetStep,
        both concurrently. A job with a step missing from the answers is left out: it is
        read again next cycle."""
        listed = self._map(self._list_steps, jobs)
        counts = {(job_id, sid): n for steps in listed for job_id, sid, n in steps}
        idents = [
            {"farmId": self.farm_id, "queueId": q, "jobId": job_id, "stepId": sid}
            for (q, _), steps in zip(jobs, listed, strict=True)
            for job_id, sid, _ in steps
        ]
        batches = [idents[i : i + PAGE] for i in range(0, len(idents), PAGE)]
        out: dict[str, list[StepAmounts]] = {job_id: [] for _, job_id in jobs}
        failed: set[str] = set()
        for page in self._map(lambda b: self._call("BatchGetStep", identifiers=b), batches):
            for st in page["steps"]:
                amounts = self._amounts(st)
                tasks = counts.get((st["jobId"], st["stepId"]), 0)
                out.setdefault(st["jobId"], []).append(
                    StepAmounts(st["stepId"], amounts, tasks, chunk=chunk_size(st))
                )
            failed.update(err["jobId"] for err in page["errors"])
        size = {job_id: len(steps) for (_, job_id), steps in zip(jobs, listed, strict=True)}
        return {
            job_id: steps
            for job_id, steps in out.items()
            if job_id not in failed and len(steps) == size.get(job_id, 0)
        }

    def _amounts(self, step: dict[str, Any]) -> Mapping[str, float]:
        """A step's amount requirements, one shared mapping for all steps that ask the same
        (a farm's 30,000 steps ask for a handful of different things)."""
        wanted = tuple(
            (a["name"], float(a.get("min", 1) or 1))
            for a in (step.get("requiredCapabilities") or {}).get("amounts", [])
        )
        return self._amounts_seen.setdefault(wanted, dict(wanted))  # read-only by its type

    def step_activity(self, jobs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
        """Each job's steps' active tasks (READY to RUNNING) as ListSteps counts them now,
        concurrently: one call a job of under 100 steps."""
        listed = self._map(self._step_summaries, jobs)
        return {
            job_id: {
                st["stepId"]: sum(
                    n
                    for s, n in (st.get("taskRunStatusCounts") or {}).items()
                    if s in ACTIVE_TASK_STATES
                )
                for st in steps
            }
            for (_, job_id), steps in zip(jobs, listed, strict=True)
        }

    def _step_summaries(self, job: tuple[str, str]) -> list[dict[str, Any]]:
        queue_id, job_id = job
        return list(
            self._pages(
                "ListSteps",
                "steps",
                farmId=self.farm_id,
                queueId=queue_id,
                jobId=job_id,
                maxResults=PAGE,
            )
        )

    def _list_steps(self, job: tuple[str, str]) -> list[tuple[str, str, int]]:
        """(job id, step id, tasks) of each of the job's steps."""
        return [
            (job[1], st["stepId"], sum((st.get("taskRunStatusCounts") or {}).values()))
            for st in self._step_summaries(job)
        ]

    def get_jobs(self, jobs: list[tuple[str, str]]) -> JobLookup:
        """The jobs as they are now (BatchGetJob reads the writes; ≤100 a call, concurrently).
        Every item is accounted for: found, gone (ResourceNotFound, the only answer that
        means so), or failed — any other code, or an id the answer does not mention."""
        batches = [jobs[i : i + PAGE] for i in range(0, len(jobs), PAGE)]

        def get(batch: list[tuple[str, str]]) -> dict[str, Any]:
            return self._call(
                "BatchGetJob",
                identifiers=[{"farmId": self.farm_id, "queueId": q, "jobId": j} for q, j in batch],
            )

        found: dict[str, JobInfo] = {}
        gone: set[str] = set()
        failed: dict[str, str] = {}
        for page in self._map(get, batches):
            found.update((j["jobId"], job_from_api(j)) for j in page["jobs"])
            for err in page["errors"]:
                if err["code"] == GONE:
                    gone.add(err["jobId"])
                else:
                    failed[err["jobId"]] = f"{err['code']}: {err.get('message', '')}"
        for _, job_id in jobs:
            if job_id not in found and job_id not in gone and job_id not in failed:
                failed[job_id] = "not in the answer, neither found nor an error"
        return JobLookup(found, frozenset(gone), failed)

    def update_jobs(
        self, items: list[tuple[str, str, int]]
    ) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """Set maxWorkerCount with BatchUpdateJob (≤100 a call). Returns each item's error,
        and what failed whole: a chunk whose call failed marks its items `NotSent` (they may
        have landed: the value pending in their record says so), the other chunks' answers
        stand item by item."""
        for _, job_id, value in items:
            if value == 0 or value < -1:
                raise DeadlineError(f"refusing to write maxWorkerCount {value} to {job_id}")
        errors: dict[str, tuple[str, str]] = {}
        failures: list[str] = []
        for i in range(0, len(items), PAGE):
            chunk = items[i : i + PAGE]
            try:
                page = self._call(
                    "BatchUpdateJob",
                    jobs=[
                        {"farmId": self.farm_id, "queueId": q, "jobId": j, "maxWorkerCount": v}
                        for q, j, v in chunk
                    ],
                )
            except DeadlineError as e:
                failures.append(str(e))
                errors.update((j, ("NotSent", str(e))) for _, j, _ in chunk)
                continue
            for err in page["errors"]:
                errors[err["jobId"]] = (err["code"], err.get("message", ""))
        return errors, failures

    def holding(self, jobs: list[tuple[str, str]], limit_id: str) -> Holding:
        """Who holds `limit_id` now among `jobs` (docs/design.md, "Preemption")."""
        out = Holding()
        for page in self._running_actions(self._open_sessions(jobs)):
            out = holding_from(page["sessionActions"], limit_id, out)
            failed = tuple(f"{e['sessionActionId']}: {e['code']}" for e in page["errors"])
            out = replace(out, errors=out.errors + failed)
        return out

    def held_by_limit(self, jobs: list[tuple[str, str]]) -> dict[str, int]:
        """Units of each limit that the running (or canceled, not yet exited) task-run
        actions of `jobs` hold now: what the farm holds, where currentCount lags. An action
        that cannot be read is a DeadlineError: a count missing one would be too low."""
        return self._held(self._open_sessions(jobs))

    def held_in_queues(self, queues: set[str]) -> dict[str, int] | None:
        """As `held_by_limit`, for every job of `queues`, found through the busy workers
        of their fleets (no job list needed); None when the fleets cannot be read."""
        busy = self._busy_workers(queues)
        return None if busy is None else self._held(self._on_workers(busy, queues))

    def worker_hosts(self) -> frozenset[str]:
        """The hosts of every worker of every fleet of the farm, as a license server may
        name them: what a farm_selector with `workers: true` counts as the farm's."""
        return frozenset(
            name
            for fleet in self._pages("ListFleets", "fleets", farmId=self.farm_id)
            for w in self._pages(
                "ListWorkers", "workers", farmId=self.farm_id, fleetId=fleet["fleetId"]
            )
            for name in _names_of(w)
        )

    def runs_on_hosts(self, hosts: Iterable[str]) -> list[HostRun]:
        """The task runs under way on the farm's workers whose host name (short, any case)
        or IPv4 address is one of `hosts`, with what each acquired: who holds a license
        around its limit (docs/design.md, "Use around the limit"). Every fleet's workers
        are read, since a job that forgets its amount may run in any queue."""
        wanted = {short_host(h) for h in hosts}
        found = [
            (fleet["fleetId"], w["workerId"], host)
            for fleet in self._pages("ListFleets", "fleets", farmId=self.farm_id)
            for w in self._pages(
                "ListWorkers", "workers", farmId=self.farm_id, fleetId=fleet["fleetId"]
            )
            if w.get("status") in _BUSY_WORKER and (host := _host_of(w, wanted))
        ]
        on = self._map(lambda w: self._on_workers([w[:2]], None), found)
        where = {
            s[2]: (host, wid) for (_, wid, host), ss in zip(found, on, strict=True) for s in ss
        }
        runs = []
        for page in self._running_actions([s for ss in on for s in ss]):
            for a in page["sessionActions"]:
                if a["status"] in _HOLDING and (run := a["definition"].get("taskRun")):
                    host, wid = where[a["sessionId"]]
                    acquired = {x["limitId"]: x["count"] for x in a.get("acquiredLimits", ())}
                    runs.append(
                        HostRun(host, wid, a["queueId"], a["jobId"], run["stepId"], acquired)
                    )
        return runs

    def names(self, steps: Iterable[tuple[str, str, str]]) -> dict[str, str]:
        """The names of the jobs and steps of (queue, job, step), by id (BatchGetJob,
        BatchGetStep); an id not found is left out."""
        steps = sorted(set(steps))
        found = self.get_jobs(sorted({(q, j) for q, j, _ in steps})).found
        out = {job_id: info.name for job_id, info in found.items()}
        idents = [
            {"farmId": self.farm_id, "queueId": q, "jobId": j, "stepId": st} for q, j, st in steps
        ]
        for i in range(0, len(idents), PAGE):
            page = self._call("BatchGetStep", identifiers=idents[i : i + PAGE])
            out.update((st["stepId"], st["name"]) for st in page["steps"])
        return out

    def _held(self, sessions: list[tuple[str, str, str]]) -> dict[str, int]:
        held: dict[str, int] = {}
        for page in self._running_actions(sessions):
            if page["errors"]:
                e = page["errors"][0]
                raise DeadlineError(f"session action {e['sessionActionId']}: {e['code']}")
            for item in page["sessionActions"]:
                if item["status"] in _HOLDING:
                    for x in item.get("acquiredLimits", ()):
                        held[x["limitId"]] = held.get(x["limitId"], 0) + x["count"]
        return held

    def _running_actions(self, sessions: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """BatchGetSessionAction's pages for the task-run actions of `sessions` that hold
        what they acquired (acquiredLimits is not in the summaries). Every call
        concurrently, in read slots."""
        wanted = [a for found in self._map(self._holding_actions, sessions) for a in found]
        batches = [wanted[i : i + PAGE] for i in range(0, len(wanted), PAGE)]

        def get(batch: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
            page = self._call("BatchGetSessionAction", identifiers=self._action_ids(batch))
            failed = {e["sessionActionId"] for e in page["errors"] if e["code"] != GONE}
            if not failed:
                return page
            # an item that failed inside a 200 is asked for once more, alone with the others
            # that did: one flaky item would otherwise cost the whole read
            again = self._call(
                "BatchGetSessionAction",
                identifiers=self._action_ids(
                    [x for x in batch if x[2]["sessionActionId"] in failed]
                ),
            )
            return {
                "sessionActions": page["sessionActions"] + again["sessionActions"],
                "errors": [e for e in page["errors"] if e["code"] == GONE] + again["errors"],
            }

        return self._map(get, batches)

    def _action_ids(self, batch: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, str]]:
        return [
            {
                "farmId": self.farm_id,
                "queueId": q,
                "jobId": j,
                "sessionActionId": a["sessionActionId"],
            }
            for q, j, a in batch
        ]

    def _open_sessions(self, jobs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """(queue, job, session) of the sessions of `jobs` that have not ended: read worker
        by worker where the busy workers of the queues' fleets are fewer than the jobs (a
        farm of 10,000 jobs runs on a few hundred workers), else job by job (docs/design.md,
        "Without a farm_selector")."""
        queues = {q for q, _ in jobs}
        busy = self._busy_workers(queues)
        if busy is not None and len(busy) < len(jobs):
            ids = {j for _, j in jobs}
            return [s for s in self._on_workers(busy, queues) if s[1] in ids]

        def of_job(job: tuple[str, str]) -> list[tuple[str, str, str]]:
            ident = {"farmId": self.farm_id, "queueId": job[0], "jobId": job[1]}
            return [
                (job[0], job[1], s["sessionId"])
                for s in self._pages("ListSessions", "sessions", **ident)
                if s.get("lifecycleStatus") != "ENDED"
            ]

        return [s for sessions in self._map(of_job, jobs) for s in sessions]

    def _busy_workers(self, queues: set[str]) -> list[tuple[str, str]] | None:
        """(fleet, worker) of the workers that may be running a session of `queues`, or
        None when they cannot be listed (a role without the fleet reads: the job-by-job
        read stands in)."""
        try:
            fleets = {
                a["fleetId"]
                for a in self._pages(
                    "ListQueueFleetAssociations", "queueFleetAssociations", farmId=self.farm_id
                )
                if a["queueId"] in queues
            }
            return [
                (fleet, w["workerId"])
                for fleet in sorted(fleets)
                for w in self._pages("ListWorkers", "workers", farmId=self.farm_id, fleetId=fleet)
                if w.get("status") in _BUSY_WORKER
            ]
        except DeadlineError:
            return None

    def _on_workers(
        self, workers: list[tuple[str, str]], queues: set[str] | None
    ) -> list[tuple[str, str, str]]:
        """(queue, job, session) of the sessions of `queues` (None: of any queue) that
        have not ended on `workers`, a ListSessionsForWorker each, concurrently."""

        def of(worker: tuple[str, str]) -> list[tuple[str, str, str]]:
            ident = {"farmId": self.farm_id, "fleetId": worker[0], "workerId": worker[1]}
            return [
                (s["queueId"], s["jobId"], s["sessionId"])
                for s in self._pages("ListSessionsForWorker", "sessions", **ident)
                if s.get("lifecycleStatus") != "ENDED"
                and (queues is None or s["queueId"] in queues)
            ]

        return [s for sessions in self._map(of, workers) for s in sessions]

    def _holding_actions(
        self, session: tuple[str, str, str]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        q, j, sid = session
        ident = {"farmId": self.farm_id, "queueId": q, "jobId": j}
        return [
            (q, j, a)
            for a in self._pages("ListSessionActions", "sessionActions", **ident, sessionId=sid)
            if a.get("status") in _HOLDING and "taskRun" in a.get("definition", {})
        ]

    # -- writes ---------------------------------------------------------------------------

    def requeue_task(self, task: RunningTask) -> None:
        """UpdateTask to READY: its run is interrupted, its licenses come back."""
        self._call(
            "UpdateTask",
            farmId=self.farm_id,
            queueId=task.queue_id,
            jobId=task.job_id,
            stepId=task.step_id,
            taskId=task.task_id,
            targetRunStatus="READY",
        )

    def update_limit(self, limit_id: str, max_count: int) -> None:
        if max_count == 0 or max_count < -1:
            raise DeadlineError(
                f"refusing to write maxCount {max_count} to {limit_id}: "
                "Deadline rejects 0 and values below -1"
            )
        self._call("UpdateLimit", farmId=self.farm_id, limitId=limit_id, maxCount=max_count)

    def update_association(self, queue_id: str, limit_id: str, status: str) -> None:
        self._call(
            "UpdateQueueLimitAssociation",
            farmId=self.farm_id,
            queueId=queue_id,
            limitId=limit_id,
            status=status,
        )

    def create_limit(self, amount: str, display_name: str, max_count: int, token: str) -> str:
        """CreateLimit; `token` (clientToken) makes a retry, or a second `init`, create
        nothing more. Returns the limit id."""
        got = self._call(
            "CreateLimit",
            farmId=self.farm_id,
            amountRequirementName=amount,
            displayName=display_name,
            maxCount=max_count,
            clientToken=token,
            description="created by license-sync init; its maxCount is set every cycle",
        )
        return str(got["limitId"])

    def associate(self, queue_id: str, limit_id: str) -> bool:
        """CreateQueueLimitAssociation; False when the queue already has it (it takes no
        clientToken: an association that exists is the idempotent answer)."""
        try:
            self._call(
                "CreateQueueLimitAssociation",
                farmId=self.farm_id,
                queueId=queue_id,
                limitId=limit_id,
            )
        except DeadlineError as e:
            if e.code == "ConflictException":
                return False
            raise
        return True

    def association_stamp(self, queue_id: str, limit_id: str) -> Stamp | None:
        """Who wrote the association last, and when (GetQueueLimitAssociation reads its
        own writes, as List* need not)."""
        got = self._call(
            "GetQueueLimitAssociation", farmId=self.farm_id, queueId=queue_id, limitId=limit_id
        )
        return stamp(got)


def factory_for(
    metrics: Any, endpoint_url: str | None = None, session: Any = None
) -> Callable[[Any], Deadline]:
    """Build each farm's client from the policy's farm entry, counting into `metrics`.
    `endpoint_url` and `session` (a botocore session) point every client elsewhere (the
    demo's fake endpoint, with its throwaway credentials)."""

    # one session for every farm: each session loads the service model anew (~10 MiB)
    session = session or new_session()
    fake = _throwaway_session()  # for the demo's fake farms: never a real credential

    def factory(farm: Any) -> Deadline:
        threads = farm.read_threads
        url = getattr(farm, "fake_endpoint", None)
        return Deadline(
            make_client(
                farm.region,
                endpoint_url=url or endpoint_url,
                session=fake if url else session,
                pool_size=threads + 2,
            ),
            farm.id,
            on_call=metrics.count_call,
            on_throttle=metrics.count_throttle,
            threads=threads,
        )

    return factory
