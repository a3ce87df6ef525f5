"""The Deadline operations the fake farm answers, with the errors the service documents.

Input has been checked against the service model before it gets here (`sync.fakes.deadline`);
these methods keep the rules of state: DeleteQueueLimitAssociation only from STOPPED,
DeleteLimit only without associations, an archived job takes no update, and a repeated
`clientToken` returns the first answer without doing the work again.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.session

from sync.fakes.model import task_changes
from sync.fakes.templates import JobSpec, TemplateError, build

if TYPE_CHECKING:
    import threading

    from sync.fakes.model import Job, Limit, Step, Task

T = TypeVar("T")

# who a call is made for, as `updatedBy` names it: the service's own caller (the access key
# it signs with, `sync.fakes.deadline`) or a person working on the farm by hand
SERVICE = "arn:aws:sts::111122223333:assumed-role/license-sync/fake"
PERSON = "arn:aws:sts::111122223333:assumed-role/wrangler/pat"
ARTIST = "arn:aws:sts::111122223333:assumed-role/artist/sam"  # who submits the demo's jobs
CREATOR = "arn:aws:sts::111122223333:assumed-role/admin/setup"  # who made the farm's things
SEARCH_TOTAL_MAX = 10000  # SearchJobsResponse.totalResults: max 10000 in the model
# what SearchJobs' answer shows of a job that a write changes, in wire names
_WRITTEN = ("maxWorkerCount", "priority", "name", "lifecycleStatus", "targetTaskRunStatus")


@functools.cache
def item_error_codes(operation: str) -> tuple[str, ...]:
    """The codes the service model lists for a Batch* operation's per-item errors, less
    ResourceNotFound: that one the fake says only of what does not exist."""
    model = botocore.session.get_session().get_service_model("deadline")
    out = model.operation_model(operation).output_shape.members["errors"]
    code = out.member.members["code"]
    return tuple(c for c in code.enum if c != "ResourceNotFoundException")


class FakeError(Exception):
    """An API error the endpoint returns as AWS would."""

    def __init__(self, code: str, message: str, status: int = 400, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.reason = reason


def not_found(what: str) -> FakeError:
    return FakeError("ResourceNotFoundException", f"{what} not found", 404)


def _conflict(message: str, reason: str) -> FakeError:
    return FakeError("ConflictException", message, 409, reason)


class FarmOperations:
    """The `op_<Operation>` methods of `FakeFarm`; `call` runs one by name."""

    if TYPE_CHECKING:  # what FakeFarm provides
        farm_id: str
        display_name: str
        created: dict[str, datetime]  # farm, queue, limit or association → when it was made
        create_delay: timedelta
        task_seconds: float
        lock: threading.RLock
        now: datetime
        limits: dict[str, Limit]
        queues: list[str]
        associations: dict[tuple[str, str], str]
        jobs: dict[str, Job]
        writes: list[tuple[str, dict[str, Any]]]
        tokens: dict[tuple[str, str], dict[str, Any]]
        item_faults: dict[str, str]
        item_error_rate: float
        search_total_max: int
        search_lag: timedelta
        rng: random.Random
        caller: str
        stamps: dict[tuple[str, str], tuple[datetime, str]]
        _last_created: datetime
        _index: tuple[Any, list[Job]] | None  # the last search's key and what it found

        def add_limit(
            self, amount: str, max_count: int, display_name: str | None = None
        ) -> str: ...
        def associate(self, queue_id: str, limit_id: str, status: str = "ACTIVE") -> None: ...
        def reported_count(self, lim: Limit) -> int: ...
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
        ) -> str: ...
        def set_target_status(self, job: Job, status: str, step: Step | None = None) -> None: ...

    def call(self, operation: str, p: dict[str, Any], caller: str = SERVICE) -> dict[str, Any]:
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise FakeError("UnknownOperationException", f"{operation} is not simulated", 501)
        with self.lock:
            self.caller = caller
            token = p.get("clientToken")
            if token is not None and (operation, token) in self.tokens:
                return self.tokens[(operation, token)]  # a retry: answered, not redone
            result: dict[str, Any] = handler(p)
            if token is not None:
                self.tokens[(operation, token)] = result
            return result

    def item_error(self, operation: str, ident: str) -> None:
        """Fail one item of a Batch* call: as a test asked (`item_faults`), or at random
        (`item_error_rate`) with a code the model lists for the operation."""
        code = self.item_faults.get(ident)
        if code is None and self.item_error_rate and self.rng.random() < self.item_error_rate:
            code = self.rng.choice(item_error_codes(operation))
        if code is not None:
            raise FakeError(code, f"injected {code}")

    def _stamp(self) -> dict[str, Any]:
        return {"updatedAt": self.now, "updatedBy": self.caller}

    # -- lookups ----------------------------------------------------------------------------

    def _farm(self, farm_id: str) -> None:
        if farm_id != self.farm_id:
            raise not_found(f"Farm {farm_id}")

    def _limit(self, farm_id: str, limit_id: str) -> Limit:
        self._farm(farm_id)
        lim = self.limits.get(limit_id)
        if lim is None:
            raise not_found(f"Limit {limit_id}")
        return lim

    def _job(self, farm_id: str, queue_id: str, job_id: str) -> Job:
        self._farm(farm_id)
        job = self.jobs.get(job_id)
        if job is None or job.queue_id != queue_id:
            raise not_found(f"Job {job_id}")
        return job

    def _association(self, p: dict[str, Any]) -> tuple[str, str]:
        self._farm(p["farmId"])
        key = (p["queueId"], p["limitId"])
        if key not in self.associations:
            raise not_found(f"Association of queue {key[0]} with limit {key[1]}")
        return key

    # -- queues -----------------------------------------------------------------------------

    def op_ListQueues(self, p: dict[str, Any]) -> dict[str, Any]:
        """The farm's queues; a queue here has no name but its id, and schedules while it
        holds a job (QueueStatus: IDLE, SCHEDULING)."""
        self._farm(p["farmId"])
        items = [self._queue_dict(q) for q in self.queues]
        items = [d for d in items if p.get("status") in (None, d["status"])]
        return page(items, p, "queues")

    def _queue_dict(self, queue_id: str) -> dict[str, Any]:
        busy = any(j.queue_id == queue_id and not j.finished for j in self.jobs.values())
        return {
            "farmId": self.farm_id,
            "queueId": queue_id,
            "displayName": queue_id,
            "status": "SCHEDULING" if busy else "IDLE",
            "defaultBudgetAction": "NONE",
            "createdAt": self.created[queue_id],
            "createdBy": CREATOR,
        }

    def op_GetQueue(self, p: dict[str, Any]) -> dict[str, Any]:
        """A queue without job attachments or a role: the `deadline` client then submits
        without uploading anything."""
        self._farm(p["farmId"])
        if p["queueId"] not in self.queues:
            raise not_found(f"Queue {p['queueId']}")
        return self._queue_dict(p["queueId"])

    def op_ListQueueEnvironments(self, p: dict[str, Any]) -> dict[str, Any]:
        """A queue here has no queue environments (the `deadline` client lists them before
        it submits, for their parameters)."""
        self.op_GetQueue(p)
        return {"environments": []}

    # -- farms ------------------------------------------------------------------------------

    def _farm_dict(self) -> dict[str, Any]:
        return {
            "farmId": self.farm_id,
            "displayName": self.display_name,
            "createdAt": self.created[self.farm_id],
            "createdBy": CREATOR,
        }

    def op_GetFarm(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        return {**self._farm_dict(), "costScaleFactor": 1.0, "description": ""}

    def op_ListFarms(self, p: dict[str, Any]) -> dict[str, Any]:
        """This farm; the endpoint (`sync.fakes.deadline`) lists every farm it serves."""
        return {"farms": [self._farm_dict()]}

    # -- limits -----------------------------------------------------------------------------

    def _limit_dict(self, lim: Limit) -> dict[str, Any]:
        return {
            "farmId": self.farm_id,
            "limitId": lim.limit_id,
            "displayName": lim.display_name,
            "amountRequirementName": lim.amount,
            "maxCount": lim.max_count,
            "currentCount": self.reported_count(lim),
            "createdAt": lim.created_at,
            "createdBy": CREATOR,
            "description": lim.description,
            **_updated(lim.updated_at, lim.updated_by),
        }

    def op_ListLimits(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        items = [self._limit_dict(lim) for lim in self.limits.values()]
        for d in items:
            d.pop("description")
        return page(items, p, "limits")

    def op_GetLimit(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._limit_dict(self._limit(p["farmId"], p["limitId"]))

    def op_CreateLimit(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        if not p["amountRequirementName"].startswith("amount."):
            raise FakeError("ValidationException", "amountRequirementName must start with amount.")
        _valid_count("maxCount", p["maxCount"])
        lid = self.add_limit(p["amountRequirementName"], p["maxCount"], p["displayName"])
        self.limits[lid].description = p.get("description", "")
        self.writes.append(("CreateLimit", dict(p)))
        return {"limitId": lid}

    def op_UpdateLimit(self, p: dict[str, Any]) -> dict[str, Any]:
        lim = self._limit(p["farmId"], p["limitId"])
        if "maxCount" in p:
            _valid_count("maxCount", p["maxCount"])
            lim.max_count = p["maxCount"]
        lim.display_name = p.get("displayName", lim.display_name)
        lim.description = p.get("description", lim.description)
        lim.updated_at, lim.updated_by = self.now, self.caller
        self.writes.append(("UpdateLimit", dict(p)))
        return {}

    def op_DeleteLimit(self, p: dict[str, Any]) -> dict[str, Any]:
        lim = self._limit(p["farmId"], p["limitId"])
        if any(lid == lim.limit_id for _, lid in self.associations):
            raise _conflict(
                f"Limit {lim.limit_id} has queue associations: delete them first",
                "RESOURCE_IN_USE",
            )
        del self.limits[lim.limit_id]
        self.writes.append(("DeleteLimit", dict(p)))
        return {}

    # -- queue-limit associations -------------------------------------------------------------

    def _association_dict(self, queue_id: str, limit_id: str) -> dict[str, Any]:
        return {
            "queueId": queue_id,
            "limitId": limit_id,
            "status": self.associations[(queue_id, limit_id)],
            "createdAt": self.created.get(f"{queue_id}/{limit_id}", self.now),
            "createdBy": CREATOR,
            **_updated(*self.stamps.get((queue_id, limit_id), (None, None))),
        }

    def op_ListQueueLimitAssociations(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        items = [
            self._association_dict(q, lid)
            for q, lid in sorted(self.associations)
            if p.get("queueId") in (None, q) and p.get("limitId") in (None, lid)
        ]
        return page(items, p, "queueLimitAssociations")

    def op_GetQueueLimitAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._association_dict(*self._association(p))

    def op_CreateQueueLimitAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        self._limit(p["farmId"], p["limitId"])
        if p["queueId"] not in self.queues:
            raise not_found(f"Queue {p['queueId']}")
        if (p["queueId"], p["limitId"]) in self.associations:
            raise _conflict(
                "the queue is already associated with the limit", "RESOURCE_ALREADY_EXISTS"
            )
        self.associate(p["queueId"], p["limitId"])
        self.writes.append(("CreateQueueLimitAssociation", dict(p)))
        return {}

    def op_UpdateQueueLimitAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        key = self._association(p)
        if not (p["status"] != "ACTIVE" and self.associations[key] == "STOPPED"):
            self.associations[key] = p["status"]  # a STOP on STOPPED changes nothing
        self.stamps[key] = (self.now, self.caller)
        self.writes.append(("UpdateQueueLimitAssociation", dict(p)))
        return {}

    def op_DeleteQueueLimitAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        key = self._association(p)
        if self.associations[key] != "STOPPED":
            raise _conflict(
                f"the association is {self.associations[key]}: set a STOP status and wait "
                "for STOPPED before deleting it",
                "STATUS_CONFLICT",
            )
        del self.associations[key]
        self.writes.append(("DeleteQueueLimitAssociation", dict(p)))
        return {}

    # -- jobs and steps -------------------------------------------------------------------------

    def _job_dict(self, job: Job, full: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "jobId": job.job_id,
            "queueId": job.queue_id,
            "name": job.name,
            "priority": job.priority,
            "lifecycleStatus": job.lifecycle_status,
            "lifecycleStatusMessage": "",
            "taskRunStatus": job.task_run_status,
            "taskRunStatusCounts": _counts(job.tasks()),
            "createdAt": job.created_at,
            "createdBy": job.created_by,
            "maxWorkerCount": job.max_worker_count,
            "maxFailedTasksCount": job.max_failed_tasks_count,
            "maxRetriesPerTask": job.max_retries_per_task,
            **_updated(job.updated_at, job.updated_by),
        }
        if job.target_task_run_status is not None:
            d["targetTaskRunStatus"] = job.target_task_run_status
        if full and (started := job.started_at) is not None:
            d["startedAt"] = started
        if full and (ended := job.ended_at) is not None:
            d["endedAt"] = ended
        if full:
            d["farmId"] = self.farm_id
            d["description"] = job.description
        return d

    def op_SearchJobs(self, p: dict[str, Any]) -> dict[str, Any]:
        """Pages by offset over the list as it is at each call, as the service does, and
        from each job as it was `search_lag` ago: a job created since is not found yet, a
        write since is not seen yet. totalResults stops at the model's 10,000. Filters and
        sorts see the fields they can name; only the page's jobs are built whole."""
        self._farm(p["farmId"])
        seen = self.now - self.search_lag
        found = self._search_index(p, seen)
        out = by_offset(found, p, "jobs", lambda j: _as_of(self._job_dict(j), j, seen))
        out["totalResults"] = min(out["totalResults"], self.search_total_max)
        return out

    def _search_index(self, p: dict[str, Any], seen: datetime) -> list[Job]:
        """The jobs a search finds, in its order: worked out once for the pages of one
        search (the service answers from an index, not by sorting the farm for each page),
        again once anything it depends on has changed (jobs made or written, a task's
        status, the time)."""
        key = (
            json.dumps(
                [p["queueIds"], p.get("filterExpressions"), p.get("sortExpressions")], default=str
            ),
            seen,
            task_changes(),
            len(self.jobs),
            self._last_created,
            len(self.writes),
        )
        if self._index is not None and self._index[0] == key:
            return self._index[1]
        queues = set(p["queueIds"])
        found = [
            (_searchable(j, seen), j)
            for j in self.jobs.values()
            if j.queue_id in queues and (not self.search_lag or j.created_at <= seen)
        ]
        found = [(f, j) for f, j in found if _matches(p.get("filterExpressions"), f)]
        found.sort(key=lambda fj: (fj[0]["createdAt"], fj[0]["jobId"]))
        for sort in reversed(p.get("sortExpressions", [])):
            key_of = _sort_key(sort)
            found.sort(key=lambda fj: key_of(fj[0]), reverse=_descending(sort))
        self._index = (key, [j for _, j in found])
        return self._index[1]

    def op_ListJobs(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        items = [self._job_dict(j) for j in self.jobs.values() if j.queue_id == p["queueId"]]
        return page(items, p, "jobs")

    def op_CreateJob(self, p: dict[str, Any]) -> dict[str, Any]:
        """A job from an OpenJD template (`sync.fakes.templates`): answered at once, its
        steps made `create_delay` later. What openjd-model refuses is a
        ValidationException with its words."""
        self._farm(p["farmId"])
        if p["queueId"] not in self.queues:
            raise not_found(f"Queue {p['queueId']}")
        if "template" not in p or "templateType" not in p:
            raise FakeError("ValidationException", "template and templateType are required")
        try:
            spec = build(p["template"], p["templateType"], p.get("parameters"))
        except TemplateError as e:
            raise FakeError("ValidationException", f"the job template is not valid: {e}") from e
        if "maxWorkerCount" in p:
            _valid_count("maxWorkerCount", p["maxWorkerCount"])
        job_id = self.create_job(
            p["queueId"],
            spec,
            priority=p["priority"],
            created_by=self.caller,
            max_worker_count=p.get("maxWorkerCount", -1),
            name=p.get("nameOverride"),
        )
        job = self.jobs[job_id]
        job.description = p.get("descriptionOverride", job.description)
        job.max_failed_tasks_count = p.get("maxFailedTasksCount", job.max_failed_tasks_count)
        job.max_retries_per_task = p.get("maxRetriesPerTask", job.max_retries_per_task)
        if "targetTaskRunStatus" in p:
            job.target_task_run_status = p["targetTaskRunStatus"]
        self.writes.append(("CreateJob", {"queueId": p["queueId"], "jobId": job_id}))
        return {"jobId": job_id}

    def op_GetJob(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._job_dict(self._job(p["farmId"], p["queueId"], p["jobId"]), full=True)

    def op_BatchGetJob(self, p: dict[str, Any]) -> dict[str, Any]:
        jobs, errors = [], []
        for ident in p["identifiers"]:
            try:
                job = self._job(ident["farmId"], ident["queueId"], ident["jobId"])
                self.item_error("BatchGetJob", job.job_id)
                jobs.append(self._job_dict(job, full=True))
            except FakeError as e:
                errors.append({**ident, "code": e.code, "message": str(e)})
        return {"jobs": jobs, "errors": errors}

    def _step_dict(self, job: Job, step: Step) -> dict[str, Any]:
        d: dict[str, Any] = {
            "stepId": step.step_id,
            "name": step.name,
            "lifecycleStatus": step.lifecycle_status,
            "taskRunStatus": step.task_run_status,
            "taskRunStatusCounts": _counts(step.tasks),
            "createdAt": job.created_at,
            "createdBy": job.created_by,
            "dependencyCounts": _dependency_counts(job, step),
        }
        if step.amounts:
            d["requiredCapabilities"] = {
                "attributes": [],
                "amounts": [{"name": n, "min": float(u)} for n, u in step.amounts],
            }
        if step.parameter_space is not None:
            d["parameterSpace"] = step.parameter_space
        if step.target_task_run_status is not None:
            d["targetTaskRunStatus"] = step.target_task_run_status
        if step.updated is not None:
            d.update(_updated(*step.updated))
        return d

    def op_ListSteps(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        items = [self._step_dict(job, s) for s in job.steps]
        for d in items:
            d.pop("requiredCapabilities", None)
        return page(items, p, "steps")

    def _step(self, ident: dict[str, Any]) -> tuple[Job, Step]:
        job = self._job(ident["farmId"], ident["queueId"], ident["jobId"])
        for s in job.steps:
            if s.step_id == ident["stepId"]:
                return job, s
        raise not_found(f"Step {ident['stepId']}")

    def op_GetStep(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._step_dict(*self._step(p))

    def op_BatchGetStep(self, p: dict[str, Any]) -> dict[str, Any]:
        steps, errors = [], []
        for ident in p["identifiers"]:
            try:
                job, step = self._step(ident)
                self.item_error("BatchGetStep", step.step_id)
                steps.append(
                    {
                        **self._step_dict(job, step),
                        "jobId": job.job_id,
                        "queueId": job.queue_id,
                        "farmId": self.farm_id,
                    }
                )
            except FakeError as e:
                errors.append({**ident, "code": e.code, "message": str(e)})
        return {"steps": steps, "errors": errors}

    def op_UpdateStep(self, p: dict[str, Any]) -> dict[str, Any]:
        """A step's tasks requeued, suspended or ended; the step reads UPDATE_IN_PROGRESS
        until the next tick, then UPDATE_SUCCEEDED (StepLifecycleStatus)."""
        job, step = self._step(p)
        if job.lifecycle_status == "ARCHIVED":
            raise _conflict(f"Job {job.job_id} is archived", "STATUS_CONFLICT")
        self.set_target_status(job, p["targetTaskRunStatus"], step)
        step.target_task_run_status = p["targetTaskRunStatus"]
        step.lifecycle_status = "UPDATE_IN_PROGRESS"
        step.updated = (self.now, self.caller)
        self.writes.append(("UpdateStep", dict(p)))
        return {}

    def op_UpdateJob(self, p: dict[str, Any]) -> dict[str, Any]:
        self._update_job(self._job(p["farmId"], p["queueId"], p["jobId"]), p)
        self.writes.append(("UpdateJob", dict(p)))
        return {}

    def op_BatchUpdateJob(self, p: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for item in p["jobs"]:
            try:
                job = self._job(item["farmId"], item["queueId"], item["jobId"])
                self.item_error("BatchUpdateJob", job.job_id)
                self._update_job(job, item)
            except FakeError as e:
                ident = {k: item[k] for k in ("farmId", "queueId", "jobId")}
                errors.append({**ident, "code": e.code, "message": str(e)})
        self.writes.append(("BatchUpdateJob", {"count": len(p["jobs"]), "jobs": p["jobs"]}))
        return {"errors": errors}

    def _update_job(self, job: Job, p: dict[str, Any]) -> None:
        if job.lifecycle_status == "ARCHIVED":
            raise _conflict(f"Job {job.job_id} is archived", "STATUS_CONFLICT")
        if "maxWorkerCount" in p:
            _valid_count("maxWorkerCount", p["maxWorkerCount"])
        fields = {
            "maxWorkerCount": "max_worker_count",
            "priority": "priority",
            "name": "name",
            "description": "description",
            "maxFailedTasksCount": "max_failed_tasks_count",
            "maxRetriesPerTask": "max_retries_per_task",
        }
        before = self._job_dict(job)
        for wire, attr in fields.items():
            if wire in p:
                setattr(job, attr, p[wire])
        if "targetTaskRunStatus" in p:
            self.set_target_status(job, p["targetTaskRunStatus"])
        if p.get("lifecycleStatus") == "ARCHIVED":
            job.lifecycle_status = "ARCHIVED"
        job.updated_at, job.updated_by = self.now, self.caller
        changed = [*(k for k in _WRITTEN if k in p), "updatedAt", "updatedBy"]
        # what a search that lags sees until the write is `search_lag` old
        job.trail = [(t, old) for t, old in job.trail if t > self.now - self.search_lag]
        if self.search_lag:
            job.trail.append((self.now, {k: before.get(k) for k in changed}))


def _updated(at: datetime | None, by: str | None) -> dict[str, Any]:
    return {} if at is None else {"updatedAt": at, "updatedBy": by}


def _as_of(d: dict[str, Any], job: Job, seen: datetime) -> dict[str, Any]:
    """A job's wire dict as it was at `seen`: the writes since undone, newest first."""
    for t, old in reversed(job.trail):
        if t <= seen:
            break
        for k, v in old.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
    return d


def _dependency_counts(job: Job, step: Step) -> dict[str, int]:
    """GetStep's dependencyCounts: a dependency is resolved once its step has succeeded."""
    done = {s.step_id for s in job.steps if s.task_run_status == "SUCCEEDED"}
    consumers = [s for s in job.steps if step.step_id in s.depends_on]
    return {
        "dependenciesResolved": sum(1 for d in step.depends_on if d in done),
        "dependenciesUnresolved": sum(1 for d in step.depends_on if d not in done),
        "consumersResolved": sum(1 for _ in consumers) if step.step_id in done else 0,
        "consumersUnresolved": 0 if step.step_id in done else len(consumers),
    }


def task_dict(job: Job, task: Task) -> dict[str, Any]:
    """A task as ListTasks and GetTask show it."""
    d: dict[str, Any] = {
        "taskId": task.task_id,
        "createdAt": job.created_at,
        "createdBy": CREATOR,
        "runStatus": task.status,
        "parameters": task.parameters,
    }
    if task.started is not None:
        d["startedAt"] = task.started
    if task.ended is not None:
        d["endedAt"] = task.ended
    if task.run is not None:
        d["latestSessionActionId"] = task.run.action_id
    return d


def _valid_count(name: str, value: int) -> None:
    # the model allows -1 and up; the documentation rules out 0
    if value == 0:
        raise FakeError("ValidationException", f"{name} 0 is not valid: use -1 or 1 and above")


def _counts(tasks: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tasks:
        out[t.status] = out.get(t.status, 0) + 1
    return out


def _searchable(job: Job, seen: datetime) -> dict[str, Any]:
    """The fields SearchJobs can filter and sort a job by (`_FIELDS`), as of `seen`."""
    d = {
        "taskRunStatus": job.task_run_status,
        "lifecycleStatus": job.lifecycle_status,
        "name": job.name,
        "priority": job.priority,
        "jobId": job.job_id,
        "createdBy": job.created_by,
        "createdAt": job.created_at,
    }
    return _as_of(d, job, seen) if job.trail else d


_FIELDS = {
    "TASK_RUN_STATUS": "taskRunStatus",
    "LIFECYCLE_STATUS": "lifecycleStatus",
    "NAME": "name",
    "PRIORITY": "priority",
    "JOB_ID": "jobId",
    "CREATED_BY": "createdBy",
    "CREATED_AT": "createdAt",
}
_COMPARE = {
    "EQUAL": lambda a, b: a == b,
    "NOT_EQUAL": lambda a, b: a != b,
    "GREATER_THAN_EQUAL_TO": lambda a, b: a >= b,
    "GREATER_THAN": lambda a, b: a > b,
    "LESS_THAN_EQUAL_TO": lambda a, b: a <= b,
    "LESS_THAN": lambda a, b: a < b,
}


def _field(name: str) -> str:
    field = _FIELDS.get(name)
    if field is None:
        raise FakeError("ValidationException", f"unknown field name {name!r}")
    return field


def _compare(operator: str, a: Any, b: Any) -> bool:
    if operator not in _COMPARE:
        raise FakeError("ValidationException", f"operator {operator} not simulated")
    return bool(_COMPARE[operator](a, b))


def _matches(expr: dict[str, Any] | None, job: dict[str, Any]) -> bool:
    """SearchJobs' filters: string and date-time comparisons, grouped by AND or OR."""
    if not expr:
        return True
    results = []
    for f in expr["filters"]:
        if "groupFilter" in f:
            results.append(_matches(f["groupFilter"], job))
        elif "stringFilter" in f:
            sf = f["stringFilter"]
            results.append(_compare(sf["operator"], str(job[_field(sf["name"])]), sf["value"]))
        elif "dateTimeFilter" in f:
            df = f["dateTimeFilter"]
            value = job[_field(df["name"])]
            if not isinstance(value, datetime):
                raise FakeError("ValidationException", f"{df['name']} is not a date-time field")
            results.append(_compare(df["operator"], value, _datetime(df["dateTime"])))
        else:
            raise FakeError("ValidationException", "only string, date-time and group filters")
    return all(results) if expr["operator"] == "AND" else any(results)


def _datetime(value: Any) -> datetime:
    """A timestamp as botocore sends it in a JSON body: epoch seconds or ISO 8601."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _sort_key(sort: dict[str, Any]) -> Any:
    if "fieldSort" not in sort:
        raise FakeError("ValidationException", "only fieldSort is simulated")
    field = _field(sort["fieldSort"]["name"])
    return lambda j: j[field]


def _descending(sort: dict[str, Any]) -> bool:
    return bool(sort["fieldSort"]["sortOrder"] == "DESCENDING")


def by_offset(
    found: list[T], p: dict[str, Any], key: str, shown: Callable[[T], dict[str, Any]]
) -> dict[str, Any]:
    """A Search* page by `itemOffset` and `pageSize`: only the page's items are built
    (`shown`); totalResults counts them all."""
    offset, size = p["itemOffset"], p.get("pageSize", 100)
    out: dict[str, Any] = {
        key: [shown(x) for x in found[offset : offset + size]],
        "totalResults": len(found),
    }
    if offset + size < len(found):
        out["nextItemOffset"] = offset + size
    return out


def page(items: list[dict[str, Any]], p: dict[str, Any], key: str) -> dict[str, Any]:
    token = p.get("nextToken") or "0"
    if not token.isdigit():
        raise FakeError("ValidationException", f"nextToken {token!r} is not a token we gave")
    start = int(token)
    size = int(p.get("maxResults") or 100)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out
