"""The write half of a cycle: a `Plan` onto the farms (docs/design.md, "What is never lost").

Every write is made the same way (`_make`): what it says it overwrites (`original()`) is
put on disk first — a limit's maxCount (best effort: it only serves `restore --limits`),
the queues we pause and each job's maxWorkerCount (strict: not on disk, not sent) — then
it is sent, counted and logged. A failed write is reported and tried again next cycle;
nothing is half-applied silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, cast

from sync.cycle.memory import MemoryStore
from sync.cycle.writes import (
    WRITES,
    JobCaps,
    JobRecords,
    Keep,
    LimitOriginal,
    MaxCount,
    Nothing,
    Pause,
    PausedQueues,
    Resume,
    TaskRequeue,
    Write,
)
from sync.cycle.writes.job_caps import Answers
from sync.edges.deadline import GONE, Deadline
from sync.edges.lease import Lease
from sync.edges.metrics import Metrics
from sync.law.jobplan import FarmJobs
from sync.law.limits import requeues
from sync.law.reasons import text
from sync.law.reconcile import Plan, Reopen, Requeue
from sync.policy.models import MIN_WRITE_SECONDS
from sync.values.domain import (
    Decision,
    JobChange,
    JobOriginal,
    Reason,
    Stamp,
    Why,
)
from sync.values.errors import DeadlineError, HistoryError

log = logging.getLogger("license_sync")


class Where(Protocol):
    """Whose write it is, for its log line: a decision, a preemption."""

    @property
    def pool(self) -> str: ...
    @property
    def limit_ref(self) -> str: ...


@dataclass(frozen=True)
class _Named:
    pool: str
    limit_ref: str


@dataclass
class Applied:
    """What became of one limit's decision."""

    decision: Decision
    ok: bool = True
    error: str | None = None
    stamps: dict[str, Stamp] = field(default_factory=dict)  # queue → the stamp our pause left


@dataclass
class Outcome:
    applied: list[Applied] = field(default_factory=list)
    job_changes: list[JobChange] = field(default_factory=list)
    preempted: list[TaskRequeue] = field(default_factory=list)
    originals: dict[str, JobOriginal] = field(default_factory=dict)  # records after the writes
    errors: list[str] = field(default_factory=list)
    # per limit, the stamp each of our pauses left on its queue (read back after the write)
    stamps: dict[tuple[str, str], dict[str, Stamp]] = field(default_factory=dict)


class Writer:
    """Writes plans. One cycle writes at a time (the scheduler runs one); SIGTERM sets
    `stopping` and no new write starts (serve.py waits for the one in flight)."""

    def __init__(
        self,
        deadline_for: Callable[[str], Deadline],
        store: MemoryStore,
        metrics: Metrics,
        unadopted: frozenset[str] = frozenset(),
    ):
        self.unadopted = unadopted  # as last recorded
        self.deadline_for = deadline_for  # farm id → its Deadline view
        self.store = store
        self.metrics = metrics
        self.stopping = False  # set on SIGTERM: no new write starts
        self.requeued: dict[str, datetime] = {}  # task id → when we requeued it (releasing)
        self.lease: Lease | None = None  # with replicas: every write checks it first
        self.lease_margin = 0.0
        for w in WRITES:  # every kind's series from the first scrape: rate() needs a zero
            metrics.changes.labels(w.kind)

    def act(self, plan: Plan, now: datetime, *, limits: bool, jobs: bool) -> Outcome:
        """Write what `plan` says: limits and reopened queues if `limits`, job caps if `jobs`.
        Each limit, preemption and farm on its own: whatever one of them raises is an
        error of that one, and what landed elsewhere is recorded all the same."""
        out = Outcome(originals=dict(plan.memory.originals))
        if not limits:
            out.applied = [Applied(d) for d in plan.changes]
        else:
            self._limits(plan, now, out)
        if jobs:
            self._unadopted(plan, now)
            for fj in plan.farms_jobs:
                if not fj.empty and not self.stopping:
                    self._each(f"farm {fj.farm_id}: job caps", out, self.jobs, fj, out, now)
        out.errors += [a.error for a in out.applied if a.error]
        return out

    def _limits(self, plan: Plan, now: datetime, out: Outcome) -> None:
        """The limits' writes, the queues of limits that left the policy, preemption."""
        out.applied = [self._guarded(self._limit, d, plan, now) for d in plan.changes if d.limit_id]
        out.stamps = {a.decision.key: a.stamps for a in out.applied if a.stamps}
        for r in plan.reopen:
            out.errors += self._reopen(r, now)
        for p in plan.preempts:
            if not self.stopping:
                what = f"pool {p.pool} limit {p.limit_ref}: preemption"
                self._each(what, out, self._preempt, p, now, out)

    def _guarded(
        self,
        fn: Callable[[Decision, Plan, datetime], Applied],
        d: Decision,
        plan: Plan,
        now: datetime,
    ) -> Applied:
        try:
            return fn(d, plan, now)
        except Exception as e:  # one limit's surprise is that limit's error, not the cycle's
            log.exception("pool %s limit %s: write failed", d.pool, d.limit_ref)
            return Applied(d, False, f"pool {d.pool} limit {d.limit_ref}: {type(e).__name__}: {e}")

    @staticmethod
    def _each(what: str, out: Outcome, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as e:  # one unit's surprise is that unit's error, not the cycle's
            log.exception("%s failed", what)
            out.errors.append(f"{what}: {type(e).__name__}: {e}")

    # -- limits and queues ------------------------------------------------------------------

    def _make(self, w: Write, dl: Deadline, now: datetime, at: Where, reason: str = "") -> object:
        """One write, made as every kind is: what it overwrites on disk first (a strict
        keep the disk refuses raises HistoryError, and nothing is sent), then sent,
        counted and logged. Returns the call's answer."""
        self._keep(w.original(), now)
        return self._send_counted(w, dl, at, reason)

    def _send_counted(self, w: Write, dl: Deadline, at: Where, reason: str = "") -> object:
        answer = self._leased(w, dl)
        if landed := w.landed(answer):
            self.metrics.changes.labels(w.kind).inc(landed)
        if words := w.words():
            said = f"{words}: {reason}" if reason else words
            whose = f"pool {at.pool} limit {at.limit_ref}" if at.pool else f"limit {at.limit_ref}"
            extra = {"pool": at.pool, "limit": at.limit_ref, "reason": reason}
            log.log(w.level, "%s: %s", whose, said, extra=extra)
        return answer

    def _leased(self, w: Write, dl: Deadline) -> object:
        """Send `w` — under a lease, only with time left on it, and cut `margin` before
        the lease could pass to another replica: Deadline's writes take no precondition,
        so a write must end while its writer is still the only one (docs/design.md, "Two
        replicas")."""
        if self.lease is None:
            return w.send(dl)
        left = self.lease.remaining() - self.lease_margin
        if left < MIN_WRITE_SECONDS:
            raise DeadlineError(
                f"{left + self.lease_margin:.1f}s left on the lease: not sent (the next "
                "cycle writes it if this replica still holds the lease)",
                code="LeaseShort",
            )
        before = dl.call_deadline
        dl.call_deadline = min(before, left)
        try:
            return w.send(dl)
        finally:
            dl.call_deadline = before

    def _keep(self, keep: Keep, now: datetime) -> None:
        """Put on disk what a write overwrites, before it is sent."""
        match keep:
            case LimitOriginal(farm_id, limit_id, value):
                try:  # best effort: limits keep syncing when the history cannot be written
                    self.store.remember_limit_original(farm_id, limit_id, value, now)
                except HistoryError as e:
                    self.metrics.history_errors.inc()
                    log.error("original maxCount of %s/%s not recorded: %s", farm_id, limit_id, e)
            case PausedQueues(limits):
                self.store.save_limits(limits, now)
            case JobRecords(records):
                self.store.save_jobs(records, now)
            case Nothing():
                pass

    def _limit(self, d: Decision, plan: Plan, now: datetime) -> Applied:
        if self.stopping:
            return Applied(d, False, None)  # stopping: the next start plans afresh
        a = Applied(d)
        dl = self.deadline_for(d.farm_id)
        reason = text(d.why)
        assert d.limit_id is not None
        try:
            if d.new is not None:
                self._make(MaxCount(d.farm_id, d.limit_id, d.current, d.new), dl, now, d, reason)
            for q in d.pause:
                pause = Pause(d.farm_id, q, d.limit_id, plan.memory.limits)
                self._make(pause, dl, now, d, reason)
                self._stamp(dl, d, q, a)
            for q in d.resume:
                self._make(Resume(d.farm_id, q, d.limit_id), dl, now, d, reason)
        except (DeadlineError, HistoryError) as e:
            a.ok, a.error = False, f"pool {d.pool} limit {d.limit_ref}: {e}"
            log.error("%s", a.error, extra={"pool": d.pool, "limit": d.limit_ref, "reason": str(e)})
        return a

    def _stamp(self, dl: Deadline, d: Decision, q: str, a: Applied) -> None:
        """Read back who wrote the pause, to tell a person's later stop from ours. Without
        it the queue is ours until it reads ACTIVE, as before."""
        assert d.limit_id is not None
        try:
            if (got := dl.association_stamp(q, d.limit_id)) is not None:
                a.stamps[q] = got
        except DeadlineError as e:
            log.warning(
                "pool %s limit %s: queue %s paused; its stamp not read: %s",
                d.pool,
                d.limit_ref,
                q,
                e,
            )

    def _reopen(self, r: Reopen, now: datetime) -> list[str]:
        """Reopen the queues of a limit that left the policy; returns what failed."""
        still = []
        for q in r.queues:
            try:
                w = Resume(r.farm_id, q, r.limit_id)
                left = _Named("", r.limit_ref)  # its pool is gone from the policy
                self._make(w, self.deadline_for(r.farm_id), now, left, "it left the policy")
            except DeadlineError as e:
                still.append(q)
                log.error(
                    "limit %s left the policy: resuming queue %s failed: %s", r.limit_ref, q, e
                )
        if not still:
            return []
        return [f"limit {r.limit_ref}: queues it paused not reopened yet: {', '.join(still)}"]

    def _preempt(self, p: Requeue, now: datetime, out: Outcome) -> None:
        """Requeue the youngest tasks holding the limit, none that has run `younger_than`
        or longer, until what the farm holds (less what runs we requeued are giving back)
        is down to the target: licenses come back to artists now rather than as tasks end."""
        dl = self.deadline_for(p.farm_id)
        self.requeued = {
            k: at for k, at in self.requeued.items() if (now - at).total_seconds() < p.release
        }
        try:
            holding = dl.holding(list(p.jobs), p.limit_id)
            chosen, chunks = requeues(holding, p, set(self.requeued), now)
            if chunks:
                self.metrics.preempt_skipped.labels("chunked").inc(chunks)
                log.warning(
                    "pool %s limit %s: %d running chunk(s) name no task and are not requeued",
                    p.pool,
                    p.limit_ref,
                    chunks,
                )
            if holding.errors:
                self.metrics.preempt_skipped.labels("unread").inc(len(holding.errors))
            for task in chosen:
                w = TaskRequeue(p.pool, p.farm_id, task, now)
                self._make(w, dl, now, p)
                self.requeued[task.task_id] = now
                out.preempted.append(w)
        except DeadlineError as e:
            out.errors.append(f"pool {p.pool} limit {p.limit_ref}: preemption: {e}")
            log.error("pool %s limit %s: preemption: %s", p.pool, p.limit_ref, e)

    # -- jobs ---------------------------------------------------------------------------------

    def _unadopted(self, plan: Plan, now: datetime) -> None:
        """Jobs a new history found already capped are left alone until `--adopt`."""
        left = plan.memory.unadopted
        if left == self.unadopted:
            return
        if left - self.unadopted:
            log.error(
                "a new history, and %d job(s) already capped (%s…): these caps may be ours "
                "from a history that was lost, so they are left alone; run with --adopt to "
                "take their current values as their originals",
                len(left - self.unadopted),
                ", ".join(sorted(left - self.unadopted)[:3]),
            )
        try:
            self.store.save_unadopted(left, now)
            self.unadopted = left
        except HistoryError as e:
            log.error("the jobs left alone until --adopt are not recorded: %s", e)

    def jobs(self, fj: FarmJobs, out: Outcome, now: datetime) -> None:
        """One farm's caps and restores. Records go to disk first; per-item answers after."""
        errors: list[str] = []
        self._jobs(fj, out, errors, now)
        for e in errors:
            log.error("farm %s: %s", fj.farm_id, e)
            out.errors.append(f"farm {fj.farm_id}: {e}")

    def _jobs(self, fj: FarmJobs, out: Outcome, errors: list[str], now: datetime) -> None:
        if not self.store.writable:
            if fj.writes:
                errors.append("job caps not written: no history to record the originals in")
            return
        caps = JobCaps(fj.farm_id, fj.writes, fj.records)
        try:  # the records on disk first, also with nothing to send: what landed, who took over
            self._keep(caps.original(), now)
        except HistoryError as e:
            # no original on disk, no write: a crash now must not lose what we would change
            errors.append(f"job caps not written: {e}")
            return
        out.originals.update({r.job_id: r for r in fj.records})
        for rec in fj.taken_over:
            log.warning("job %s was changed by someone else; left alone", rec.job_id)
            taken: Why = (Reason.of("job_taken_over", value=None),)
            out.job_changes.append(JobChange(now, rec, rec.last_written, None, "manual", taken))
        for job_id, why in fj.drops:
            log.info("job %s: %s; its record is dropped", job_id, text(why))
        answers = self._send(caps, errors)
        out.job_changes += self._settle(fj, answers, out, errors, now)

    def _send(self, caps: JobCaps, errors: list[str]) -> dict[str, tuple[str, str]]:
        """Each write's answer by job: a chunk whose call failed is `NotSent`, item by item,
        and the other chunks' answers stand."""
        if not caps.writes:
            return {}
        try:
            dl = self.deadline_for(caps.farm_id)
            answer = self._send_counted(caps, dl, _Named("", ""))  # no line: per job, recorded
        except DeadlineError as e:  # refused before anything was sent
            return {w.job_id: ("NotSent", str(e)) for w in caps.writes} | {"": ("", str(e))}
        answers, failures = cast(Answers, answer)
        errors += [f"BatchUpdateJob failed (retried next cycle): {e}" for e in failures]
        return answers

    def _settle(
        self,
        fj: FarmJobs,
        answers: dict[str, tuple[str, str]],
        out: Outcome,
        errors: list[str],
        now: datetime,
    ) -> list[JobChange]:
        """Per-item outcomes: a write landed, the job is gone, or the record waits."""
        dropped = [job_id for job_id, _ in fj.drops]
        done, changes = [], []
        for w in fj.writes:
            err = answers.get(w.job_id)
            rec = out.originals[w.job_id]
            if err is not None and err[0] == GONE:
                dropped.append(w.job_id)
            elif err is not None:
                if err[0] != "NotSent":
                    errors.append(f"job {w.job_id}: {err[0]}: {err[1]} (retried next cycle)")
            elif w.restore:
                dropped.append(w.job_id)
                changes.append(JobChange(now, rec, w.old, w.value, "restore", w.why))
            else:
                rec = replace(rec, last_written=w.value, pending=None, pool=w.pool)
                out.originals[w.job_id] = rec
                done.append(rec)
                changes.append(JobChange(now, rec, w.old, w.value, "cap", w.why))
        try:
            self.store.save_jobs(done, now)
            self.store.drop_jobs(dropped)
        except HistoryError as e:
            errors.append(f"history: {e}")
        for job_id in dropped:
            out.originals.pop(job_id, None)
        return changes
