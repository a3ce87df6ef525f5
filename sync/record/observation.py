"""The farm as the last cycle left it, as JSON-ready data, and back (docs/design.md,
"Planning offline").

Every cycle the history keeps what it read — reports, limits with their associations,
jobs with their steps — with the writes that landed folded in. `plan --against HISTORY`
reconciles a policy with it and the memory the history keeps: the policy that is running
plans no change (unless the next cycle would make one), a new policy plans what merging it
would change. Offline, without AWS or a license server. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sync.law.state import FarmRead, Observed, SourceState
from sync.licenses import report_from_dict
from sync.record.redact import Redactor, hashes_of, unhash
from sync.values.domain import (
    ACTIVE,
    PAUSED,
    Association,
    Decision,
    JobChange,
    JobInfo,
    LimitState,
    StepAmounts,
)

VERSION = 1


class RecordedError(ValueError):
    """What the history keeps is not a recorded observation this version can read."""


def dump(
    observed: Observed,
    at: datetime,
    landed: Iterable[Decision] = (),
    job_changes: Iterable[JobChange] = (),
    first_look: bool = False,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """`observed` with the limit decisions and job caps that landed applied to it; its
    artists hashed by `redactor` (sync/record/redact.py)."""
    caps = {c.record.job_id: c.new for c in job_changes if c.new is not None}
    writes = {d.key: d for d in landed}
    data = {
        "version": VERSION,
        "at": at.isoformat(),
        "first_look": first_look,
        "sources": {name: _source(s, redactor) for name, s in observed.sources.items()},
        "farms": {
            farm_id: _farm(read, writes, caps, redactor) for farm_id, read in observed.farms.items()
        },
        "errors": list(observed.errors),
        # the farm's own machines, in clear: a `workers: true` selector planned offline
        "worker_hosts": sorted(observed.worker_hosts),
    }
    if redactor is not None:
        data["redacted"] = redactor.key.hex()  # matches the policy's `user:` selectors
        data["kept_clear"] = sorted(redactor.clear)  # the selectors its hosts were kept by
    return data


def kept_clear(data: Any) -> frozenset[str] | None:
    """The selectors whose hosts a redacted observation kept in clear (`selector_words`),
    or None when it hashed nobody."""
    if not isinstance(data, dict) or not data.get("redacted"):
        return None
    return frozenset(data.get("kept_clear", ()))


def load(data: Any, users: Iterable[str] = ()) -> tuple[Observed, datetime, bool]:
    """The observation, when it was made, and whether jobs were still waiting their first
    look; a hashed job creator that is one of `users` (those the planned policy names) as
    that user. `RecordedError` if `data` is not what `dump` wrote."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        got = data.get("version") if isinstance(data, dict) else type(data).__name__
        raise RecordedError(
            f"the recorded observation is of version {got!r} and this license-sync reads "
            f"{VERSION}; the service's next cycle records it anew"
        )
    try:
        sources = {
            name: SourceState(
                report_from_dict(s["report"]),
                _time(s["last_good"]),
                s["seconds"],
            )
            for name, s in data["sources"].items()
        }
        key = bytes.fromhex(data.get("redacted") or "")
        names = hashes_of(key, users) if key else {}
        farms = {farm_id: _read(farm_id, f, names) for farm_id, f in data["farms"].items()}
        workers = frozenset(data.get("worker_hosts", ()))
        observed = Observed(sources, farms, tuple(data["errors"]), worker_hosts=workers)
        return observed, datetime.fromisoformat(data["at"]), bool(data["first_look"])
    except (KeyError, TypeError, ValueError) as e:
        raise RecordedError(
            f"the recorded observation cannot be read ({e}); the service's next cycle "
            "records it anew"
        ) from e


# -- out -------------------------------------------------------------------------------------------


def _source(s: SourceState, redactor: Redactor | None) -> dict[str, Any]:
    last = s.last_good.isoformat() if s.last_good else None
    report = s.report.to_dict()
    if redactor is not None:
        report = redactor.report(report)
    return {"report": report, "last_good": last, "seconds": s.seconds}


def _farm(
    read: FarmRead,
    writes: Mapping[tuple[str, str], Decision],
    caps: Mapping[str, int],
    redactor: Redactor | None,
) -> dict[str, Any]:
    limits = {
        ref: found if isinstance(found, str) else _limit(found, writes.get((read.farm_id, ref)))
        for ref, found in read.limits.items()
    }
    jobs = None if read.jobs is None else [_job(j, caps.get(j.job_id), redactor) for j in read.jobs]
    return {
        "limits": limits,
        "error": read.error,
        "jobs": jobs,  # rows of JOB_FIELDS
        "jobs_error": read.jobs_error,
        "unread": read.unread,
        "steps": {
            job_id: [[s.step_id, s.amounts, s.tasks, s.chunk] for s in steps]
            for job_id, steps in read.steps.items()
        },
    }


def _limit(limit: LimitState, d: Decision | None) -> dict[str, Any]:
    status = {a.queue_id: a.status for a in limit.associations}
    max_count = limit.max_count
    if d is not None:
        max_count = d.new if d.new is not None else max_count
        status |= {q: PAUSED for q in d.pause} | {q: ACTIVE for q in d.resume}
    return {
        "limit_id": limit.limit_id,
        "display_name": limit.display_name,
        "amount": limit.amount,
        "max_count": max_count,
        "current_count": limit.current_count,
        "associations": status,
    }


# a job as a row, not a mapping: 10,000 of them are written every cycle
JOB_FIELDS = (
    "queue_id",
    "job_id",
    "name",
    "priority",
    "task_run_status",
    "lifecycle_status",
    "counts",
    "max_worker_count",
    "created_at",
    "created_by",
)


def _job(j: JobInfo, cap: int | None, redactor: Redactor | None) -> list[Any]:
    created = j.created_at.isoformat() if isinstance(j.created_at, datetime) else j.created_at
    return [
        j.queue_id,
        j.job_id,
        j.name,
        j.priority,
        j.task_run_status,
        j.lifecycle_status,
        j.counts,
        j.max_worker_count if cap is None else cap,
        created,
        redactor.name(j.created_by) if redactor else j.created_by,
    ]


# -- back in ---------------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _read(farm_id: str, f: Mapping[str, Any], names: Mapping[str, str]) -> FarmRead:
    limits: dict[str, LimitState | str] = {
        ref: v if isinstance(v, str) else _limit_state(farm_id, v) for ref, v in f["limits"].items()
    }
    jobs = None if f["jobs"] is None else tuple(_job_info(j, names) for j in f["jobs"])
    steps = {job_id: tuple(_step(row) for row in s) for job_id, s in f["steps"].items()}
    return FarmRead(farm_id, limits, f["error"], jobs, f["jobs_error"], int(f["unread"]), steps)


def _step(row: list[Any]) -> StepAmounts:
    """A step as kept: [id, amounts, tasks] and, since chunks were read, its chunk."""
    chunk = int(row[3]) if len(row) > 3 else 1
    return StepAmounts(row[0], dict(row[1]), int(row[2]), chunk=chunk)


def _limit_state(farm_id: str, v: Mapping[str, Any]) -> LimitState:
    return LimitState(
        farm_id=farm_id,
        limit_id=v["limit_id"],
        display_name=v["display_name"],
        amount=v["amount"],
        max_count=int(v["max_count"]),
        current_count=int(v["current_count"]),
        associations=tuple(Association(q, s) for q, s in v["associations"].items()),
    )


def _job_info(row: list[Any], names: Mapping[str, str]) -> JobInfo:
    if not isinstance(row, list):
        raise TypeError(f"a job is a row of {len(JOB_FIELDS)} values, not {type(row).__name__}")
    j = dict(zip(JOB_FIELDS, row, strict=True))
    if names:
        j["created_by"] = unhash(j["created_by"], names)
    if isinstance(j["created_at"], str):
        try:
            j["created_at"] = datetime.fromisoformat(j["created_at"])
        except ValueError:
            pass  # kept as the API gave it
    return JobInfo(**j)
