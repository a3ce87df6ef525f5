"""The service: one cycle is observe → reconcile → act → record, and nothing else orders
them (docs/design.md, "The cycle"). This module holds what lives across cycles — the
policy, the clients, the memory — and no arithmetic."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sync.cycle.act import Outcome, Writer
from sync.cycle.around import named, say_changes
from sync.cycle.audit import SetupWatch
from sync.cycle.health import Health
from sync.cycle.memory import Durable, MemoryStore
from sync.cycle.observe import Observer
from sync.cycle.record import CycleResult, record
from sync.cycle.reload import PolicyWatcher
from sync.edges.answers import Budget
from sync.edges.deadline import Deadline
from sync.edges.history import History
from sync.edges.lease import Lease
from sync.edges.metrics import Metrics
from sync.edges.sources import Source, source_for
from sync.law.reconcile import Plan, carry, reconcile
from sync.law.state import Memory, Observed
from sync.policy import FarmConfig, LoadedPolicy, Policy
from sync.values.errors import HistoryError

log = logging.getLogger("license_sync")

Clock = Callable[[], datetime]
DeadlineFactory = Callable[[FarmConfig], Deadline]
# plans a cycle makes at most while jobs wait to be read as they are now: the second plan
# rarely asks for more (only when a job read anew moves the shares of others)
CONFIRM_ROUNDS = 2
# seconds a cycle's calls have, at the least (docs/operations.md, "A cycle over its
# budget"): a 100,000-job cold start reads its steps in ≈ 30 s a cycle
MIN_CYCLE_BUDGET = 120.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Service:
    """Holds what lives across cycles: the policy, clients, sources and memory."""

    def __init__(
        self,
        loaded: LoadedPolicy,
        *,
        deadline_factory: DeadlineFactory,
        metrics: Metrics | None = None,
        history: History | None = None,
        clock: Clock = utcnow,
        dry_run: bool = False,
        source_factory: Callable[[str, Any], Source] = source_for,
        watch_policy: bool = True,
        policy_quiet: float = 2.0,
        adopt: bool = False,
        monotonic: Callable[[], float] | None = None,
        cycle_budget: float | None = None,
        durable: Durable | None = None,
        lease: Lease | None = None,
    ):
        self.deadline_factory = deadline_factory
        self.budget = Budget()  # every farm's calls in a cycle share it
        self.redaction_key = os.urandom(16)  # hashes artists' names in the history
        self._cycle_budget = cycle_budget
        # ages for /healthz and /readyz: the wall clock can step back (NTP, a VM resumed);
        # a test's injected clock stands in for both
        self.health = Health(
            monotonic or (time.monotonic if clock is utcnow else lambda: clock().timestamp())
        )
        self.metrics = metrics or Metrics()
        self.history = history
        self.clock = clock
        self.dry_run = dry_run
        self.source_factory = source_factory
        self.watcher = PolicyWatcher(loaded, self.metrics, policy_quiet) if watch_policy else None
        self.store = MemoryStore(history, adopt=adopt, durable=durable)
        self.memory: Memory = self.store.load()
        self.lease = lease  # with replicas: this one writes while it holds it
        self.led = lease is None  # whether it held it at the last cycle
        # the table the lease is on, as the gauge says it (a new one takes a restart)
        self.lease_table = loaded.policy.state.table or ""
        self.observer = Observer(history)
        self.writer = Writer(
            self.deadline, self.store, self.metrics, unadopted=self.memory.unadopted
        )
        self.writer.lease = lease
        self.writer.lease_margin = loaded.policy.state.lease.margin
        self._say_leader(self.led)
        self.history_lost = False
        self.displaced = False  # another instance writes to the history at our path
        self.around_said: dict[str, str] = {}  # each pool's use around its limits, as logged
        self.setup = SetupWatch(self.metrics)  # the farms' setup audited at start and reload
        self._install(loaded)
        self.metrics.reloads.labels("ok").inc()

    # -- the policy ---------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def policy_quiet(self) -> float:
        return self.watcher.quiet if self.watcher else 0.0

    @policy_quiet.setter
    def policy_quiet(self, seconds: float) -> None:
        if self.watcher:
            self.watcher.quiet = seconds

    @property
    def reload_pending(self) -> bool:
        return bool(self.watcher and self.watcher.requested)

    def request_reload(self) -> None:
        """SIGHUP: read the policy at the next cycle, the file is said to be ready."""
        if self.watcher:
            self.watcher.requested = True

    def _install(self, loaded: LoadedPolicy) -> None:
        self.loaded = loaded
        self.sources = {n: self.source_factory(n, c) for n, c in loaded.policy.sources.items()}
        self._deadlines: dict[str, Deadline] = {}
        self._deadlines_lock = threading.Lock()  # farms are read at once; a session is not
        # the last cycle read new jobs' steps after its writes: `run` starts the next cycle
        # at once, so a cold start caps every job within seconds, not intervals
        self.catching_up = False
        self.setup.due = True  # a new policy may name other limits: audit them again
        self.metrics.set_policy(loaded.sha)
        self.metrics.interval.set(loaded.policy.interval)
        if self.history is not None:  # retention follows the policy; the path needs a restart
            self.history.keep = loaded.policy.history.keep

    def maybe_reload(self) -> bool:
        candidate = self.watcher.check() if self.watcher else None
        if candidate is not None:
            self._install(candidate)
        return candidate is not None

    def deadline(self, farm_id: str) -> Deadline:
        with self._deadlines_lock:
            d = self._deadlines.get(farm_id)
            if d is None:
                d = self._deadlines[farm_id] = self.deadline_factory(self._farm(farm_id))
                d.budget = self.budget
            return d

    def _farm(self, farm_id: str) -> FarmConfig:
        """The policy's entry for the farm, or the one the history kept when the policy no
        longer names it (`restore` puts back what we wrote there too)."""
        if (f := self.policy.find_farm(farm_id)) is not None:
            return f
        log.warning("farm %s is not in the policy: reached as the history knew it", farm_id)
        try:
            return FarmConfig.model_validate({**self.store.farms.get(farm_id, {}), "id": farm_id})
        except ValueError:  # a record this version cannot read: the environment's region
            return FarmConfig(id=farm_id)

    def _remember_farms(self, now: datetime) -> None:
        farms = {f.id: f.model_dump(exclude={"id"}) for f in self.policy.farms}
        try:
            self.store.remember_farms(farms, now)
        except HistoryError as e:
            log.warning("the policy's farms not kept in the history: %s", e)

    # -- writing --------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.writer.stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self.writer.stopping = value  # SIGTERM: no new write starts

    # -- one cycle ------------------------------------------------------------------------------

    def observe_and_plan(self, now: datetime | None = None) -> tuple[Observed, Plan]:
        """Read everything and plan, writing nothing (`plan`, `explain`). The jobs whose
        write or record change would rest on a search answer are read again as they are
        now and planned anew (docs/design.md, "Trust no single read"); what still waits
        after CONFIRM_ROUNDS is held for the next cycle."""
        now = now or self.clock()
        observed = self.observer.observe(self.policy, self.sources, self.deadline, self.memory, now)
        plan = reconcile(self.policy, observed, self.memory, now)
        for _ in range(CONFIRM_ROUNDS):
            if not plan.unconfirmed:
                break
            observed = self.observer.confirm(observed, plan.unconfirmed, self.deadline)
            plan = reconcile(self.policy, observed, self.memory, now)
        self.observer.keep_rooms(self.policy, plan.pools)
        return named(self.policy, observed, plan.pools, self.deadline, now), plan

    @property
    def cycle_budget(self) -> float:
        """Seconds a cycle's Deadline calls have in all: two intervals, at the least
        MIN_CYCLE_BUDGET. What is left after it is not sent; the next cycle starts anew."""
        return self._cycle_budget or max(2 * self.policy.interval, MIN_CYCLE_BUDGET)

    def run_cycle(self, now: datetime | None = None) -> CycleResult:
        """One full cycle. Never raises for a source, API or history failure."""
        now = now or self.clock()  # the wall clock, read once for the cycle
        self.health.cycle_began()
        self.maybe_reload()
        self.budget.start(self.cycle_budget)
        try:
            result = self._cycle(now)
        finally:
            self.budget.stop()
        self.health.cycle_ended(result.ok)
        return result

    def _cycle(self, now: datetime) -> CycleResult:
        t0 = time.monotonic()  # how long it takes, as the histogram shows it
        leading = self.leading()
        if not leading:
            return self._waiting(now, t0)
        if not self.dry_run:
            self._remember_farms(now)
        observed, plan = self.observe_and_plan(now)
        say_changes(observed, plan.pools, self.around_said)
        lost = self._check_history()
        write = not self.dry_run and not self._taken_over()
        outcome = self.writer.act(plan, now, limits=write, jobs=write and not lost)
        failed = [a.decision.key for a in outcome.applied if not a.ok]
        self.memory = carry(plan, failed, outcome.originals, outcome.stamps)
        # the limits are written: now the steps a cold start still lacks, for the next
        # cycle (not once SIGTERM came: the next cycle is another process's)
        caught_up, unread_errors = (
            (0, [])
            if self.stopping
            else self.observer.catch_up_steps(observed, self.deadline, self.memory)
        )
        self.catching_up = caught_up > 0
        errors = list(plan.errors) + outcome.errors + unread_errors
        if lost:
            errors.append("history removed or replaced: job caps not written")
        over = self.budget.spent
        if over:
            errors.append(
                f"the cycle went over its budget of {self.cycle_budget:.0f}s: the calls "
                "left were not sent (docs/operations.md, 'A cycle over its budget')"
            )
        result = CycleResult(
            now, observed, plan, outcome, errors, time.monotonic() - t0, self.dry_run, over
        )
        self._save_memory(now)
        record(
            result,
            self.policy,
            self.loaded.sha,
            self.history,
            self.metrics,
            self.clock(),
            self.redaction_key,
        )
        return result

    def _waiting(self, now: datetime, t0: float) -> CycleResult:
        """A replica in waiting reads its license servers only, as an exporter does, and
        records that: the writer reads the farms (reading them twice buys nothing and
        spends Deadline's quotas), and what it writes is the writer's to say."""
        view = self.policy.model_copy(update={"pools": {}, "farms": []})
        observed = self.observer.observe(view, self.sources, self.deadline, self.memory, now)
        plan = reconcile(view, observed, self.memory, now)
        result = CycleResult(now, observed, plan, Outcome(), [], time.monotonic() - t0, True)
        sha, clock = self.loaded.sha, self.clock()
        record(result, view, sha, self.history, self.metrics, clock, self.redaction_key)
        return result

    def audit_setup(self) -> None:
        """The farms' setup, audited after the first cycle and after each reload (`serve`
        runs it between cycles: its reads are no cycle's, and its findings no cycle's
        errors). Never raises for an API failure."""
        if not self.stopping and self.led:  # a replica in waiting reads no farm
            self.budget.start(self.cycle_budget)
            try:
                self.setup.check(self.policy, self.deadline)
            finally:
                self.budget.stop()

    def _save_memory(self, now: datetime) -> None:
        try:
            self.store.save_limits(self.memory.limits, now)
        except HistoryError as e:
            self.metrics.history_errors.inc()
            log.error("%s (syncing goes on)", e)

    def _check_history(self) -> bool:
        """A history removed or replaced under us holds the originals no more: stop capping."""
        if self.store.unreadable:
            self.history_lost = True
            self.metrics.history_lost.set(1)
            return True
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
        return lost

    def beat(self) -> bool:
        """The lease renewed, or waited for (serve.py's heartbeat, beside the cycles);
        `license_sync_leader` says at once what it found."""
        assert self.lease is not None
        held = self.lease.beat()
        self._say_leader(held)
        return held

    def leading(self) -> bool:
        """Whether this replica writes: always without a lease, while it holds it with
        one. Taking the lease over reads the memory anew: the last holder wrote it."""
        if self.lease is None:
            return True
        held = self.lease.held
        if held and not self.led:
            self.memory = self.store.load()
            self.writer.unadopted = self.memory.unadopted
            log.info("this replica writes to the farms now, from the memory the last one kept")
        elif self.led and not held:
            self.metrics.lease_lost.inc()
            log.error("this replica lost the writer's lease: it writes nothing from now on")
        self.led = held
        self._say_leader(held)
        return held

    def _say_leader(self, held: bool) -> None:
        self.metrics.leader.labels(self.lease_table).set(int(held))

    def _taken_over(self) -> bool:
        """Another instance writes to the history now at our path: two writers would flap
        the limits and strip each other's caps, so this one writes nothing at all."""
        taken = self.history is not None and self.history.taken_over()
        if taken and not self.displaced:
            log.error(
                "another license-sync holds the history %s now: this one writes nothing; "
                "stop it (docs/operations.md, 'The history was lost')",
                self.history.path if self.history else "",
            )
        self.displaced = taken
        return taken

    def since_cycle_start(self) -> float:
        return self.health.since_cycle_start()

    def alive(self) -> tuple[bool, str]:
        return self.health.alive(self.policy.interval)

    def ready(self) -> tuple[bool, str]:
        """Ready while the last successful cycle ended less than three cycles ago, a cycle
        being the interval or, when cycles take longer, the last one's duration."""
        if self.displaced:
            return False, "another license-sync writes to the history now: stop this one"
        if self.store.unreadable:
            return False, f"{self.store.unreadable}: repair or move it aside, then restart"
        if self.history_lost:
            return False, "the history file was removed or replaced: restart the service"
        ok, why = self.health.ready(self.policy.interval)
        if self.lease is not None and not self.led:
            why = (
                f"waiting: another replica holds the writer's lease, this one writes nothing; {why}"
            )
        return ok, why
