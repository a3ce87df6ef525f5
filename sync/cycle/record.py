"""The last step of a cycle: what was read, decided and written, into the history's rows
and the metrics' snapshot. The history first: a scrape that shows a cycle finds it
recorded too."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.cycle.act import Outcome
from sync.cycle.writes import job_change_row
from sync.edges.history import History
from sync.edges.metrics import Metrics, Snapshot
from sync.law import reasons
from sync.law.limits import PoolPlan, farm_selector
from sync.law.reconcile import Plan
from sync.law.state import Denial, Observed
from sync.law.undeclared import by_limit
from sync.licenses import Feature, Report
from sync.policy import Policy
from sync.record import observation
from sync.record.redact import Redactor, any_farm, quiet, selector_words
from sync.values.domain import Decision, LimitMemory, short_host
from sync.values.errors import HistoryError

log = logging.getLogger("license_sync")


@dataclass
class CycleResult:
    started: datetime
    observed: Observed
    plan: Plan
    outcome: Outcome
    errors: list[str]
    duration: float
    dry_run: bool = False
    over_budget: bool = False  # its calls ran out of the cycle's budget

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def label(self) -> str:
        """How the cycle ended, as the history and `cycles_total{result}` say it."""
        return "ok" if self.ok else ("over_budget" if self.over_budget else "error")

    def applied(self, d: Decision) -> bool:
        """Whether the decision's writes landed (never in a dry run)."""
        return not self.dry_run and any(a.decision is d and a.ok for a in self.outcome.applied)


def record(
    result: CycleResult,
    policy: Policy,
    policy_sha: str,
    history: History | None,
    metrics: Metrics,
    finished: datetime,
    redaction_key: bytes = b"",
) -> None:
    """The cycle into the history and the metrics. With `history.redact` and a key, the
    artists it names are hashed (sync/record/redact.py)."""
    redactor = _redactor(policy, redaction_key, result.observed.worker_hosts)
    say = quiet if redactor else str
    found = refusals(result)
    for d in found:
        metrics.denials.labels(d.pool, d.who).inc()
    for name, state in result.observed.sources.items():
        if state.log_skipped:
            metrics.log_lines_skipped.labels(name).inc(state.log_skipped)
    if history is not None:
        try:
            history.record_cycle(
                _cycle_row(result, policy_sha, finished),
                _observations(result, policy),
                _decisions(result),
                [
                    {"at": result.started.isoformat(), "where": "cycle", "message": say(e)}
                    for e in result.errors
                ],
                [job_change_row(c) for c in result.outcome.job_changes]
                + [w.row() for w in result.outcome.preempted],
                _denial_rows(found, redactor),
                _undeclared_rows(result),
            )
            history.set_state("observed", _as_left(result, redactor), finished)
            history.prune(result.started)
        except HistoryError as e:
            metrics.history_errors.inc()
            log.error("%s (syncing goes on)", e)
    metrics.cycle_duration.observe(result.duration)
    metrics.cycles.labels(result.label).inc()
    if result.ok:
        metrics.last_success.set(result.started.timestamp())
    metrics.jobs_unadopted.set(len(result.plan.memory.unadopted))
    metrics.jobs_unread.set(sum(f.unread for f in result.observed.farms.values()))
    metrics.snapshot = snapshot(result, policy)


def refusals(result: CycleResult) -> list[Denial]:
    """Every refusal the sources' logs recorded since the last cycle, told apart."""
    return [d for state in result.observed.sources.values() for d in state.refused]


def _denial_rows(found: list[Denial], redactor: Redactor | None) -> list[dict[str, Any]]:
    """One row for the refusals of the cycle alike in all but their time, counted."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in found:
        row = _denial_row(d, redactor)
        key = tuple(v for k, v in row.items() if k != "at")
        if (had := rows.get(key)) is None:
            rows[key] = {**row, "count": 1}
        else:
            had["count"] += 1
            had["at"] = min(had["at"], row["at"])
    return list(rows.values())


def _denial_row(d: Denial, redactor: Redactor | None) -> dict[str, Any]:
    """An artist's user and host hashed as the observation's are (`history.redact`)."""
    hide = redactor is not None and d.who == "artist"
    name = redactor.name if redactor is not None and hide else (lambda v: v)
    return {
        "at": d.at.isoformat(),
        "source": d.source,
        "pool": d.pool,
        "feature": d.feature,
        "user": name(d.user),
        "host": name(d.host),
        "who": d.who,
        "reason": d.reason,
    }


def _undeclared_rows(result: CycleResult) -> list[dict[str, Any]]:
    """Farm hosts and the runs on them (the farm's own, never redacted), for the pools
    whose use around their limits was taken this cycle: a read it was seen in alone is
    no one's to answer for."""
    at = result.started.isoformat()
    taken = {n for n, pp in result.plan.pools.items() if pp.figures and pp.figures.undeclared}
    return [
        {"at": at, **{k: getattr(u, k) for k in UNDECLARED_COLUMNS}}
        for pool, found in result.observed.undeclared.items()
        if pool in taken
        for u in found
    ]


UNDECLARED_COLUMNS = (
    "pool",
    "host",
    "count",
    "worker_id",
    "queue_id",
    "job_id",
    "job_name",
    "step_id",
    "step_name",
)


def _redactor(policy: Policy, key: bytes, workers: frozenset[str]) -> Redactor | None:
    if not (policy.history.redact and key):
        return None
    selectors = [farm_selector(p, workers) for p in policy.pools.values()]
    on_a_worker = (lambda host, user: short_host(host) in workers) if workers else None
    sels = [p.farm_selector for p in policy.pools.values() if p.farm_selector is not None]
    hosts, users = [h for s in sels for h in s.hosts], [u for s in sels for u in s.users]
    clear = selector_words(hosts, users, workers=bool(workers))
    return Redactor(key, any_farm([*selectors, on_a_worker]), clear)


def _as_left(result: CycleResult, redactor: Redactor | None) -> dict[str, Any]:
    """What `plan --against` plans with: the farm as this cycle left it."""
    return observation.dump(
        result.observed,
        result.started,
        landed=[d for d in result.plan.decisions if d.changes_anything and result.applied(d)],
        job_changes=result.outcome.job_changes,
        first_look=result.plan.memory.first_look,
        redactor=redactor,
    )


def _cycle_row(result: CycleResult, sha: str, finished: datetime) -> dict[str, Any]:
    return {
        "started": result.started.isoformat(),
        "finished": finished.isoformat(),
        "result": result.label,
        "duration": result.duration,
        "changes": sum(1 for a in result.outcome.applied if a.ok and a.decision.changes_anything),
        "errors": len(result.errors),
        "policy_sha": sha,
        "dry_run": int(result.dry_run),
    }


def _observations(result: CycleResult, policy: Policy) -> list[dict[str, Any]]:
    """Each source's up/down, and the features the policy's pools use."""
    at = result.started.isoformat()
    rows: list[dict[str, Any]] = []
    for name, state in result.observed.sources.items():
        report = state.report
        if not report.up:
            rows.append({"at": at, "source": name, "up": 0})
            continue
        seen = set()
        for ref in (r for pool in policy.pools.values() for r in pool.features):
            for f in report.feature(ref.feature, ref.vendor) if ref.source == name else ():
                if (f.vendor, f.feature) not in seen:
                    seen.add((f.vendor, f.feature))
                    rows.append(
                        {
                            "at": at,
                            "source": name,
                            "up": 1,
                            "vendor": f.vendor,
                            "feature": f.feature,
                            "total": f.total,
                            "in_use": f.in_use,
                            "reserved": f.reserved,
                            "queued": f.queued,
                        }
                    )
    return rows


def _decisions(result: CycleResult) -> list[dict[str, Any]]:
    at = result.started.isoformat()
    rows = []
    for pp in result.plan.pools.values():
        fig = pp.figures
        for d in pp.decisions:
            rows.append(
                {
                    "at": at,
                    "pool": d.pool,
                    "farm_id": d.farm_id,
                    "limit_ref": d.limit_ref,
                    "limit_id": d.limit_id,
                    "current": d.current,
                    "target": d.target,
                    "new": d.new,
                    "changed": int(d.changes_anything),
                    "applied": int(result.applied(d) and d.changes_anything),
                    "status": d.status,
                    "reason": reasons.text(d.why),
                    "why": json.dumps(reasons.data(d.why)),
                    "total": fig.total if fig else None,
                    "in_use": fig.in_use if fig else None,
                    "farm_use": fig.farm_use if fig else None,
                    "external": fig.external if fig else None,
                    "reserve": fig.reserve if fig else None,
                    "current_count": d.current_count,
                }
            )
    return rows


def snapshot(result: CycleResult, policy: Policy) -> Snapshot:
    """The gauges a scrape shows until the next cycle."""
    snap = _sources_snapshot(result, policy)
    for name, pool in policy.pools.items():
        for ref in pool.features:
            report = _shown(result, ref.source)
            for f in report.feature(ref.feature, ref.vendor) if report else ():
                snap.features.append(_feature_row(name, ref.source, f))
        pp = result.plan.pools.get(name)
        if pp is not None:
            _pool_rows(snap, result, pp)
    for source in result.observed.sources:
        report = _shown(result, source)
        if report and policy.exporter_only:  # every feature: no pool to choose them
            snap.features += _by_name(source, report)
        if report and policy.metrics.checkouts:
            snap.checkouts += _checkout_rows(source, report)
    return snap


def _sources_snapshot(result: CycleResult, policy: Policy) -> Snapshot:
    """Each source, its servers, vendor daemons and log, as up or not."""
    sources = result.observed.sources
    return Snapshot(
        sources=[
            {
                "source": name,
                "up": state.report.up,
                "duration": state.seconds,
                "last_success": state.last_good.timestamp() if state.last_good else None,
            }
            for name, state in sources.items()
        ],
        servers=[
            {
                "source": name,
                "host": f"{s.port}@{s.host}" if s.port else s.host,
                "master": "unknown" if s.master is None else str(s.master).lower(),
                "up": s.status == "up",
            }
            for name, state in sources.items()
            for s in state.report.servers
        ],
        vendors=[
            {"source": name, "vendor": v.name, "up": v.status == "up"}
            for name, state in sources.items()
            for v in state.report.vendors
        ],
        logs=[
            {"source": name, "up": state.log_error is None}
            for name, state in sources.items()
            if _has_log(policy, name)
        ],
    )


def _has_log(policy: Policy, source: str) -> bool:
    return getattr(policy.sources.get(source), "log", None) is not None


def _shown(result: CycleResult, source: str) -> Report | None:
    """What a source's series show: this cycle's read, or while it is down its last good
    one, so an expiry panel or alert does not empty and start its `for:` again at every
    flap (source_up says it is down)."""
    state = result.observed.sources.get(source)
    if state is None:
        return None
    return state.report if state.report.up else state.last_good_report


def _feature_row(pool: str, source: str, f: Feature) -> dict[str, Any]:
    return {
        "pool": pool,
        "feature": f.feature,
        "source": source,
        "total": f.total,
        "in_use": f.in_use,
        "reserved": f.reserved,
        "queued": f.queued,
        "expires": f.expires,
    }


def _by_name(source: str, report: Report) -> list[dict[str, Any]]:
    """Every feature of a source, one row a name: a name two vendor daemons serve (or two
    versions) is summed, as one series is all the labels can tell apart."""
    rows: dict[str, dict[str, Any]] = {}
    for f in report.features:
        if f.error:  # a line that says no counts shows none, not 0 in use
            continue
        row = _feature_row("", source, f)
        if (had := rows.get(f.feature)) is None:
            rows[f.feature] = row
            continue
        for k in ("in_use", "reserved", "queued"):
            had[k] += row[k]
        both = (had["total"], row["total"])
        had["total"] = None if None in both else both[0] + both[1]  # uncounted stays so
        dates = [d for d in (had["expires"], row["expires"]) if d and d != "permanent"]
        had["expires"] = min(dates) if dates else had["expires"]
    return list(rows.values())


def _checkout_rows(source: str, report: Report) -> list[dict[str, Any]]:
    """Licenses held by each user at each host, a feature (`metrics.checkouts`)."""
    held: dict[tuple[str, str, str], int] = {}
    for f in report.features:
        for c in f.checkouts:
            key = (f.feature, c.user or "", c.host or "")
            held[key] = held.get(key, 0) + c.count
    return [
        {"source": source, "feature": feat, "user": user, "host": host, "count": n}
        for (feat, user, host), n in sorted(held.items())
    ]


def _pool_rows(snap: Snapshot, result: CycleResult, pp: PoolPlan) -> None:
    if pp.figures is not None:
        fig = pp.figures
        snap.pools.append(
            {
                "pool": pp.pool,
                "farm_use": fig.farm_use,
                "external": fig.external,
                "reserve": fig.reserve,
                "headroom": fig.headroom,
            }
        )
    shared = [pj for pj in result.plan.pools_jobs if pj.pool == pp.pool]
    if shared:
        snap.jobs.append(
            {
                "pool": pp.pool,
                "jobs": sum(len(pj.jobs) for pj in shared),
                "demand": sum(pj.demand for pj in shared),
                "overrides": sum(len(pj.left_alone) for pj in shared),
            }
        )
    paused = result.plan.memory.limits  # kept until a read shows them ACTIVE again
    around = by_limit(pp)
    for d in pp.decisions:
        now_max = d.new if d.new is not None and result.applied(d) else d.current
        resumed = set(d.resume) if result.applied(d) else set()
        snap.limits.append(
            {
                "pool": pp.pool,
                "limit": d.limit_ref,
                "max_count": now_max,
                "target": d.target,
                "current_count": d.current_count,
                "exhausted": d.exhausted,
                "undeclared": around.get(d.limit_ref, 0) if pp.figures is not None else None,
                "paused": len(set(paused.get(d.key, LimitMemory()).paused) - resumed),
            }
        )
