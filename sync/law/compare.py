"""What a policy edit changes: two plans of the same observation and memory, the old
policy's and the edited one's, told apart (`plan --baseline`). What both would do — an
increase whose settle is due, a write still pending, a job cap owed anyway — is not the
edit's, so it is not shown as the edit's. Compared as data, never as words."""

from __future__ import annotations

from dataclasses import dataclass

from sync.law.reconcile import Plan
from sync.values.domain import Decision, JobWrite

LimitOutcome = tuple[int | None, int | None, tuple[str, ...], tuple[str, ...], int, str]


@dataclass(frozen=True)
class LimitEffect:
    """A limit the edit decides otherwise; None on a side: that policy does not name it."""

    farm_id: str
    limit_ref: str
    baseline: Decision | None
    edit: Decision | None


@dataclass(frozen=True)
class JobEffect:
    """A job cap the edit writes otherwise; None on a side: that plan writes nothing."""

    farm_id: str
    job_id: str
    baseline: JobWrite | None
    edit: JobWrite | None


@dataclass(frozen=True)
class EditEffect:
    limits: tuple[LimitEffect, ...]
    jobs: tuple[JobEffect, ...]

    @property
    def changes_anything(self) -> bool:
        return bool(self.limits or self.jobs)


def compare(baseline: Plan, edit: Plan) -> EditEffect:
    """Each limit and job cap on which the two plans differ, in a stable order."""
    old = {d.key: d for d in baseline.decisions}
    new = {d.key: d for d in edit.decisions}
    limits = tuple(
        LimitEffect(key[0], key[1], old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if _limit_outcome(old.get(key)) != _limit_outcome(new.get(key))
    )
    old_jobs, new_jobs = _job_writes(baseline), _job_writes(edit)
    jobs = tuple(
        JobEffect(key[0], key[1], old_jobs.get(key), new_jobs.get(key))
        for key in sorted(old_jobs.keys() | new_jobs.keys())
        if _job_outcome(old_jobs.get(key)) != _job_outcome(new_jobs.get(key))
    )
    return EditEffect(limits, jobs)


def _limit_outcome(d: Decision | None) -> LimitOutcome | None:
    """What a decision does, as data: target, the write, pauses, resumes, requeues, status."""
    return None if d is None else (d.target, d.new, d.pause, d.resume, d.preempt, d.status)


def _job_writes(plan: Plan) -> dict[tuple[str, str], JobWrite]:
    return {(fj.farm_id, w.job_id): w for fj in plan.farms_jobs for w in fj.writes}


def _job_outcome(w: JobWrite | None) -> tuple[int, bool] | None:
    return None if w is None else (w.value, w.restore)
