"""The read half of a cycle: license sources and farms into one `Observed`.

Reads only; a failure is recorded in what it returns (a source down, a farm unreadable),
never raised. Holds what reads carry from one cycle to the next: when each source was
last read up, and the steps of jobs (a job's steps never change).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sync.edges.deadline import Deadline, JobLookup, resolve_limit
from sync.edges.history import History
from sync.edges.sources import Source
from sync.edges.sources.logtail import MAX_LINE, LogTail
from sync.law.denials import denials
from sync.law.learn import Profile, learn
from sync.law.limits import PoolPlan, farm_selector
from sync.law.reconcile import departed_refs
from sync.law.state import Denial, FarmRead, Memory, Observed, SourceState
from sync.licenses import Report, down_report, impossible
from sync.licenses.kinds import TOOLS
from sync.licenses.logs import LogEvent
from sync.policy import LearnedReserve, Policy, Pool, ToolSourceConfig
from sync.record import observation
from sync.values.domain import STEPS_SETTLED, JobInfo, LimitState, StepAmounts
from sync.values.errors import DeadlineError, HistoryError

log = logging.getLogger("license_sync")
T = TypeVar("T")
R = TypeVar("R")


LEARN_EVERY = timedelta(hours=1)  # a profile of weeks changes little within an hour


# New jobs whose steps a cycle reads, a farm (one ListSteps each): a few before planning,
# so that a job seen now is capped now; the rest of a cold start after the limits are
# written, for the next cycle, which `run` starts at once (docs/design.md, "Reading jobs").
STEP_BUDGET = 100
CATCH_UP_BUDGET = 2000
# a source that stays down is said once, then again at most this often with a count: a
# one-minute interval would otherwise repeat the same line 1,440 times a day
REWARN_DOWN = timedelta(minutes=10)
# how often the workers of a farm no `workers: true` selector counts are read, for the
# history to keep their hosts in clear (read_worker_hosts): workers change by the hour
REDACTION_READ = 600.0
# an artist refused is counted as waiting this long unless the log shows them served: the
# simulated artists (offline/simulation) try every minute and give up after ten tries
ARTIST_WAIT = timedelta(minutes=10)


TailKey = tuple[str, str, str, str, str | None]  # source, path, tz, kind, log format


@dataclass(frozen=True)
class Room:
    """A pool as the last cycle left it: licenses free once the farm fills its limits,
    how many it keeps free for artists (reserve and headroom), and its features as
    (source, feature)."""

    free: int
    kept: int
    features: frozenset[tuple[str, str]]


def _farms_of(policy: Policy, pools: Iterable[Pool]) -> set[str]:
    """The farms whose limits `pools` set."""
    return {t.farm for p in pools for t in p.targets(policy.default_farm) if t.farm is not None}


class Observer:
    def __init__(
        self,
        history: History | None = None,
        step_budget: int = STEP_BUDGET,
        catch_up: int = CATCH_UP_BUDGET,
    ) -> None:
        self.history = history
        self.step_budget = step_budget
        self.catch_up = catch_up
        self.last_good: dict[str, datetime] = {}
        self.last_good_report: dict[str, Report] = {}
        self.steps: dict[str, tuple[StepAmounts, ...]] = {}
        # the lifecycle status each job's steps were read in: read again when it changes
        self.steps_read_in: dict[str, str] = {}
        self.profiles: dict[str, tuple[datetime, LearnedReserve, Profile]] = {}
        self.workers: dict[str, frozenset[str]] = {}  # each farm's workers' hosts, last read
        self.workers_read: dict[str, datetime] = {}  # when each farm's were
        self.down: dict[str, _Down] = {}
        # (source, path, tz, kind, format) → its log
        self.tails: dict[TailKey, LogTail] = {}
        self.log_down: dict[TailKey, str] = {}  # a log down: why, as last said
        # source → feature → (user, host) → when their refusal was read
        self.waiting: dict[str, dict[str, dict[tuple[str, str], datetime]]] = {}
        # each pool's licenses free at the last cycle's read and kept free for artists
        self.rooms: dict[str, Room] = {}
        self.taken: dict[str, int] = {}  # by pool: what artists took since, as glances read
        self._remember_good_reads()

    def _remember_good_reads(self) -> None:
        """When each source was last read up, as the history's last cycle recorded it: a
        restart during an outage holds its pools for `stale_after` from that read, rather
        than dropping them to their floor at once."""
        if self.history is None:
            return
        try:
            if (data := self.history.get_state("observed", None)) is None:
                return  # a new history
            observed, _, _ = observation.load(data)
        except (HistoryError, observation.RecordedError) as e:
            log.info("no last good read of the sources from the history: %s", e)
            return
        for name, s in observed.sources.items():
            if s.last_good is not None:
                self.last_good[name] = s.last_good
            if s.report.up:
                self.last_good_report[name] = s.report

    def observe(
        self,
        policy: Policy,
        sources: Mapping[str, Source],
        deadline: Callable[[str], Deadline],
        memory: Memory,
        now: datetime,
    ) -> Observed:
        workers = self.read_worker_hosts(policy, deadline, now)
        states = self.read_logs(policy, self.read_sources(sources, now), now)
        farms: dict[str, FarmRead] = {}
        errors: list[str] = []
        extra = departed_refs(policy, memory)
        by_farm = _refs_by_farm(policy)
        ids = sorted({f.id for f in policy.farms} | set(by_farm))

        def read(farm_id: str) -> FarmRead:
            refs = by_farm.get(farm_id, set()) | extra.get(farm_id, set())
            return self._read_farm(policy, deadline(farm_id), farm_id, refs, memory)

        for farm_id, found in zip(ids, _each_farm(read, ids), strict=True):
            farms[farm_id] = found
            errors += [e for e in (found.error, found.jobs_error) if e is not None]
            errors += _held_errors(found)
        seen = {j.job_id for read in farms.values() for j in read.jobs or ()}
        if all(read.jobs is not None for read in farms.values()):
            self.steps = {k: v for k, v in self.steps.items() if k in seen}
            self.steps_read_in = {k: v for k, v in self.steps_read_in.items() if k in seen}
        return Observed(
            states, farms, tuple(errors), self.learned(policy, now), worker_hosts=workers
        )

    def read_worker_hosts(
        self, policy: Policy, deadline: Callable[[str], Deadline], now: datetime
    ) -> frozenset[str]:
        """The hosts of the workers of every farm a pool with `farm_selector: {workers:
        true}` syncs, read each cycle (workers come and go), and, when the history hashes
        people, of every other farm every REDACTION_READ seconds (its checkouts on the
        farm's own hosts stay in clear for `plan --against`: a worker minutes new may be
        hashed). A farm whose read fails keeps the hosts it had: a worker's name outlives
        an outage."""
        pools = policy.pools.values()
        selecting = _farms_of(
            policy, [p for p in pools if p.farm_selector and p.farm_selector.workers]
        )
        redacting = _farms_of(policy, pools) if policy.history.redact else set()
        for farm_id in sorted(selecting | redacting):
            last = self.workers_read.get(farm_id)
            # due when never read, or as long ago, or the clock stepped back past it
            due = last is None or not 0 <= (now - last).total_seconds() < REDACTION_READ
            if farm_id not in selecting and not due:
                continue
            try:
                self.workers[farm_id] = deadline(farm_id).worker_hosts()
                self.workers_read[farm_id] = now
            except DeadlineError as e:
                log.warning(
                    "farm %s: its workers' hosts not read, the last known used: %s", farm_id, e
                )
        self.workers = {f: h for f, h in self.workers.items() if f in selecting | redacting}
        return self.worker_hosts

    @property
    def worker_hosts(self) -> frozenset[str]:
        return frozenset().union(*self.workers.values())

    def learned(self, policy: Policy, now: datetime) -> dict[str, Profile]:
        """The learned reserve's profile of each pool that learns one, from the history's
        record of external use; learned again every hour or when its settings change."""
        out = {}
        for name, pool in policy.pools.items():
            spec = pool.reserve.learn
            if spec is None or self.history is None:
                continue
            cached = self.profiles.get(name)
            if cached is None or cached[1] != spec or now - cached[0] >= LEARN_EVERY:
                try:
                    points = self.history.external_use(name, now - timedelta(weeks=spec.weeks))
                except HistoryError as e:
                    log.warning("pool %s: reserve not learned: %s", name, e)
                    continue
                profile = learn(
                    points, spec.drain, spec.quantile, spec.samples, pool.reserve.learned_tz
                )
                cached = self.profiles[name] = (now, spec, profile)
            out[name] = cached[2]
        return out

    def read_sources(self, sources: Mapping[str, Source], now: datetime) -> dict[str, SourceState]:
        """Every source at once (a hung server must not hold up the others)."""
        items = list(sources.items())
        with ThreadPoolExecutor(
            max_workers=max(1, min(8, len(items))), thread_name_prefix="source"
        ) as pool:
            results = list(pool.map(_read_one, items))
        states = {}
        for name, report, seconds in results:
            if report.up:
                self.last_good[name] = now
                self.last_good_report[name] = report
                if (was := self.down.pop(name, None)) is not None:
                    log.info("source %s up again after %d read(s) down", name, was.reads)
            else:
                self._say_down(name, report, now)
            states[name] = SourceState(
                report, self.last_good.get(name), seconds, self.last_good_report.get(name)
            )
        return states

    def read_logs(
        self, policy: Policy, states: dict[str, SourceState], now: datetime
    ) -> dict[str, SourceState]:
        """What each source's log (`log:`) recorded since the last cycle, and the artists
        it refused who are still waiting. A log is followed from the service's start; a
        policy edit that keeps it keeps its place in it."""
        wanted = {
            (name, cfg.log.path, cfg.log.tz, cfg.kind, cfg.log.format): name
            for name, cfg in policy.sources.items()
            if isinstance(cfg, ToolSourceConfig) and cfg.log is not None and name in states
        }
        for key in set(self.tails) - set(wanted):
            self.tails.pop(key).close()
        out = dict(states)
        for key, name in wanted.items():
            tail = self.tails.get(key) or self.tails.setdefault(key, _tail(*key[1:]))
            before = tail.skipped
            events, error = tail.read()
            skipped = tail.skipped - before
            if skipped and before == 0:  # once a log: the counter says how often since
                log.warning(
                    "source %s: its log has lines over %d bytes (a hole a "
                    "copytruncate left, a runaway line): skipped and counted in "
                    "license_sync_log_lines_skipped_total",
                    name,
                    MAX_LINE,
                )
            if error is not None and error != self.log_down.get(key):
                log.warning("source %s: %s", name, error)  # once a new reason, not each cycle
            elif error is None and key in self.log_down:
                log.info("source %s: its log is read again", name)
            if error is None:
                self.log_down.pop(key, None)
            else:
                self.log_down[key] = error
            refused, waiting = self._refused(policy, name, events, now)
            out[name] = replace(
                out[name], refused=refused, log_error=error, waiting=waiting, log_skipped=skipped
            )
        return out

    def news_now(self, policy: Policy, now: datetime) -> str | None:
        """What in the sources' logs since the last cycle is worth a cycle now, in words,
        or None: an artist refused whom the last cycle did not count as waiting, or
        artists' checkouts leaving a pool fewer licenses free than it keeps for them
        (`squeezed`). Peeked, not taken: the cycle reads the events."""
        watching = self._watching(policy)
        news = None
        for (source, *_), tail in list(self.tails.items()):
            events = tail.peek(checkouts=bool(watching))
            if news is None and self._refusal_is_news(policy, source, events, now):
                news = f"source {source}: its log refused an artist"
            for name, (room, farm) in watching.items():
                self.taken[name] = self.taken.get(name, 0) + _artists_took(
                    events, source, room, farm
                )
        return news or self._squeezed(watching)

    def _refusal_is_news(
        self, policy: Policy, source: str, events: list[LogEvent], now: datetime
    ) -> bool:
        """An artist refused whom the last cycle did not already count as waiting (one
        refused again and again, a client retrying or a flood of 5,000 lines a second,
        starts one cycle, not one every debounce), or one served since."""
        waiting = {
            (f, u, h)
            for f, who in self.waiting.get(source, {}).items()
            for (u, h), at in who.items()
            if now - at < ARTIST_WAIT
        }
        for e in events:
            if self._denied(policy, source, e, now)[1]:
                if (e.feature, e.user, e.host) not in waiting:
                    return True
            elif e.kind == "OUT":  # served since: refused again is news
                waiting.discard((e.feature, e.user, e.host))
        return False

    def keep_rooms(self, policy: Policy, pools: Mapping[str, PoolPlan]) -> None:
        """What each pool had free as this cycle read it, and keeps free for artists
        (reserve and headroom): what the log's checkouts are measured against until the
        next cycle (`_squeezed`)."""
        self.rooms, self.taken = {}, {}
        for name, pp in pools.items():
            fig, pool = pp.figures, policy.pools.get(name)
            if fig is None or fig.total is None or pool is None:
                continue  # a source down, an uncounted pool: nothing to measure against
            kept = fig.reserve + fig.headroom
            features = frozenset((f.source, f.feature) for f in pool.features)
            # the farm may yet start tasks up to its limits: what is free once it has
            starting = max(0, _claim(pp, fig.total) - fig.farm_use)
            if kept > 0:
                self.rooms[name] = Room(fig.total - fig.in_use - starting, kept, features)

    def _watching(self, policy: Policy) -> dict[str, tuple[Room, Callable[[str, str], bool]]]:
        """The pools whose artists' checkouts a glance counts: those whose farm's own can
        be told apart (a farm_selector, or the workers' hosts known). A farm's checkout is
        no news: its limit counts it."""
        out = {}
        for name, room in self.rooms.items():
            pool = policy.pools.get(name)
            farm = farm_selector(pool, self.worker_hosts) if pool is not None else None
            if farm is not None:
                out[name] = (room, farm)
        return out

    def _squeezed(self, watching: Mapping[str, tuple[Room, object]]) -> str | None:
        for name, (room, _) in watching.items():
            taken = self.taken.get(name, 0)
            if taken > 0 and room.free - taken < room.kept:
                return (
                    f"pool {name}: artists took {taken} since the last cycle, leaving "
                    f"{room.free - taken} free of the {room.kept} it keeps"
                )
        return None

    def _refused(
        self, policy: Policy, source: str, events: list[LogEvent], now: datetime
    ) -> tuple[tuple[Denial, ...], dict[str, int]]:
        """The refusals among `events`, told apart once, and by feature the artists refused
        in the last ARTIST_WAIT whom the log has not shown checking it out since (a refused
        artist tries again, or gives up). Events in the order the log wrote them: served,
        then refused again, is waiting."""
        waiting = self.waiting.setdefault(source, {})
        refused: list[Denial] = []
        for e in events:
            found, artist = self._denied(policy, source, e, now)
            refused += found
            if artist:
                waiting.setdefault(e.feature, {})[(e.user, e.host)] = now
            elif e.kind == "OUT":
                waiting.get(e.feature, {}).pop((e.user, e.host), None)
        counts = {}
        for feature, who in waiting.items():
            who = waiting[feature] = {k: at for k, at in who.items() if now - at < ARTIST_WAIT}
            if who:
                counts[feature] = len(who)
        return tuple(refused), counts

    def _denied(
        self, policy: Policy, source: str, e: LogEvent, now: datetime
    ) -> tuple[list[Denial], bool]:
        """The refusals `e` records, and whether one is of an artist a pool counts: a
        cycle holds such an artist as waiting until the log shows them served."""
        found = denials(policy, source, [e], now, self.worker_hosts)
        return found, any(d.who == "artist" and d.pool for d in found)

    def _say_down(self, name: str, report: Report, now: datetime) -> None:
        why = "; ".join(report.errors) or "no reason"
        down = self.down.setdefault(name, _Down(now))
        down.reads += 1
        if down.warned is not None and now - down.warned < REWARN_DOWN:
            return
        down.warned = now
        if down.reads == 1:
            log.warning("source %s down: %s", name, why, extra={"source": name})
            return
        log.warning(
            "source %s still down: %d reads since %s: %s",
            name,
            down.reads,
            down.since.isoformat(timespec="seconds"),
            why,
            extra={"source": name},
        )

    def _read_farm(
        self, policy: Policy, dl: Deadline, farm_id: str, refs: set[str], memory: Memory
    ) -> FarmRead:
        try:
            found = dl.limits()
        except DeadlineError as e:
            log.error("%s", e)
            why = f"farm {farm_id} unreadable: {e}"
            return FarmRead(farm_id, {ref: why for ref in refs}, error=str(e))
        limits = {ref: resolve_limit(ref, found) for ref in refs}
        queues = _sharing_queues(policy, farm_id, limits)
        try:
            jobs, looked_up = self._jobs(dl, farm_id, queues, memory)
            steps, unread = self._steps(dl, jobs, set(memory.originals))
        except DeadlineError as e:
            log.error("farm %s: jobs not shared this cycle: %s", farm_id, e)
            why = f"farm {farm_id}: jobs not shared this cycle: {e}"
            return FarmRead(farm_id, limits, jobs_error=why)
        limits = _with_held(dl, farm_id, limits, jobs, queues)
        read = FarmRead(farm_id, limits, jobs=tuple(jobs), steps=steps, unread=unread)
        return _looked_up(read, looked_up)

    def _jobs(
        self, dl: Deadline, farm_id: str, queues: list[str], memory: Memory
    ) -> tuple[list[JobInfo], JobLookup]:
        """The jobs that can still run in `queues`, and every job we recorded on this farm
        that the search did not return (finished, requeued, moved past a page, …), as
        BatchGetJob says they are."""
        jobs = dl.search_jobs(queues) if queues else []
        seen = {j.job_id for j in jobs}
        missing = [
            (r.queue_id, job_id)
            for job_id, r in memory.originals.items()
            if r.farm_id == farm_id and job_id not in seen
        ]
        found = dl.get_jobs(missing) if missing else JobLookup({}, frozenset(), {})
        return jobs + list(found.found.values()), found

    def confirm(
        self,
        observed: Observed,
        wanted: Mapping[str, Sequence[tuple[str, str]]],
        deadline: Callable[[str], Deadline],
    ) -> Observed:
        """`observed` with the jobs of `wanted` read again as they are now (BatchGetJob
        reads the writes; a search lags them): each farm at once. A job that cannot be read
        is held as it is; a farm whose read fails holds all of them."""

        def one(farm_id: str) -> FarmRead:
            read = observed.farms[farm_id]
            try:
                found = deadline(farm_id).get_jobs(list(wanted[farm_id]))
            except DeadlineError as e:
                log.error("farm %s: jobs not confirmed, held this cycle: %s", farm_id, e)
                found = JobLookup({}, frozenset(), {j: str(e) for _, j in wanted[farm_id]})
            return _looked_up(read, found)

        ids = sorted(wanted)
        farms = dict(observed.farms)
        errors = list(observed.errors)
        for farm_id, read in zip(ids, _each_farm(one, ids), strict=True):
            errors += [e for e in _held_errors(read) if e not in errors]
            farms[farm_id] = read
        return replace(observed, farms=farms, errors=tuple(errors))

    def _steps(
        self, dl: Deadline, jobs: list[JobInfo], recorded: set[str]
    ) -> tuple[dict[str, tuple[StepAmounts, ...]], int]:
        """The steps of every job that can run, and how many are still unread, once up to
        `step_budget` new ones are read."""
        self._forget_changed(jobs)
        self._read_new(dl, jobs, recorded, self.step_budget)
        known = {j.job_id: self.steps[j.job_id] for j in jobs if j.job_id in self.steps}
        known.update(_with_activity(dl, [j for j in jobs if j.can_run], known))
        return known, sum(1 for j in jobs if j.can_run and j.job_id not in self.steps)

    def _read_new(self, dl: Deadline, jobs: Iterable[JobInfo], recorded: set[str], n: int) -> int:
        """Read the steps of up to `n` jobs whose steps are not known: the jobs we capped
        first (after a restart), then the oldest. Returns how many were read."""
        new = [(j.queue_id, j.job_id) for j in jobs if j.can_run and j.job_id not in self.steps]
        new.sort(key=lambda qj: qj[1] not in recorded)  # stable: oldest first within each
        if not new or n <= 0:
            return 0
        read = dl.step_amounts(new[:n])
        status = {j.job_id: j.lifecycle_status for j in jobs}
        cached = 0
        for job_id, steps in read.items():
            # a job still being made or updated, or that answered no step, may have steps
            # later: not cached (CreateJob is asynchronous: docs/design.md, "Reading jobs"),
            # nor counted as read (a cold start's catch-up would run again at once)
            if steps and status.get(job_id) in STEPS_SETTLED:
                self.steps[job_id] = tuple(steps)
                self.steps_read_in[job_id] = status[job_id]
                cached += 1
        return cached

    def _forget_changed(self, jobs: Iterable[JobInfo]) -> None:
        """Forget the steps of jobs whose lifecycle status moved since they were read: a
        job's steps change only through an update the job reports (UPDATE_*)."""
        for j in jobs:
            was = self.steps_read_in.get(j.job_id)
            if was is not None and was != j.lifecycle_status and j.lifecycle_status != "ARCHIVED":
                self.steps.pop(j.job_id, None)
                self.steps_read_in.pop(j.job_id, None)

    def catch_up_steps(
        self, observed: Observed, deadline: Callable[[str], Deadline], memory: Memory
    ) -> tuple[int, list[str]]:
        """After the limits are written: read up to `catch_up` more new jobs' steps a farm,
        for the next cycle. Returns how many were read, and what failed in words."""
        recorded = set(memory.originals)
        behind = [r for r in observed.farms.values() if r.unread and r.jobs is not None]

        def one(read: FarmRead) -> tuple[int, str | None]:
            try:
                return self._read_new(
                    deadline(read.farm_id), read.jobs or (), recorded, self.catch_up
                ), None
            except DeadlineError as e:
                log.error("farm %s: steps of new jobs not read: %s", read.farm_id, e)
                return 0, f"farm {read.farm_id}: steps of new jobs not read: {e}"

        done = _each_farm(one, behind)
        return sum(n for n, _ in done), [e for _, e in done if e is not None]


@dataclass
class _Down:
    """A source down since `since`: how many reads, and when it was last said."""

    since: datetime
    reads: int = 0
    warned: datetime | None = None


def _with_activity(
    dl: Deadline, jobs: list[JobInfo], known: Mapping[str, tuple[StepAmounts, ...]]
) -> dict[str, tuple[StepAmounts, ...]]:
    """The steps of each job whose steps ask for different amounts, with their active
    tasks as they are now: the job-level counts cannot tell a licensed step's work from
    the rest (docs/design.md, "Sharing a pool between jobs"). A read that fails leaves
    those jobs to the job-level counts this cycle."""
    mixed = [
        (j.queue_id, j.job_id)
        for j in jobs
        if len({frozenset(a.casefold() for a in s.amounts) for s in known.get(j.job_id, ())}) > 1
    ]
    if not mixed:
        return {}
    try:
        activity = dl.step_activity(mixed)
    except DeadlineError as e:
        log.warning("step counts of %d job(s) not read, job counts used: %s", len(mixed), e)
        return {}
    return {
        job_id: tuple(replace(s, active=counts.get(s.step_id)) for s in known[job_id])
        for job_id, counts in activity.items()
    }


def _looked_up(read: FarmRead, found: JobLookup) -> FarmRead:
    """`read` with what BatchGetJob said: jobs found replace the search's summaries, jobs
    gone leave, jobs it could not read are held; all of them count as read as they are."""
    jobs = [found.found.get(j.job_id, j) for j in read.jobs or () if j.job_id not in found.gone]
    jobs += [j for k, j in found.found.items() if k not in {x.job_id for x in read.jobs or ()}]
    for job_id, why in sorted(found.failed.items()):
        log.error("farm %s: job %s not read (%s): held as it is", read.farm_id, job_id, why)
    confirmed = (read.confirmed or frozenset()) | set(found.found) | found.gone
    return replace(
        read,
        jobs=tuple(jobs),
        held=read.held | frozenset(found.failed),
        confirmed=frozenset(confirmed),
    )


def _held_errors(read: FarmRead) -> list[str]:
    return [f"farm {read.farm_id}: job {j} not read; held as it is" for j in sorted(read.held)]


def _each_farm(fn: Callable[[T], R], farms: list[T]) -> list[R]:
    """`fn` for every farm at once, a thread each: a slow farm holds up no other."""
    with ThreadPoolExecutor(max(1, len(farms)), thread_name_prefix="farm") as pool:
        return list(pool.map(fn, farms))


def _read_one(item: tuple[str, Source]) -> tuple[str, Report, float]:
    name, src = item
    t0 = time.monotonic()
    try:
        report = src.read()
    except Exception as e:  # a reader must never raise; if one does, it is down
        log.exception("source %s raised", name)
        report = down_report(src.kind, f"reader failed: {type(e).__name__}: {e}")
    if report.up and (bad := impossible(report)):
        report = down_report(report.format, *bad, servers=report.servers)
    return name, report, time.monotonic() - t0


def _refs_by_farm(policy: Policy) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pool in policy.pools.values():
        for t in pool.targets(policy.default_farm):
            if t.farm is not None:
                out.setdefault(t.farm, set()).add(t.limit)
    return out


def _with_held(
    dl: Deadline,
    farm_id: str,
    limits: dict[str, LimitState | str],
    jobs: list[JobInfo],
    searched: list[str],
) -> dict[str, LimitState | str]:
    """The limits with what their running tasks hold now (acquiredLimits): for a pool
    without a farm_selector, its farm use, since currentCount lags and a farm's burst
    would read as artists; for one with a selector, what its hosts hold beyond it
    (docs/design.md, "Without a farm_selector", "Use around the limit"). Read worker by
    worker: a search lags new jobs by up to two minutes, and their runs would read as
    undeclared use. A role without the fleet reads has the jobs searched read job by job;
    a read that fails leaves currentCount."""
    mine = {r: st for r, st in limits.items() if isinstance(st, LimitState) and st.associations}
    if not mine:
        return limits
    try:
        held = dl.held_in_queues({q for st in mine.values() for q in _queues_of(st)})
        if held is None:
            mine, held = _held_job_by_job(dl, mine, jobs, searched)
    except DeadlineError as e:
        log.warning("farm %s: what running tasks hold not read, currentCount used: %s", farm_id, e)
        return limits
    return {**limits, **{r: replace(st, held=held.get(st.limit_id, 0)) for r, st in mine.items()}}


def _held_job_by_job(
    dl: Deadline, mine: dict[str, LimitState], jobs: list[JobInfo], searched: list[str]
) -> tuple[dict[str, LimitState], dict[str, int]]:
    """Without the fleet reads: what the searched jobs' running tasks hold, for the limits
    whose queues were all searched (the others keep currentCount)."""
    mine = {r: st for r, st in mine.items() if _queues_of(st) <= set(searched)}
    queues = {q for st in mine.values() for q in _queues_of(st)}
    running = [(j.queue_id, j.job_id) for j in jobs if j.can_run and j.queue_id in queues]
    return mine, dl.held_by_limit(running) if running else {}


def _queues_of(st: LimitState) -> set[str]:
    return {a.queue_id for a in st.associations}


def _sharing_queues(
    policy: Policy, farm_id: str, limits: Mapping[str, LimitState | str]
) -> list[str]:
    """The queues associated with the farm's limits whose pools share between jobs, may
    preempt their tasks, or have no farm_selector (what their tasks hold is read)."""
    queues: set[str] = set()
    for pool in policy.pools.values():
        if pool.jobs.policy == "none" and not pool.preempt.enabled and farm_selector(pool):
            continue
        for t in pool.targets(policy.default_farm):
            lim = limits.get(t.limit)
            if t.farm == farm_id and isinstance(lim, LimitState):
                queues.update(a.queue_id for a in lim.associations)
    return sorted(queues)


def _claim(pp: PoolPlan, total: int) -> int:
    """What the pool's limits let the farm hold after this cycle's writes: their maxCount
    (an unlimited one, the pool's total), none for a limit whose queues it pauses."""
    claim = 0
    for d in pp.decisions:
        value = d.new if d.new is not None else d.current
        if value is not None and not d.pause:
            claim += total if value == -1 else value
    return claim


def _artists_took(
    events: Iterable[LogEvent], source: str, room: Room, farm: Callable[[str, str], bool]
) -> int:
    """Licenses artists checked out of a pool's features in `events`, less those they
    checked in: the farm's own are its limit's."""
    n = 0
    for e in events:
        if (source, e.feature) in room.features and not farm(e.host, e.user):
            n += e.count if e.kind == "OUT" else -e.count if e.kind == "IN" else 0
    return n


def _tail(path: str, tz: str, kind: str, fmt: str | None) -> LogTail:
    """A log followed in the grammar the policy names, or in any its manager writes."""
    grammar = TOOLS[kind].logs[fmt] if fmt is not None else TOOLS[kind].log
    assert grammar is not None  # the policy allows a log only on a kind that reads one
    return LogTail(path, tz, grammar=grammar)
