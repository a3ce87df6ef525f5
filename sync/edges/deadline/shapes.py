"""What Deadline's answers mean: jobs, limits, sessions and stamps read from the API's
shapes into the domain's values, and what a request must hold (the service model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions
import botocore.loaders
import botocore.session
import botocore.utils
from botocore.model import Shape

from sync.values.domain import (
    Holding,
    JobInfo,
    LimitState,
    RunningTask,
    Stamp,
    short_host,
)

PAGE = 100  # items a page or a batch call, the API's maximum


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


GONE = "ResourceNotFoundException"  # the only answer that means a thing no longer exists


# session actions that hold what they acquired: the scheduler takes a limit's units when it
# assigns an action, and a canceled or reclaimed run holds them until its process is gone
_HOLDING = ("ASSIGNED", "SCHEDULED", "RUNNING", "CANCELING", "RECLAIMING")


_RELEASING = ("CANCELING", "RECLAIMING")


# workers that may have a session holding something (WorkerStatus): a lost one's run is
# RECLAIMING until the service gives up on it
_BUSY_WORKER = ("STARTED", "RUNNING", "STOPPING", "NOT_RESPONDING")


def _names_of(worker: dict[str, Any]) -> list[str]:
    """What a license server may call a worker's host: its host name (short, lower case)
    and its IPv4 addresses (hostProperties)."""
    props = worker.get("hostProperties") or {}
    ips = (props.get("ipAddresses") or {}).get("ipV4Addresses", ())
    return [n for n in map(short_host, [props.get("hostName") or "", *ips]) if n]


def _host_of(worker: dict[str, Any], wanted: set[str]) -> str | None:
    """The name among `wanted` a worker answers to."""
    return next((n for n in _names_of(worker) if n in wanted), None)


@dataclass(frozen=True)
class JobLookup:
    """What BatchGetJob said of each job asked for."""

    found: dict[str, JobInfo]
    gone: frozenset[str]  # ResourceNotFound: the job no longer exists
    failed: dict[str, str]  # any other answer, or none: held, asked again next cycle


def missing_member(shape: Shape | None, value: Any, path: str) -> str | None:
    """The first member the model requires that `value` lacks, as a path, or None.
    Only shapes that require something somewhere are walked (a search page's 100 job
    summaries require nothing)."""
    if shape is None or not _requires(shape):
        return None
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return path
        for name in shape.required_members:
            if name not in value:
                return f"{path}.{name}"
        for name, member in shape.members.items():
            if name in value:
                found = missing_member(member, value[name], f"{path}.{name}")
                if found is not None:
                    return found
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            found = missing_member(shape.member, item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


_REQUIRES: dict[str, bool] = {}


def _requires(shape: Shape, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a shape or any shape inside it has required members (cached by name)."""
    if shape.name in _REQUIRES:
        return _REQUIRES[shape.name]
    if shape.name in seen:
        return False
    inner: list[Shape] = []
    if shape.type_name == "structure":
        inner = list(shape.members.values())
    elif shape.type_name == "list":
        inner = [shape.member]
    found = bool(getattr(shape, "required_members", None)) or any(
        _requires(m, seen | {shape.name}) for m in inner
    )
    _REQUIRES[shape.name] = found
    return found


def chunk_size(step: Mapping[str, Any]) -> int:
    """How many tasks one run of a step takes: its CHUNK_INT parameter's
    `chunks.defaultTaskCount` (GetStep, BatchGetStep), 1 for a step that is not chunked."""
    for p in (step.get("parameterSpace") or {}).get("parameters", ()):
        if p.get("type") == "CHUNK_INT" and "chunks" in p:
            return max(1, int(p["chunks"].get("defaultTaskCount", 1)))
    return 1


def stamp(item: Mapping[str, Any]) -> Stamp | None:
    """A resource's updatedAt and updatedBy, or None when it was never updated."""
    at, by = item.get("updatedAt"), item.get("updatedBy")
    if at is None or by is None:
        return None
    return (at.isoformat() if isinstance(at, datetime) else str(at)), str(by)


def holding_from(items: list[dict[str, Any]], limit_id: str, into: Holding) -> Holding:
    """`into` with BatchGetSessionAction items that hold `limit_id` added: a canceled or
    reclaimed run is releasing; an assigned run has not begun, and a chunk's run names no
    task: both are held and counted but never a task to requeue."""
    running, held, releasing, chunks = list(into.running), into.held, into.releasing, into.chunks
    for item in items:
        units = sum(x["count"] for x in item.get("acquiredLimits", []) if x["limitId"] == limit_id)
        if not units or item["status"] not in _HOLDING:
            continue
        if item["status"] in _RELEASING:
            releasing += units
            continue
        held += units
        run = item["definition"].get("taskRun", {})
        if "startedAt" not in item:
            continue  # ASSIGNED or SCHEDULED: its worker has not started it
        if "taskId" not in run:
            chunks += 1
            continue
        running.append(
            RunningTask(
                item["queueId"],
                item["jobId"],
                run["stepId"],
                run["taskId"],
                item["startedAt"],
                units,
            )
        )
    return Holding(tuple(running), held, releasing, chunks, into.errors)


def resolve_limit(ref: str, limits: list[LimitState]) -> LimitState | str:
    """Find `ref` by limitId, then amountRequirementName (case-insensitively, as amount
    names compare: OpenJD 2023-09 template schemas, 3.3.1.1), then displayName."""
    for attr in ("limit_id", "amount", "display_name"):
        if attr == "amount":
            found = [lim for lim in limits if lim.amount.casefold() == ref.casefold()]
        else:
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
