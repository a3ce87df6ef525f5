"""`plan --format json`: the plan as data for bots and CI summaries, a stable document
(docs/cli.md, "plan --format json"). Fields are only ever added; `version` says when
one changes meaning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from sync.law import reasons
from sync.law.compare import EditEffect
from sync.law.reconcile import Plan
from sync.law.state import Observed
from sync.values.domain import Decision, JobWrite

VERSION = 1


class Errors(NamedTuple):
    plan: list[str]  # the plan's own
    recorded: list[str]  # those the recorded cycle had (--against), apart
    complete: bool


def plan_document(
    observed: Observed,
    plan: Plan,
    history: str | None,
    recorded_at: datetime | None,
    errors: Errors,
) -> dict[str, Any]:
    """The document; `errors`: the plan's own, those the recorded cycle brought apart, and
    whether the plan is complete (look.py `split_errors` and `--recorded-errors`)."""
    limits = [
        {
            "pool": d.pool,
            "farm": d.farm_id,
            "limit": d.limit_ref,
            "limit_id": d.limit_id,
            "status": d.status,
            "max_count": d.current,
            "target": d.target,
            "new": d.new,
            "pause": list(d.pause),
            "resume": list(d.resume),
            "requeue": d.preempt,
            "changes": d.changes_anything,
            "why": reasons.text(d.why),
            "reasons": reasons.data(d.why),
        }
        for pp in plan.pools.values()
        for d in pp.decisions
    ]
    jobs = [
        {
            "farm": fj.farm_id,
            "queue": w.queue_id,
            "job": w.job_id,
            "pool": w.pool,
            "max_worker_count": w.old,
            "new": w.value,
            "kind": "restore" if w.restore else "cap",
            "why": reasons.text(w.why),
        }
        for fj in plan.farms_jobs
        for w in fj.writes
    ]
    return {
        "version": VERSION,
        "against": _against(history, recorded_at),
        "sources": {
            name: {"up": s.report.up, "errors": list(s.report.errors)}
            for name, s in observed.sources.items()
        },
        "limits": limits,
        "jobs": jobs,
        "unread_jobs": sum(f.unread for f in observed.farms.values()),
        "errors": errors.plan,
        "recorded_errors": errors.recorded,
        "complete": errors.complete,
        "changes": {"limits": sum(1 for x in limits if x["changes"]), "jobs": len(jobs)},
    }


def _against(history: str | None, recorded_at: datetime | None) -> dict[str, Any]:
    if history is None or recorded_at is None:
        return {"live": True}
    age = (datetime.now(UTC) - recorded_at).total_seconds()
    return {
        "live": False,
        "history": history,
        "cycle": recorded_at.isoformat(),
        "age_seconds": round(max(0.0, age)),
    }


def effect_document(effect: EditEffect, baseline: str) -> dict[str, Any]:
    """`baseline`: what the edit changes against the old policy (`plan --baseline`)."""
    return {
        "policy": baseline,
        "limits": [
            {
                "farm": e.farm_id,
                "limit": e.limit_ref,
                "baseline": _decision(e.baseline),
                "edit": _decision(e.edit),
            }
            for e in effect.limits
        ],
        "jobs": [
            {
                "farm": j.farm_id,
                "job": j.job_id,
                "baseline": _job(j.baseline),
                "edit": _job(j.edit),
            }
            for j in effect.jobs
        ],
        "changes": {"limits": len(effect.limits), "jobs": len(effect.jobs)},
    }


def _decision(d: Decision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "status": d.status,
        "target": d.target,
        "new": d.new,
        "pause": list(d.pause),
        "resume": list(d.resume),
        "requeue": d.preempt,
        "why": reasons.text(d.why),
    }


def _job(w: JobWrite | None) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"new": w.value, "kind": "restore" if w.restore else "cap", "why": reasons.text(w.why)}
