"""The fake farm's sessions, session actions and task updates, as the service documents
them: a running task is a session whose task-run action lists the limits it acquired
(`acquiredLimits`, since the 2025-01-28 API), and UpdateTask moves one task — READY
requeues it: its run is canceled (CANCELING) and gives back what it holds when its process
exits (`FakeFarm.release_delay`). A chunk's run names no task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sync.fakes.operations import FakeError, page, task_dict

if TYPE_CHECKING:
    from datetime import datetime

    from sync.fakes.model import Job, Session, Step, Task

FLEET = "fleet-" + "f" * 32
WORKER = "worker-" + "e" * 32
_MOVES = ("READY", "FAILED", "SUCCEEDED", "CANCELED", "SUSPENDED", "PENDING")


class SessionOperations:
    """The `op_<Operation>` methods for sessions; mixed into `FakeFarm`."""

    now: datetime

    def _job(self, farm_id: str, queue_id: str, job_id: str) -> Job:  # from FarmOperations
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
            raise FakeError("ResourceNotFoundException", f"Session {p['sessionId']} not found", 404)
        return {**_session(s), "log": {"logDriver": "awslogs"}}

    def op_GetSessionAction(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        s = next((s for s in job.sessions if s.action_id == p["sessionActionId"]), None)
        if s is None:
            what = f"Session action {p['sessionActionId']} not found"
            raise FakeError("ResourceNotFoundException", what, 404)
        return {**_action(s), "sessionId": s.session_id, "acquiredLimits": _acquired(s)}

    def op_ListTasks(self, p: dict[str, Any]) -> dict[str, Any]:
        job, step = self._job_step(p)
        return page([task_dict(job, t) for t in step.tasks], p, "tasks")

    def op_GetTask(self, p: dict[str, Any]) -> dict[str, Any]:
        job, step = self._job_step(p)
        task = _task(step, p["taskId"])
        if task is None:
            raise FakeError("ResourceNotFoundException", f"Task {p['taskId']} not found", 404)
        return task_dict(job, task)

    def _job_step(self, p: dict[str, Any]) -> tuple[Job, Step]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        step = next((s for s in job.steps if s.step_id == p["stepId"]), None)
        if step is None:
            raise FakeError("ResourceNotFoundException", f"Step {p['stepId']} not found", 404)
        return job, step

    def op_ListSessionActions(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        found = [
            s
            for s in job.sessions
            if p.get("sessionId") in (None, s.session_id) and p.get("taskId") in (None, s.task_id)
        ]
        return page([_action(s) for s in found], p, "sessionActions")

    def op_BatchGetSessionAction(self, p: dict[str, Any]) -> dict[str, Any]:
        actions, errors = [], []
        for ident in p["identifiers"]:
            try:
                job = self._job(ident["farmId"], ident["queueId"], ident["jobId"])
                s = next(s for s in job.sessions if s.action_id == ident["sessionActionId"])
            except (FakeError, StopIteration):
                what = f"Session action {ident['sessionActionId']} not found"
                errors.append({**ident, "code": "ResourceNotFoundException", "message": what})
                continue
            try:
                self.item_error("BatchGetSessionAction", s.action_id)
            except FakeError as e:
                errors.append({**ident, "code": e.code, "message": str(e)})
                continue
            actions.append(
                {
                    **ident,
                    **_action(s),
                    "sessionId": s.session_id,
                    "acquiredLimits": _acquired(s),
                }
            )
        return {"sessionActions": actions, "errors": errors}

    def op_UpdateTask(self, p: dict[str, Any]) -> dict[str, Any]:
        job = self._job(p["farmId"], p["queueId"], p["jobId"])
        if job.lifecycle_status == "ARCHIVED":
            raise FakeError("ConflictException", f"Job {job.job_id} is archived", 409)
        step = next((s for s in job.steps if s.step_id == p["stepId"]), None)
        task = _task(step, p["taskId"]) if step is not None else None
        if task is None:
            raise FakeError("ResourceNotFoundException", f"Task {p['taskId']} not found", 404)
        if p["targetRunStatus"] not in _MOVES:
            raise FakeError("ValidationException", f"{p['targetRunStatus']} is not a target")
        if p["targetRunStatus"] == "READY":
            self.requeue(job, step, task)  # type: ignore[arg-type]
        else:
            task.set_status(p["targetRunStatus"], self.now)
        self.writes.append(("UpdateTask", dict(p)))
        return {}

    writes: list[tuple[str, dict[str, Any]]]


def _acquired(s: Session) -> list[dict[str, Any]]:
    return [{"limitId": lid, "count": n} for lid, n in s.acquired]


def _task(step: Step, task_id: str) -> Task | None:
    return next((t for t in step.tasks if t.task_id == task_id), None)


def _session(s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessionId": s.session_id,
        "fleetId": FLEET,
        "workerId": WORKER,
        "startedAt": s.started,
        "lifecycleStatus": "ENDED" if s.ended else "STARTED",
    }
    if s.ended:
        out["endedAt"] = s.ended
    return out


def _action(s: Session) -> dict[str, Any]:
    run: dict[str, Any] = {"stepId": s.step_id, "parameters": s.parameters}
    if s.task_id:  # a chunk's run names no task
        run["taskId"] = s.task_id
    out: dict[str, Any] = {
        "sessionActionId": s.action_id,
        "status": s.action_status,
        "startedAt": s.started,
        "definition": {"taskRun": run},
    }
    if s.ended:
        out["endedAt"] = s.ended
    return out
