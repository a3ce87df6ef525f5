"""The fake farm's sessions, session actions and task updates, as the service documents
them: a running task is a session whose task-run action lists the limits it acquired
(`acquiredLimits`, since the 2025-01-28 API), and UpdateTask moves one task — READY
requeues it: its run is canceled (CANCELING) and gives back what it holds when its process
exits (`FakeFarm.release_delay`). A chunk's run names no task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sync.fakes.operations import FakeError, not_found, page, task_dict

if TYPE_CHECKING:
    from datetime import datetime

    from sync.fakes.model import Job, Run, Session, Step, Task

_MOVES = ("READY", "FAILED", "SUCCEEDED", "CANCELED", "SUSPENDED", "PENDING")


class SessionOperations:
    """The `op_<Operation>` methods for sessions; mixed into `FakeFarm`."""

    now: datetime

    def _job(self, farm_id: str, queue_id: str, job_id: str) -> Job:  # from FarmOperations
        raise NotImplementedError

    def _step(self, ident: dict[str, Any]) -> tuple[Job, Step]:  # from FarmOperations
        raise NotImplementedError

    def item_error(self, operation: str, ident: str) -> None:  # from FarmOperations
        raise NotImplementedError

    def requeue(self, job: Job, step: Step, task: Task) -> None:  # from FakeFarm
        raise NotImplementedError

    def op_ListSessions(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        return page([_session(s) for s in job.sessions], p, "sessions")

    def op_GetSession(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        s = next((s for s in job.sessions if s.session_id == p["sessionId"]), None)
        if s is None:
            raise not_found(f"Session {p['sessionId']}")
        return {**_session(s), "log": {"logDriver": "awslogs"}}

    def op_GetSessionAction(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        r = _run(job, p["sessionActionId"])
        if r is None:
            raise not_found(f"Session action {p['sessionActionId']}")
        return _action_in_full(r)

    def op_ListTasks(self, p: dict[str, Any]) -> dict[str, Any]:
        job, step = self._step(p)
        return page([task_dict(job, t) for t in step.tasks], p, "tasks")

    def op_GetTask(self, p: dict[str, Any]) -> dict[str, Any]:
        job, step = self._step(p)
        task = _task(step, p["taskId"])
        if task is None:
            raise not_found(f"Task {p['taskId']}")
        return task_dict(job, task)

    def op_ListSessionActions(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        found = [
            r
            for s in job.sessions
            if p.get("sessionId") in (None, s.session_id)
            for r in s.runs
            if p.get("taskId") in (None, r.task_id)
        ]
        return page([_action(r) for r in found], p, "sessionActions")

    def op_BatchGetSessionAction(self, p: dict[str, Any]) -> dict[str, Any]:
        actions, errors = [], []
        for ident in p["identifiers"]:
            r = None
            try:
                r = _run(
                    self._job(ident["farmId"], ident["queueId"], ident["jobId"]),
                    ident["sessionActionId"],
                )
            except FakeError:
                pass  # its job is gone: so is the action
            if r is None:
                what = f"Session action {ident['sessionActionId']} not found"
                errors.append({**ident, "code": "ResourceNotFoundException", "message": what})
                continue
            try:
                self.item_error("BatchGetSessionAction", r.action_id)
            except FakeError as e:
                errors.append({**ident, "code": e.code, "message": str(e)})
                continue
            actions.append({**ident, **_action_in_full(r)})
        return {"sessionActions": actions, "errors": errors}

    def op_UpdateTask(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        if job.lifecycle_status == "ARCHIVED":
            raise FakeError("ConflictException", f"Job {job.job_id} is archived", 409)
        step = next((s for s in job.steps if s.step_id == p["stepId"]), None)
        task = _task(step, p["taskId"]) if step is not None else None
        if task is None:
            raise not_found(f"Task {p['taskId']}")
        if p["targetRunStatus"] not in _MOVES:
            raise FakeError("ValidationException", f"{p['targetRunStatus']} is not a target")
        if p["targetRunStatus"] == "READY":
            self.requeue(job, step, task)  # type: ignore[arg-type]
        else:
            task.set_status(p["targetRunStatus"], self.now)
        self.writes.append(("UpdateTask", dict(p)))
        return {}

    writes: list[tuple[str, dict[str, Any]]]


def _run(job: Job, action_id: str) -> Run | None:
    return next((r for s in job.sessions for r in s.runs if r.action_id == action_id), None)


def _task(step: Step, task_id: str) -> Task | None:
    return next((t for t in step.tasks if t.task_id == task_id), None)


def _session(s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessionId": s.session_id,
        "fleetId": s.fleet_id,
        "workerId": s.worker_id,
        "startedAt": s.started,
        "lifecycleStatus": "ENDED" if s.ended else "STARTED",
    }
    if s.ended:
        out["endedAt"] = s.ended
    return out


def _action(r: Run) -> dict[str, Any]:
    run: dict[str, Any] = {"stepId": r.step_id, "parameters": r.parameters}
    if r.task_id:  # a chunk's run names no task
        run["taskId"] = r.task_id
    out: dict[str, Any] = {
        "sessionActionId": r.action_id,
        "status": r.action_status,
        "definition": {"taskRun": run},
    }
    if r.started is not None:  # an ASSIGNED run has not started
        out["startedAt"] = r.started
    if r.ended:
        out["endedAt"] = r.ended
    return out


def _action_in_full(r: Run) -> dict[str, Any]:
    """GetSessionAction's and BatchGetSessionAction's answer: acquiredLimits is "not
    returned" when the action acquired none (the API reference)."""
    out = {**_action(r), "sessionId": r.session_id}
    if r.acquired:
        out["acquiredLimits"] = [{"limitId": lid, "count": n} for lid, n in r.acquired]
    return out
