"""One cycle: read sources → read the farm → plan → apply → record. And the scheduler loop."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync import planner
from sync.deadline import Deadline, resolve_limit
from sync.errors import DeadlineError, HistoryError, PolicyError
from sync.history import History
from sync.jobshare import JobPlan, JobSharing
from sync.metrics import Metrics, Snapshot
from sync.planner import PAUSED, Decision, LimitMemory, LimitState, Plan, SourceState
from sync.policy import (
    CommandSourceConfig,
    FarmConfig,
    FlexlmSourceConfig,
    LoadedPolicy,
    Policy,
    RlmSourceConfig,
    StaticSourceConfig,
    parse_policy,
    policy_sha,
    read_policy_text,
)
from sync.report import Report, down_report
from sync.sources import CommandSource, Source, StaticSource, ToolSource

log = logging.getLogger("license_sync")

Clock = Callable[[], datetime]
DeadlineFactory = Callable[[FarmConfig], Deadline]


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_source(name: str, cfg: Any) -> Source:
    """A reader for one `sources:` entry of the policy."""
    if isinstance(cfg, FlexlmSourceConfig | RlmSourceConfig):
        return ToolSource(name, cfg.kind, list(cfg.servers), cfg.executable, cfg.timeout)
    if isinstance(cfg, CommandSourceConfig):
        return CommandSource(name, list(cfg.command), cfg.timeout)
    if isinstance(cfg, StaticSourceConfig):
        return StaticSource(name, dict(cfg.features))
    raise TypeError(f"unknown source config {cfg!r}")


@dataclass
class Applied:
    decision: Decision
    ok: bool
    error: str | None = None
    wrote: list[str] = field(default_factory=list)


@dataclass
class CycleResult:
    started: datetime
    plan: Plan
    applied: list[Applied]
    errors: list[str]
    duration: float
    reports: dict[str, Report]
    dry_run: bool = False
    jobs: list[JobPlan] = field(default_factory=list)
    job_changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class Service:
    """Holds what lives across cycles: the policy, clients, source state and memory."""

    def __init__(
        self,
        loaded: LoadedPolicy,
        *,
        deadline_factory: DeadlineFactory,
        metrics: Metrics | None = None,
        history: History | None = None,
        clock: Clock = utcnow,
        dry_run: bool = False,
        source_factory: Callable[[str, Any], Source] = build_source,
        watch_policy: bool = True,
        policy_quiet: float = 2.0,
        adopt: bool = False,
    ):
        self.loaded = loaded
        self.deadline_factory = deadline_factory
        self.metrics = metrics or Metrics()
        self.history = history
        self.clock = clock
        self.dry_run = dry_run
        self.source_factory = source_factory
        self.watch_policy = watch_policy
        self.policy_quiet = policy_quiet
        self._bad_sha: str | None = None
        self._deadlines: dict[str, Deadline] = {}
        self.sources: dict[str, Source] = {}
        self.last_good: dict[str, datetime] = {}
        self.last_good_report: dict[str, Report] = {}
        self.memory: dict[tuple[str, str], LimitMemory] = {}
        self.limit_originals: dict[str, int] = {}
        self.last_result: CycleResult | None = None
        self.last_ok_at: datetime | None = None
        self.last_cycle_seconds = 0.0
        self.write_lock = threading.Lock()  # SIGTERM waits for the write in flight
        self.last_lookup: dict[tuple[str, str], LimitState | str] = {}
        self.unreadable_farms: set[str] = set()
        self.sharing = JobSharing(history, adopt=adopt)
        self.stopping = False  # set on SIGTERM: no new write starts
        self.reload_requested = False  # SIGHUP: reload now, the file is said to be ready
        self.history_lost = False
        self._install(loaded)
        self.metrics.reloads.labels("ok").inc()
        self._load_memory()

    # -- policy -------------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    def _install(self, loaded: LoadedPolicy) -> None:
        self.loaded = loaded
        self.sources = {n: self.source_factory(n, c) for n, c in loaded.policy.sources.items()}
        self._deadlines = {}
        self.metrics.set_policy(loaded.sha)
        self.metrics.interval.set(loaded.policy.interval)
        if self.history is not None:  # retention follows the policy; the path needs a restart
            self.history.keep = loaded.policy.history.keep

    def maybe_reload(self) -> bool:
        """Pick up a changed policy file; keep the last good one if the new one is bad.

        The file is hashed before it is parsed: an unchanged file (every cycle but the one
        after an edit) costs a read and a hash, and a bad edit is reported once.
        """
        if not self.watch_policy:
            return False
        path = self.loaded.path
        forced, self.reload_requested = self.reload_requested, False  # SIGHUP
        try:
            stat_before = os.stat(path)
            text = read_policy_text(path)
            stat_after = os.stat(path)
        except (OSError, PolicyError) as e:
            err = e if isinstance(e, PolicyError) else PolicyError(f"{path}: {e}")
            self._reject(f"unreadable:{e}", err)
            return False
        sha = policy_sha(text)
        if sha == self.loaded.sha:
            self._bad_sha = None
            return False
        if sha == self._bad_sha:
            return False
        # a file still being written (an editor's truncate-then-write, a slow copy) waits
        # until it has been left alone for `policy_quiet` seconds: half a policy is valid
        # often enough to uncap jobs for a cycle
        changing = (stat_before.st_mtime_ns, stat_before.st_size) != (
            stat_after.st_mtime_ns,
            stat_after.st_size,
        )
        if not forced and (changing or time.time() - stat_after.st_mtime < self.policy_quiet):
            log.debug("policy %s is being written; reloading it once it is left alone", path)
            return False
        try:
            candidate = parse_policy(text, path)
        except PolicyError as e:
            self._reject(sha, e)
            return False
        old = self.loaded.policy
        self._install(candidate)
        self._bad_sha = None
        self.metrics.reloads.labels("ok").inc()
        log.info("policy %s reloaded (sha %s)", path, candidate.sha)
        for what, before, after in (
            ("metrics.address", old.metrics.address, candidate.policy.metrics.address),
            ("history.path", old.history.path, candidate.policy.history.path),
        ):
            if before != after:
                log.warning(
                    "policy %s changes %s from %s to %s: that takes effect at the next restart",
                    path,
                    what,
                    before,
                    after,
                )
        return True

    def _reject(self, key: str, e: PolicyError) -> None:
        """Count and log a bad policy file once, however many cycles it stays bad."""
        if key == self._bad_sha:
            return
        self._bad_sha = key
        self.metrics.reloads.labels("error").inc()
        log.error(
            "policy %s is invalid; keeping the last good policy (%s): %s",
            self.loaded.path,
            self.loaded.sha,
            str(e).replace("\n", " | "),
        )

    def deadline(self, farm_id: str) -> Deadline:
        d = self._deadlines.get(farm_id)
        if d is None:
            d = self._deadlines[farm_id] = self.deadline_factory(self.policy.farm(farm_id))
        return d

    # -- memory kept in the history -------------------------------------------------------------

    def _load_memory(self) -> None:
        if self.history is None:
            return
        try:
            rows = self.history.get_state("memory", [])
            self.limit_originals = self.history.get_state("limit_originals", {})
        except HistoryError as e:
            log.warning("cannot read planner memory from history: %s", e)
            return
        for farm, limit, rising, paused in rows:
            self.memory[(farm, limit)] = LimitMemory(rising, tuple(paused))

    def save_memory(self, now: datetime) -> None:
        if self.history is None:
            return
        rows = [[f, lim, m.rising, list(m.paused)] for (f, lim), m in self.memory.items()]
        self.history.set_state("memory", rows, now)

    # -- one cycle ------------------------------------------------------------------------------

    def read_sources(self, now: datetime) -> tuple[dict[str, SourceState], list[dict[str, Any]]]:
        def read(item: tuple[str, Source]) -> tuple[str, Report, float]:
            name, src = item
            t0 = time.monotonic()
            try:
                report = src.read()
            except Exception as e:  # a reader must never raise; if one does, it is down
                log.exception("source %s raised", name)
                report = down_report(src.kind, f"reader failed: {type(e).__name__}: {e}")
            return name, report, time.monotonic() - t0

        states: dict[str, SourceState] = {}
        rows = []
        items = list(self.sources.items())
        with ThreadPoolExecutor(
            max_workers=max(1, min(8, len(items))), thread_name_prefix="source"
        ) as pool:
            results = list(pool.map(read, items))
        for name, report, dt in results:
            if report.up:
                self.last_good[name] = now
                self.last_good_report[name] = report
            else:
                log.warning(
                    "source %s down: %s",
                    name,
                    "; ".join(report.errors) or "no reason",
                    extra={"source": name},
                )
            states[name] = SourceState(
                report, self.last_good.get(name), self.last_good_report.get(name)
            )
            rows.append({"server": name, "up": report.up, "duration": dt})
        return states, rows

    def read_farms(self) -> tuple[dict[tuple[str, str], LimitState | str], list[str]]:
        lookup: dict[tuple[str, str], LimitState | str] = {}
        errors: list[str] = []
        self.unreadable_farms = set()
        by_farm: dict[str, list[str]] = {}
        for pool in self.policy.pools.values():
            for t in pool.targets(self.policy.default_farm):
                if t.farm is not None:
                    by_farm.setdefault(t.farm, []).append(t.limit)
        for farm_id, refs in by_farm.items():
            try:
                limits = self.deadline(farm_id).limits()
            except DeadlineError as e:
                errors.append(str(e))
                log.error("%s", e)
                self.unreadable_farms.add(farm_id)
                for ref in refs:
                    lookup[(farm_id, ref)] = f"farm {farm_id} unreadable: {e}"
                continue
            for ref in refs:
                lookup[(farm_id, ref)] = resolve_limit(ref, limits)
        return lookup, errors

    def plan(
        self, now: datetime | None = None
    ) -> tuple[Plan, dict[str, Report], list[str], list[dict[str, Any]]]:
        """Read everything and plan, writing nothing."""
        now = now or self.clock()
        states, source_rows = self.read_sources(now)
        lookup, errors = self.read_farms()
        self.last_lookup = lookup
        p = planner.plan(self.policy, states, lookup, self.memory, now)
        return p, {n: s.report for n, s in states.items()}, errors, source_rows

    def run_cycle(self, now: datetime | None = None) -> CycleResult:
        """One full cycle. Never raises for a source, API or history failure."""
        now = now or self.clock()
        t0 = time.monotonic()
        self.maybe_reload()
        p, reports, errors, source_rows = self.plan(now)
        self._check_history(errors)
        applied = [] if self.dry_run else self.apply(p, now)
        if self.dry_run:
            applied = [Applied(d, True) for d in p.changes]
        for a in applied:
            if not a.ok and a.error:
                errors.append(a.error)
        for d in p.decisions:
            if d.status == "error":
                errors.append(f"pool {d.pool}: {d.reason}")
        job_plans, job_changes, job_errors = self.share_jobs(
            p, now, write=not (self.dry_run or self.history_lost)
        )
        self.metrics.jobs_unadopted.set(len(self.sharing.unadopted))
        errors.extend(job_errors)
        departed = {k: m for k, m in self.memory.items() if k not in p.memory and m.paused}
        self.memory = dict(p.memory)
        if departed and not self.dry_run:
            errors.extend(self._reopen_departed(departed))
        for a in applied:
            if not a.ok:  # a failed write is not a change: let the settle count start again
                key = (a.decision.farm_id, a.decision.limit_ref)
                self.memory[key] = LimitMemory(0, self.memory.get(key, LimitMemory()).paused)
        duration = time.monotonic() - t0
        result = CycleResult(
            now, p, applied, errors, duration, reports, self.dry_run, job_plans, job_changes
        )
        self._record(result, source_rows, now)
        self.last_result = result
        ended = self.clock()
        self.last_cycle_seconds = (ended - now).total_seconds()
        if result.ok:
            self.last_ok_at = ended  # when it ended: a long cycle is not a stale one
        return result

    def apply(self, p: Plan, now: datetime) -> list[Applied]:
        out = []
        for d in p.changes:
            a = Applied(d, True)
            if d.limit_id is None:
                continue
            if self.stopping:
                break  # stopping: the next start plans afresh
            dl = self.deadline(d.farm_id)
            ctx = {"pool": d.pool, "limit": d.limit_ref, "reason": d.reason}
            with self.write_lock:
                try:
                    if d.new is not None:
                        self._remember_original(d, now)
                        dl.update_limit(d.limit_id, d.new)
                        a.wrote.append(f"maxCount {d.current} → {d.new}")
                        self.metrics.changes.labels("max_count").inc()
                        log.info(
                            "pool %s limit %s: maxCount %s → %s: %s",
                            d.pool,
                            d.limit_ref,
                            d.current,
                            d.new,
                            d.reason,
                            extra=ctx,
                        )
                    if d.pause:
                        self._remember_paused(d, now)
                    for q in d.pause:
                        dl.update_association(q, d.limit_id, PAUSED)
                        a.wrote.append(f"paused {q}")
                        self.metrics.changes.labels("pause").inc()
                        log.warning(
                            "pool %s limit %s: queue %s paused: %s",
                            d.pool,
                            d.limit_ref,
                            q,
                            d.reason,
                            extra=ctx,
                        )
                    for q in d.resume:
                        dl.update_association(q, d.limit_id, "ACTIVE")
                        a.wrote.append(f"resumed {q}")
                        self.metrics.changes.labels("resume").inc()
                        log.info(
                            "pool %s limit %s: queue %s resumed", d.pool, d.limit_ref, q, extra=ctx
                        )
                except (DeadlineError, HistoryError) as e:
                    a.ok, a.error = False, f"pool {d.pool} limit {d.limit_ref}: {e}"
                    log.error("%s", a.error, extra={**ctx, "reason": str(e)})
            out.append(a)
        return out

    def _check_history(self, errors: list[str]) -> None:
        """A history removed or replaced under us holds the originals no more: stop capping."""
        lost = self.history is not None and self.history.replaced()
        if lost and not self.history_lost:
            log.error(
                "the history %s was removed or replaced while open: job caps are not written "
                "until a restart (the originals it held are gone with it; see "
                "docs/operations.md, 'The history was lost')",
                self.history.path if self.history else "",
            )
        self.history_lost = lost
        self.metrics.history_lost.set(int(lost))
        if lost:
            errors.append("history removed or replaced: job caps not written")

    def _reopen_departed(self, departed: dict[tuple[str, str], LimitMemory]) -> list[str]:
        """Queues paused for a pool that left the policy are reopened; the memory of the ones
        that could not be stays (saved in the history, where `restore --limits` finds it)."""
        errors = []
        farms = {f.id for f in self.policy.farms}
        for (farm_id, ref), mem in departed.items():
            if farm_id not in farms:  # the farm left the policy too: `restore` needs it back
                self.memory[(farm_id, ref)] = mem
                continue
            with self.write_lock:
                still, messages = resume_paused(self.deadline(farm_id), ref, mem.paused)
            for m in messages:
                log.info("limit %s left the policy: %s", ref, m)
            if still:
                self.memory[(farm_id, ref)] = LimitMemory(0, still)
                errors.append(f"limit {ref}: queues it paused not reopened yet: {', '.join(still)}")
        return errors

    def share_jobs(
        self, p: Plan, now: datetime, write: bool = True
    ) -> tuple[list[JobPlan], list[dict[str, Any]], list[str]]:
        """Per-job maxWorkerCount for every pool whose `jobs.policy` is not `none`, farm by
        farm; a farm that could not be read keeps its jobs as they are."""
        plans: list[JobPlan] = []
        changes: list[dict[str, Any]] = []
        errors: list[str] = []
        seen: set[str] = set()
        for farm_id in sorted(f.id for f in self.policy.farms):
            if farm_id in self.unreadable_farms:
                continue  # a read that failed is not an empty farm: hold its jobs
            dl = self.deadline(farm_id)
            try:
                jobs = self.sharing.observe(dl, farm_id, self._sharing_queues(farm_id))
                seen.update(j.job_id for j in jobs)
                farm_plans = self._pool_plans(p, farm_id, jobs, dl)
            except DeadlineError as e:
                errors.append(f"farm {farm_id}: jobs not shared this cycle: {e}")
                log.error("farm %s: jobs not shared this cycle: %s", farm_id, e)
                continue
            fp = self.sharing.farm_plan(farm_id, farm_plans, dict(self.policy.pools), jobs)
            plans += farm_plans
            if write and not fp.empty and not self.stopping:
                with self.write_lock:
                    made = self.sharing.apply(fp, dl, now)
                changes += made
                n = sum(1 for c in made if c["kind"] in ("cap", "restore"))
                if n:
                    self.metrics.changes.labels("max_worker_count").inc(n)
            for message in fp.errors:
                errors.append(f"farm {farm_id}: {message}")
                log.error("farm %s: %s", farm_id, message)
        self.sharing.forget_unseen(seen)
        return plans, changes, errors

    def _sharing_queues(self, farm_id: str) -> list[str]:
        """The queues associated with the farm's limits whose pools share between jobs."""
        queues: set[str] = set()
        for pool in self.policy.pools.values():
            if pool.jobs.policy == "none":
                continue
            for t in pool.targets(self.policy.default_farm):
                lim = self.last_lookup.get((t.farm or "", t.limit))
                if t.farm == farm_id and isinstance(lim, LimitState):
                    queues.update(a.queue_id for a in lim.associations)
        return sorted(queues)

    def _pool_plans(self, p: Plan, farm_id: str, jobs: list[Any], dl: Deadline) -> list[JobPlan]:
        out = []
        for name, pool in self.policy.pools.items():
            if pool.jobs.policy == "none" or name not in p.pools:
                continue
            for d in p.pools[name].decisions:
                limit = self.last_lookup.get((d.farm_id, d.limit_ref))
                if d.farm_id == farm_id and isinstance(limit, LimitState):
                    out.append(self.sharing.pool_plan(name, pool, d, limit, jobs, dl))
        return out

    def _remember_paused(self, d: Decision, now: datetime) -> None:
        """Queues about to be stopped are in the history before the write: a crash right
        after it must not leave a queue stopped that nothing remembers to reopen."""
        key = (d.farm_id, d.limit_ref)
        mem = self.memory.get(key, LimitMemory())
        self.memory[key] = LimitMemory(mem.rising, tuple(sorted(set(mem.paused) | set(d.pause))))
        if self.history is not None:
            self.save_memory(now)  # a HistoryError stops the pause: nothing is half-recorded

    def _remember_original(self, d: Decision, now: datetime) -> None:
        """Before the first write to a limit, keep its maxCount for `restore --limits`."""
        key = f"{d.farm_id}/{d.limit_id}"
        if key in self.limit_originals or d.current is None:
            return
        self.limit_originals[key] = d.current
        if self.history is not None:
            # Best effort: limits keep syncing when the history cannot be written (a
            # limit's original only serves `restore --limits`; jobs are stricter).
            try:
                self.history.set_state("limit_originals", self.limit_originals, now)
            except HistoryError as e:
                self.metrics.history_errors.inc()
                log.error("original maxCount of %s not recorded: %s", key, e)

    def _record(
        self, result: CycleResult, source_rows: list[dict[str, Any]], now: datetime
    ) -> None:
        # the history first: a scrape that shows this cycle finds it recorded too
        if self.history is not None:
            self._record_history(result, now)
        m = self.metrics
        m.cycle_duration.observe(result.duration)
        m.cycles.labels("ok" if result.ok else "error").inc()
        if result.ok:
            m.last_success.set(now.timestamp())
        m.snapshot = self._snapshot(result, source_rows)

    def _record_history(self, result: CycleResult, now: datetime) -> None:
        assert self.history is not None
        m = self.metrics
        at = now.isoformat()
        applied = {id(a.decision): a for a in result.applied}
        obs = []
        wanted = {
            (ref.source, ref.feature)
            for pool in self.policy.pools.values()
            for ref in pool.features
        }
        for name, report in result.reports.items():
            if not report.up:
                obs.append({"at": at, "source": name, "up": 0})
                continue
            for f in report.features:
                if (name, f.feature) in wanted:
                    obs.append(
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
        decisions = []
        for pp in result.plan.pools.values():
            fig = pp.figures
            for d in pp.decisions:
                a = applied.get(id(d))
                decisions.append(
                    {
                        "at": at,
                        "pool": d.pool,
                        "farm_id": d.farm_id,
                        "limit_ref": d.limit_ref,
                        "limit_id": d.limit_id,
                        "current": d.current,
                        "target": d.target,
                        "new": d.new,
                        "changed": int(d.changes),
                        "applied": int(bool(a and a.ok and not result.dry_run and d.changes)),
                        "status": d.status,
                        "reason": d.reason,
                        "total": fig.total if fig else None,
                        "in_use": fig.in_use if fig else None,
                        "farm_use": fig.farm_use if fig else None,
                        "external": fig.external if fig else None,
                        "reserve": fig.reserve if fig else None,
                        "current_count": d.current_count,
                    }
                )
        errors = [{"at": at, "where": "cycle", "message": e} for e in result.errors]
        cycle = {
            "started": at,
            "finished": self.clock().isoformat(),
            "result": "ok" if result.ok else "error",
            "duration": result.duration,
            "changes": sum(1 for a in result.applied if a.ok and a.decision.changes),
            "errors": len(result.errors),
            "policy_sha": self.loaded.sha,
            "dry_run": int(result.dry_run),
        }
        try:
            self.history.record_cycle(cycle, obs, decisions, errors)
            self.save_memory(now)
            self.history.prune(now)
        except HistoryError as e:
            m.history_errors.inc()
            log.error("%s (syncing goes on)", e)

    def _snapshot(self, result: CycleResult, source_rows: list[dict[str, Any]]) -> Snapshot:
        snap = Snapshot(sources=source_rows)
        applied = {id(a.decision): a for a in result.applied}
        for name, pool in self.policy.pools.items():
            pp = result.plan.pools.get(name)
            for ref in pool.features:
                report = result.reports.get(ref.source)
                if report is None or not report.up:
                    continue
                for f in report.features:
                    if f.feature == ref.feature and (ref.vendor in (None, f.vendor)):
                        snap.features.append(
                            {
                                "pool": name,
                                "feature": f.feature,
                                "server": ref.source,
                                "total": f.total,
                                "in_use": f.in_use,
                                "reserved": f.reserved,
                                "queued": f.queued,
                                "expires": f.expires,
                            }
                        )
            if pp is None:
                continue
            if pp.figures is not None:
                fig = pp.figures
                snap.pools.append(
                    {
                        "pool": name,
                        "farm_use": fig.farm_use,
                        "external": fig.external,
                        "reserve": fig.reserve,
                        "headroom": fig.headroom,
                    }
                )
            jps = [jp for jp in result.jobs if jp.pool == name]
            if jps:
                snap.jobs.append(
                    {
                        "pool": name,
                        "jobs": sum(len(jp.jobs) for jp in jps),
                        "demand": sum(jp.demand for jp in jps),
                        "overrides": sum(len(jp.overrides) for jp in jps),
                    }
                )
            for d in pp.decisions:
                a = applied.get(id(d))
                now_max = (
                    d.new
                    if (d.new is not None and a is not None and a.ok and not result.dry_run)
                    else d.current
                )
                snap.limits.append(
                    {
                        "pool": name,
                        "limit": d.limit_ref,
                        "max_count": now_max,
                        "target": d.target,
                        "current_count": d.current_count,
                        "exhausted": d.exhausted,
                    }
                )
        return snap

    def ready(self) -> tuple[bool, str]:
        """Ready while the last successful cycle ended less than three cycles ago, a cycle
        being the interval or, when cycles take longer, the last one's duration."""
        if self.history_lost:
            return False, "the history file was removed or replaced: restart the service"
        if self.last_ok_at is None:
            return False, "no successful cycle yet"
        age = (self.clock() - self.last_ok_at).total_seconds()
        bound = 3 * max(self.policy.interval, self.last_cycle_seconds)
        if age > bound:
            return False, f"last successful cycle ended {age:.0f}s ago (> {bound:.0f}s)"
        return True, f"ok: last successful cycle ended {age:.0f}s ago"


def resume_paused(
    dl: Deadline, ref: str, paused: tuple[str, ...]
) -> tuple[tuple[str, ...], list[str]]:
    """Reopen the queues license-sync paused on limit `ref`, from a STOP status or STOPPED.

    Returns the queues still to reopen (their resume failed) and what was done. A queue
    that reads ACTIVE, or whose association or limit is gone, is done with."""
    try:
        found = resolve_limit(ref, dl.limits())
    except DeadlineError as e:
        return paused, [f"cannot read the farm's limits: {e}"]
    if not isinstance(found, LimitState):
        return (), [f"{found}: nothing to reopen"]
    status = {a.queue_id: a.status for a in found.associations}
    still: list[str] = []
    messages = []
    for q in paused:
        if status.get(q, "ACTIVE") == "ACTIVE":
            continue
        try:
            dl.update_association(q, found.limit_id, "ACTIVE")
            messages.append(f"queue {q} resumed (was {status[q]})")
        except DeadlineError as e:
            still.append(q)
            messages.append(f"resuming queue {q} failed: {e}")
    return tuple(still), messages
