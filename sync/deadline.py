"""The Deadline Cloud adapter: the only module that imports boto3.

Reads limits and queue associations, writes maxCount and association status, counts every
call by operation and outcome, and turns AWS errors into `DeadlineError`s that say what
to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import botocore.utils
from botocore.config import Config

from sync.domain import Association, JobInfo, LimitState, RunningTask, StepAmounts
from sync.errors import DeadlineError

CallCounter = Callable[[str, str], None]  # (operation, outcome)
T = TypeVar("T")
R = TypeVar("R")
PAGE = 100  # items a page or a batch call, the API's maximum

_HINTS = {
    "AccessDeniedException": "grant the IAM action deadline:{action} (config/iam-policy.json)",
    "ResourceNotFoundException": "check the id in the policy; it may have been deleted",
    "ValidationException": "the request was rejected as invalid",
    "ThrottlingException": "Deadline throttled the call after retries; a longer interval helps",
    "ServiceQuotaExceededException": "a Deadline quota is reached",
    "InternalServerErrorException": "a Deadline service error; it is retried next cycle",
}


def make_client(
    region: str | None,
    endpoint_url: str | None = None,
    session: boto3.session.Session | None = None,
    attempts: int = 6,
    read_timeout: float = 20.0,
    retry_mode: str = "adaptive",
    pool_size: int = 10,
) -> Any:
    """A boto3 `deadline` client with adaptive retries and the standard credential chain.

    The endpoint is boto3's to resolve (`AWS_ENDPOINT_URL_DEADLINE`, `AWS_ENDPOINT_URL`, a
    `[services]` section of the AWS config) unless one is given. A custom endpoint (the fake,
    a proxy) has no "management." host, so host prefixes are off there — unless the user
    said otherwise (`AWS_DISABLE_HOST_PREFIX_INJECTION`, `disable_host_prefix_injection`).
    """
    session = session or boto3.session.Session()
    # ISO 8601 timestamps through the standard library: dateutil's general parser was
    # a tenth of a steady cycle's CPU at 10,000 jobs
    parsers = session._session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=parse_timestamp)
    if not (region or session.region_name):
        raise DeadlineError(
            "no AWS region: set the farm's `region:` in the policy, or AWS_REGION in the "
            "environment",
            code="NoRegion",
        )

    def client(**config: Any) -> Any:
        cfg = Config(
            retries={"mode": retry_mode, "total_max_attempts": attempts},
            connect_timeout=5,
            read_timeout=read_timeout,
            max_pool_connections=pool_size,
            user_agent_extra="license-sync",
            **config,
        )
        try:
            return session.client(
                "deadline", region_name=region, endpoint_url=endpoint_url, config=cfg
            )
        except botocore.exceptions.BotoCoreError as e:
            raise DeadlineError(f"cannot make a Deadline client: {e}", code="Client") from e

    made = client()
    user_choice = session._session.get_config_variable("disable_host_prefix_injection")
    if user_choice is None and not _aws_host(made.meta.endpoint_url):
        made = client(inject_host_prefix=False)
    return made


def parse_timestamp(value: Any) -> datetime:
    """A timestamp of a response as botocore's own parser reads it: ISO 8601 (what
    Deadline sends, `Z` and all) through the standard library, epoch seconds as UTC, and
    anything else through botocore's parser."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return botocore.utils.parse_timestamp(value)  # type: ignore[no-any-return]


def _aws_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def job_from_api(j: dict[str, Any]) -> JobInfo:
    """From a SearchJobs summary or a BatchGetJob item (the same fields)."""
    return JobInfo(
        queue_id=j["queueId"],
        job_id=j["jobId"],
        name=j.get("name", ""),
        priority=int(j.get("priority", 50)),
        task_run_status=j.get("taskRunStatus", ""),
        lifecycle_status=j.get("lifecycleStatus", ""),
        counts=dict(j.get("taskRunStatusCounts") or {}),
        max_worker_count=int(j.get("maxWorkerCount", -1)),
        created_at=j.get("createdAt"),
        created_by=j.get("createdBy", ""),
    )


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
    """One farm's view through one boto3 client. Every call goes through `_call`."""

    def __init__(
        self,
        client: Any,
        farm_id: str,
        on_call: CallCounter | None = None,
        on_throttle: Callable[[str], None] | None = None,
        threads: int = 8,
    ):
        self.client = client
        self.farm_id = farm_id
        self.threads = threads
        self._amounts_seen: dict[tuple[tuple[str, float], ...], Mapping[str, float]] = {}
        # every call takes a slot: reads that fan out twice (groups of queues, then their
        # pages) still have at most `threads` calls in flight on the farm
        self._slots = threading.BoundedSemaphore(max(1, threads))
        self.on_call = on_call or (lambda op, outcome: None)
        self.on_throttle = on_throttle
        # every throttled attempt, also those botocore retries away
        client.meta.events.register("needs-retry.deadline", self._seen_retry)

    def _seen_retry(self, response: Any = None, operation: Any = None, **_: Any) -> None:
        if response is None or self.on_throttle is None or len(response) < 2:
            return
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code in ("ThrottlingException", "TooManyRequestsException", "Throttling"):
            self.on_throttle(getattr(operation, "name", "unknown"))

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self.client, _snake(operation))
        try:
            with self._slots:
                result = method(**kwargs)
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
        self.on_call(operation, "ok")
        return result  # type: ignore[no-any-return]

    def _pages(self, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self._call(operation, **kwargs, **({"nextToken": token} if token else {}))
            yield from page.get(key, [])
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
            assocs.setdefault(a["limitId"], []).append(Association(a["queueId"], a["status"]))
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
        """The pages up to the offset maximum (the first, then the rest at once, as its
        totalResults says); True if more jobs lie past them."""
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
        total = int(first.get("totalResults", 0))
        more = "nextItemOffset" in first
        offsets = range(PAGE, min(total, self.max_item_offset + 1) if more else 0, PAGE)
        pages = [first, *self._map(page, offsets)]
        found = [job_from_api(j) for p in pages for j in p.get("jobs", [])]
        return found, total > (offsets[-1] if offsets else 0) + PAGE

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
            for st in page.get("steps", []):
                amounts = self._amounts(st)
                out.setdefault(st["jobId"], []).append(
                    StepAmounts(st["stepId"], amounts, counts.get((st["jobId"], st["stepId"]), 0))
                )
            failed.update(err.get("jobId", "") for err in page.get("errors", []))
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

    def _list_steps(self, job: tuple[str, str]) -> list[tuple[str, str, int]]:
        """(job id, step id, tasks) of each of the job's steps."""
        queue_id, job_id = job
        return [
            (job_id, st["stepId"], sum((st.get("taskRunStatusCounts") or {}).values()))
            for st in self._pages(
                "ListSteps",
                "steps",
                farmId=self.farm_id,
                queueId=queue_id,
                jobId=job_id,
                maxResults=PAGE,
            )
        ]

    def get_jobs(self, jobs: list[tuple[str, str]]) -> dict[str, JobInfo]:
        """The jobs that still exist, by id (BatchGetJob, ≤100 a call, concurrently)."""
        batches = [jobs[i : i + PAGE] for i in range(0, len(jobs), PAGE)]

        def get(batch: list[tuple[str, str]]) -> dict[str, Any]:
            return self._call(
                "BatchGetJob",
                identifiers=[{"farmId": self.farm_id, "queueId": q, "jobId": j} for q, j in batch],
            )

        return {
            j["jobId"]: job_from_api(j)
            for page in self._map(get, batches)
            for j in page.get("jobs", [])
        }

    def update_jobs(self, items: list[tuple[str, str, int]]) -> dict[str, tuple[str, str]]:
        """Set maxWorkerCount with BatchUpdateJob (≤100 a call); per-job errors returned."""
        errors: dict[str, tuple[str, str]] = {}
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            for _, job_id, value in chunk:
                if value == 0 or value < -1:
                    raise DeadlineError(f"refusing to write maxWorkerCount {value} to {job_id}")
            page = self._call(
                "BatchUpdateJob",
                jobs=[
                    {"farmId": self.farm_id, "queueId": q, "jobId": j, "maxWorkerCount": v}
                    for q, j, v in chunk
                ],
            )
            for err in page.get("errors", []):
                errors[err["jobId"]] = (err.get("code", ""), err.get("message", ""))
        return errors

    def running_tasks(self, jobs: list[tuple[str, str]], limit_id: str) -> list[RunningTask]:
        """The tasks of `jobs` running now that hold `limit_id`: each job's sessions that
        have not ended, their running task-run actions, and what those acquired
        (BatchGetSessionAction, ≤100 a call: acquiredLimits is not in the summaries)."""
        wanted: list[tuple[str, str, dict[str, Any]]] = []
        for queue_id, job_id in jobs:
            ident = {"farmId": self.farm_id, "queueId": queue_id, "jobId": job_id}
            for s in self._pages("ListSessions", "sessions", **ident):
                if s.get("lifecycleStatus") == "ENDED":
                    continue
                for a in self._pages(
                    "ListSessionActions", "sessionActions", **ident, sessionId=s["sessionId"]
                ):
                    if a.get("status") == "RUNNING" and "taskRun" in a.get("definition", {}):
                        wanted.append((queue_id, job_id, a))
        out = []
        for i in range(0, len(wanted), 100):
            page = self._call(
                "BatchGetSessionAction",
                identifiers=[
                    {"farmId": self.farm_id, "queueId": q, "jobId": j,
                     "sessionActionId": a["sessionActionId"]}
                    for q, j, a in wanted[i : i + 100]
                ],
            )  # fmt: skip
            for item in page.get("sessionActions", []):
                held = sum(
                    x["count"] for x in item.get("acquiredLimits", []) if x["limitId"] == limit_id
                )
                run = item["definition"]["taskRun"]
                if held and item.get("status") == "RUNNING" and "startedAt" in item:
                    out.append(
                        RunningTask(
                            item["queueId"], item["jobId"], run["stepId"], run["taskId"],
                            item["startedAt"], held,
                        )
                    )  # fmt: skip
        return out

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


def factory_for(
    metrics: Any, endpoint_url: str | None = None, session: Any = None
) -> Callable[[Any], Deadline]:
    """Build each farm's client from the policy's farm entry, counting into `metrics`.
    `endpoint_url` and `session` point every client elsewhere (the demo's fake endpoint)."""

    # one session for every farm: each session loads the service model anew (~10 MiB)
    session = session or boto3.session.Session()

    def factory(farm: Any) -> Deadline:
        threads = farm.read_threads
        return Deadline(
            make_client(
                farm.region, endpoint_url=endpoint_url, session=session, pool_size=threads + 2
            ),
            farm.id,
            on_call=metrics.count_call,
            on_throttle=metrics.count_throttle,
            threads=threads,
        )

    return factory


def resolve_limit(ref: str, limits: list[LimitState]) -> LimitState | str:
    """Find `ref` by limitId, then amountRequirementName, then displayName."""
    for attr in ("limit_id", "amount", "display_name"):
        found = [lim for lim in limits if getattr(lim, attr) == ref]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return (
                f"limit {ref!r} matches {len(found)} limits by {attr}; "
                "use the limitId in the policy"
            )
    names = ", ".join(sorted(lim.amount for lim in limits)) or "none"
    return f"limit {ref!r} not found in the farm (its limits: {names})"


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _outcome(code: str) -> str:
    if code in ("ThrottlingException", "TooManyRequestsException", "Throttling"):
        return "throttled"
    if code in ("AccessDeniedException",):
        return "denied"
    if code in ("ResourceNotFoundException",):
        return "not_found"
    if code in ("ValidationException",):
        return "invalid"
    return "error"


def _to_error(
    e: botocore.exceptions.ClientError, operation: str, farm_id: str, kwargs: dict[str, Any]
) -> DeadlineError:
    err = e.response.get("Error", {})
    code = err.get("Code", "Unknown")
    message = err.get("Message", str(e))
    what = farm_id
    if "limitId" in kwargs:
        what += f" limit {kwargs['limitId']}"
    if "queueId" in kwargs:
        what += f" queue {kwargs['queueId']}"
    hint = _HINTS.get(code, "").format(action=operation.removeprefix("Batch"))
    return DeadlineError(
        f"{operation} on {what} failed: {code}: {message}" + (f" — {hint}" if hint else ""),
        code=code,
    )
