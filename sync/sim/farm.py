"""A simulated Deadline farm: limits, queues, associations, jobs, steps and tasks.

Time is injected (`tick(now)`), so tests step it by hand and the demo runs it on a clock.
currentCount is reported with a delay, as Deadline does.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ACTIVE_TASK = ("READY", "ASSIGNED", "SCHEDULED", "STARTING", "RUNNING")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class SimError(Exception):
    """An API error the endpoint returns as AWS would."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class Task:
    status: str = "READY"
    started: datetime | None = None
    duration: float = 60.0
    holds_license: bool = False


@dataclass
class Step:
    step_id: str
    name: str
    amounts: list[tuple[str, int]]  # (amount.x, min units per task)
    tasks: list[Task]


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

    @property
    def task_run_status(self) -> str:
        statuses = [t.status for s in self.steps for t in s.tasks]
        for st in ("RUNNING", "STARTING", "SCHEDULED", "ASSIGNED", "READY"):
            if st in statuses:
                return st
        if statuses and all(s == "SUCCEEDED" for s in statuses):
            return "SUCCEEDED"
        return statuses[-1] if statuses else "SUCCEEDED"

    @property
    def finished(self) -> bool:
        return self.task_run_status in ("SUCCEEDED", "FAILED", "CANCELED")


@dataclass
class Limit:
    limit_id: str
    display_name: str
    amount: str
    max_count: int
    created_at: datetime
    description: str = ""
    reported: deque[tuple[datetime, int]] = field(default_factory=deque)


class SimFarm:
    """All state behind the simulated endpoint. Thread-safe; every mutation under `lock`."""

    def __init__(
        self,
        farm_id: str | None = None,
        *,
        now: datetime | None = None,
        count_delay: float = 10.0,
        seed: int = 1,
        workers: int = 1000,
    ):
        self.farm_id = farm_id or new_id("farm")
        self.lock = threading.RLock()
        self.now = now or datetime.now(UTC)
        self.count_delay = timedelta(seconds=count_delay)
        self.rng = random.Random(seed)
        self.limits: dict[str, Limit] = {}
        self.queues: list[str] = []
        self.associations: dict[tuple[str, str], str] = {}
        self.jobs: dict[str, Job] = {}
        self.workers = workers
        self.denials = 0  # tasks that started and found no license
        self.license_check: Any = None  # (amount) -> bool: can a task check out now?
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self._last_created = datetime.min.replace(tzinfo=UTC)

    # -- building ---------------------------------------------------------------------------

    def add_queue(self, queue_id: str | None = None) -> str:
        with self.lock:
            q = queue_id or new_id("queue")
            self.queues.append(q)
            return q

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
    ) -> str:
        with self.lock:
            jid = new_id("job")
            # distinct creation times, in the order jobs were added, as Deadline's are
            created = max(self.now, self._last_created + timedelta(milliseconds=1))
            self._last_created = created
            self.jobs[jid] = Job(
                jid,
                queue_id,
                name,
                priority,
                created,
                created_by,
                [
                    Step(
                        new_id("step"),
                        f"step{i}",
                        [(amount, units)] if amount else [],
                        [Task(duration=duration) for _ in range(tasks)],
                    )
                    for i in range(steps)
                ],
                max_worker_count=max_worker_count,
            )
            return jid

    # -- running ----------------------------------------------------------------------------

    def in_use(self, limit_id: str) -> int:
        """Units held right now by tasks under this limit (the true currentCount)."""
        lim = self.limits[limit_id]
        return sum(
            units
            for job in self.jobs.values()
            for step in job.steps
            for name, units in step.amounts
            if name == lim.amount
            for t in step.tasks
            if t.status in ("STARTING", "RUNNING")
        )

    def holders(self, amount: str) -> list[tuple[Job, Task]]:
        return [
            (job, t)
            for job in self.jobs.values()
            for step in job.steps
            for name, _ in step.amounts
            if name == amount
            for t in step.tasks
            if t.status == "RUNNING" and t.holds_license
        ]

    def tick(self, now: datetime) -> None:
        """Advance to `now`: finish tasks that are done, start what the limits allow."""
        with self.lock:
            self.now = now
            running = 0
            for job in self.jobs.values():
                for step in job.steps:
                    for t in step.tasks:
                        if (
                            t.status == "RUNNING"
                            and t.started is not None
                            and (now - t.started).total_seconds() >= t.duration
                        ):
                            t.status, t.holds_license = "SUCCEEDED", False
                        elif t.status == "RUNNING":
                            running += 1
            for job in sorted(self.jobs.values(), key=lambda j: (-j.priority, j.created_at)):
                if job.lifecycle_status == "ARCHIVED":
                    continue
                job_running = sum(1 for s in job.steps for t in s.tasks if t.status == "RUNNING")
                for step in job.steps:
                    for t in step.tasks:
                        if t.status != "READY" or running >= self.workers:
                            continue
                        if job.max_worker_count != -1 and job_running >= job.max_worker_count:
                            break
                        if not self._may_start(job, step):
                            break
                        t.status, t.started = "RUNNING", now
                        running += 1
                        job_running += 1
                        ok = all(
                            self.license_check(name) if self.license_check else True
                            for name, _ in step.amounts
                        )
                        if ok:
                            t.holds_license = True
                        else:  # started, found no license: the frame fails and is retried
                            self.denials += 1
                            t.status, t.started = "READY", None
                            job_running -= 1
                            running -= 1
            for lim in self.limits.values():
                lim.reported.append((now, self.in_use(lim.limit_id)))
                while len(lim.reported) > 1 and lim.reported[1][0] <= now - self.count_delay:
                    lim.reported.popleft()

    def _may_start(self, job: Job, step: Step) -> bool:
        for name, units in step.amounts:
            lims = [lim for lim in self.limits.values() if lim.amount == name]
            if not lims:
                return True  # an amount no limit governs is unconstrained
            for lim in lims:
                status = self.associations.get((job.queue_id, lim.limit_id))
                if status != "ACTIVE":
                    return False  # NOT_COMPATIBLE or stopped
                if lim.max_count != -1 and self.in_use(lim.limit_id) + units > lim.max_count:
                    return False
        return True

    def reported_count(self, lim: Limit) -> int:
        """currentCount as the API reports it: the value of `count_delay` ago."""
        if not lim.reported:
            return 0
        return lim.reported[0][1]

    # -- the API ----------------------------------------------------------------------------

    def _farm(self, farm_id: str) -> None:
        if farm_id != self.farm_id:
            raise SimError("ResourceNotFoundException", f"Farm {farm_id} not found", 404)

    def _limit(self, farm_id: str, limit_id: str) -> Limit:
        self._farm(farm_id)
        lim = self.limits.get(limit_id)
        if lim is None:
            raise SimError("ResourceNotFoundException", f"Limit {limit_id} not found", 404)
        return lim

    def _limit_dict(self, lim: Limit) -> dict[str, Any]:
        return {
            "farmId": self.farm_id,
            "limitId": lim.limit_id,
            "displayName": lim.display_name,
            "amountRequirementName": lim.amount,
            "maxCount": lim.max_count,
            "currentCount": self.reported_count(lim),
            "createdAt": lim.created_at,
            "createdBy": "sim",
            "description": lim.description,
        }

    def op_ListLimits(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._farm(p["farmId"])
            items = [self._limit_dict(lim) for lim in self.limits.values()]
            for d in items:
                d.pop("description")
            return _page(items, p, "limits")

    def op_GetLimit(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._limit_dict(self._limit(p["farmId"], p["limitId"]))

    def op_UpdateLimit(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            lim = self._limit(p["farmId"], p["limitId"])
            if "maxCount" in p:
                if p["maxCount"] == 0 or p["maxCount"] < -1:
                    raise SimError(
                        "ValidationException",
                        f"maxCount {p['maxCount']} is not valid: use -1 or 1 and above",
                    )
                lim.max_count = p["maxCount"]
            if "displayName" in p:
                lim.display_name = p["displayName"]
            self.writes.append(("UpdateLimit", dict(p)))
            return {}

    def op_ListQueueLimitAssociations(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._farm(p["farmId"])
            items = [
                {
                    "queueId": q,
                    "limitId": lid,
                    "status": st,
                    "createdAt": self.now,
                    "createdBy": "sim",
                }
                for (q, lid), st in sorted(self.associations.items())
                if p.get("queueId") in (None, q) and p.get("limitId") in (None, lid)
            ]
            return _page(items, p, "queueLimitAssociations")

    def op_GetQueueLimitAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._farm(p["farmId"])
            st = self.associations.get((p["queueId"], p["limitId"]))
            if st is None:
                raise SimError("ResourceNotFoundException", "association not found", 404)
            return {
                "queueId": p["queueId"],
                "limitId": p["limitId"],
                "status": st,
                "createdAt": self.now,
                "createdBy": "sim",
            }

    def op_UpdateQueueLimitAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._farm(p["farmId"])
            key = (p["queueId"], p["limitId"])
            if key not in self.associations:
                raise SimError("ResourceNotFoundException", "association not found", 404)
            self.associations[key] = p["status"]
            self.writes.append(("UpdateQueueLimitAssociation", dict(p)))
            return {}

    # jobs and steps ------------------------------------------------------------------------

    def _job(self, farm_id: str, queue_id: str, job_id: str) -> Job:
        self._farm(farm_id)
        job = self.jobs.get(job_id)
        if job is None or job.queue_id != queue_id:
            raise SimError("ResourceNotFoundException", f"Job {job_id} not found", 404)
        return job

    def _job_dict(self, job: Job, full: bool = False) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for s in job.steps:
            for t in s.tasks:
                counts[t.status] = counts.get(t.status, 0) + 1
        d: dict[str, Any] = {
            "jobId": job.job_id,
            "queueId": job.queue_id,
            "name": job.name,
            "priority": job.priority,
            "lifecycleStatus": job.lifecycle_status,
            "taskRunStatus": job.task_run_status,
            "taskRunStatusCounts": counts,
            "createdAt": job.created_at,
            "createdBy": job.created_by,
            "maxWorkerCount": job.max_worker_count,
        }
        if full:
            d["lifecycleStatusMessage"] = ""
            d["farmId"] = self.farm_id
        return d

    def op_SearchJobs(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._farm(p["farmId"])
            queues = set(p["queueIds"])
            jobs = [
                self._job_dict(j)
                for j in sorted(self.jobs.values(), key=lambda j: (j.created_at, j.job_id))
                if j.queue_id in queues
            ]
            # the caller's filters decide what is active, as on the real service
            jobs = [j for j in jobs if _filter(p.get("filterExpressions"), j)]
            offset = p.get("itemOffset", 0)
            size = p.get("pageSize", 100)
            page = jobs[offset : offset + size]
            out: dict[str, Any] = {"jobs": page, "totalResults": len(jobs)}
            if offset + size < len(jobs):
                out["nextItemOffset"] = offset + size
            return out

    def op_ListJobs(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._farm(p["farmId"])
            items = [self._job_dict(j) for j in self.jobs.values() if j.queue_id == p["queueId"]]
            return _page(items, p, "jobs")

    def op_GetJob(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._job_dict(self._job(p["farmId"], p["queueId"], p["jobId"]), full=True)

    def op_BatchGetJob(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            jobs, errors = [], []
            for ident in p["identifiers"]:
                try:
                    jobs.append(
                        self._job_dict(
                            self._job(ident["farmId"], ident["queueId"], ident["jobId"]), full=True
                        )
                    )
                except SimError as e:
                    errors.append({**ident, "code": "ResourceNotFoundException", "message": str(e)})
            return {"jobs": jobs, "errors": errors}

    def _step_dict(self, job: Job, step: Step) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for t in step.tasks:
            counts[t.status] = counts.get(t.status, 0) + 1
        d: dict[str, Any] = {
            "stepId": step.step_id,
            "name": step.name,
            "lifecycleStatus": "CREATE_COMPLETE",
            "taskRunStatus": "READY",
            "taskRunStatusCounts": counts,
            "createdAt": job.created_at,
            "createdBy": job.created_by,
        }
        if step.amounts:
            d["requiredCapabilities"] = {
                "attributes": [],
                "amounts": [{"name": n, "min": float(u)} for n, u in step.amounts],
            }
        return d

    def op_ListSteps(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job = self._job(p["farmId"], p["queueId"], p["jobId"])
            items = [self._step_dict(job, s) for s in job.steps]
            for d in items:
                d.pop("requiredCapabilities", None)
            return _page(items, p, "steps")

    def op_GetStep(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job = self._job(p["farmId"], p["queueId"], p["jobId"])
            for s in job.steps:
                if s.step_id == p["stepId"]:
                    return self._step_dict(job, s)
            raise SimError("ResourceNotFoundException", f"Step {p['stepId']} not found", 404)

    def op_BatchGetStep(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            steps, errors = [], []
            for ident in p["identifiers"]:
                try:
                    job = self._job(ident["farmId"], ident["queueId"], ident["jobId"])
                    step = next((s for s in job.steps if s.step_id == ident["stepId"]), None)
                    if step is None:
                        raise SimError("ResourceNotFoundException", "step not found", 404)
                    steps.append(
                        {
                            **self._step_dict(job, step),
                            "jobId": job.job_id,
                            "queueId": job.queue_id,
                            "farmId": self.farm_id,
                        }
                    )
                except SimError as e:
                    errors.append({**ident, "code": e.code, "message": str(e)})
            return {"steps": steps, "errors": errors}

    def op_UpdateJob(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job = self._job(p["farmId"], p["queueId"], p["jobId"])
            self._update_job(job, p)
            self.writes.append(("UpdateJob", dict(p)))
            return {}

    def op_BatchUpdateJob(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            errors = []
            for item in p["jobs"]:
                try:
                    job = self._job(item["farmId"], item["queueId"], item["jobId"])
                    self._update_job(job, item)
                except SimError as e:
                    errors.append(
                        {
                            "farmId": item["farmId"],
                            "queueId": item["queueId"],
                            "jobId": item["jobId"],
                            "code": e.code,
                            "message": str(e),
                        }
                    )
            self.writes.append(("BatchUpdateJob", {"count": len(p["jobs"])}))
            return {"errors": errors}

    def _update_job(self, job: Job, p: dict[str, Any]) -> None:
        if "maxWorkerCount" in p:
            if p["maxWorkerCount"] == 0 or p["maxWorkerCount"] < -1:
                raise SimError("ValidationException", "maxWorkerCount must be -1 or >= 1")
            job.max_worker_count = p["maxWorkerCount"]
        if "priority" in p:
            job.priority = p["priority"]


_FIELDS = {
    "TASK_RUN_STATUS": "taskRunStatus",
    "LIFECYCLE_STATUS": "lifecycleStatus",
    "NAME": "name",
    "PRIORITY": "priority",
    "JOB_ID": "jobId",
}


def _filter(expr: dict[str, Any] | None, job: dict[str, Any]) -> bool:
    """SearchJobs' string filters (EQUAL / NOT_EQUAL), grouped by AND or OR."""
    if not expr:
        return True
    results = []
    for f in expr["filters"]:
        if "groupFilter" in f:
            results.append(_filter(f["groupFilter"], job))
        elif "stringFilter" in f:
            sf = f["stringFilter"]
            field = _FIELDS.get(sf["name"])
            if field is None:
                raise SimError("ValidationException", f"unknown filter name {sf['name']!r}")
            value = str(job.get(field))
            if sf["operator"] == "EQUAL":
                results.append(value == sf["value"])
            elif sf["operator"] == "NOT_EQUAL":
                results.append(value != sf["value"])
            else:
                raise SimError("ValidationException", f"operator {sf['operator']} not simulated")
        else:
            raise SimError("ValidationException", "only string and group filters are simulated")
    return all(results) if expr["operator"] == "AND" else any(results)


def _page(items: list[dict[str, Any]], p: dict[str, Any], key: str) -> dict[str, Any]:
    start = int(p.get("nextToken") or 0)
    size = int(p.get("maxResults") or 100)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out
