"""The simulated day: artists, jobs and their tasks, stepped `step` seconds at a time.

Every strategy runs on the same seeded world (`make_world`); a `Day` is one run of it.
An artist who finds no free license tries again every minute and gives up after ten
tries; the minutes waited are what the studio feels (`artist_minutes_lost`).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

from sync.offline.simulation.scenario import Scenario, artist_level

RETRY_EVERY = 60.0  # seconds between an artist's tries
RETRIES = 10  # tries after the first before an artist gives up


@dataclass
class Result:
    strategy: str
    denials: int = 0  # farm tasks that started and found no license (the frame fails)
    artist_denials: int = 0  # artists refused at their first try
    artist_minutes_lost: float = 0.0  # minutes artists waited for a license, served or not
    artists_gave_up: int = 0  # artists refused at every try
    refusals: int = 0  # every try an artist was refused, first or not
    log_cycles: int = 0  # cycles the server's log started: a refusal or a checkout read
    tasks_done: int = 0
    task_hours: float = 0.0  # farm work done: the durations of the tasks that finished
    preempted_task_minutes: float = 0.0  # farm work thrown away by requeued tasks
    idle_license_hours: float = 0.0
    used_license_hours: float = 0.0
    total_license_hours: float = 0.0
    writes: int = 0  # maxCount, pause and resume, requeues
    job_cap_writes: int = 0  # maxWorkerCount written (pools that share between jobs)
    job_cap_moves: int = 0  # of those, caps moved on a job already capped: not its first
    # cap, nor its original put back when it ends
    hours: float = 0.0  # how long the day ran
    series: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, max, farm, ext


@dataclass(frozen=True)
class Causal:
    """A causal bound: perfect, instant knowledge of the present and none of the future,
    acting on the farm the instant anything changes."""

    at_request: bool  # serves an artist the instant they ask, taking a task's license
    # back first (no license server does: it refuses, and the artist tries again)
    keep_free: int  # licenses kept free, re-freed (a task requeued) the instant one is taken
    race: bool  # its tasks check out `checkout_delay` after they start, as real ones do


# the causal bounds, from what no controller can beat to what a real server allows
# (docs/evaluation.md, "The ladder of bounds")
CAUSAL = {
    "causal-oracle": Causal(at_request=True, keep_free=0, race=False),
    "causal-refused": Causal(at_request=False, keep_free=0, race=False),
    "causal-h1": Causal(at_request=False, keep_free=1, race=False),
    "causal-h1-race": Causal(at_request=False, keep_free=1, race=True),
}


@dataclass
class SimJob:
    """A job on the farm: its tasks waiting, how many run, and its maxWorkerCount."""

    job_id: int
    arrived: float
    ready: deque[float]  # task durations waiting to run
    running: int = 0  # tasks started, holding a license or about to check one out
    cap: int = -1  # maxWorkerCount (-1: unlimited)

    @property
    def can_start(self) -> bool:
        return bool(self.ready) and (self.cap == -1 or self.running < self.cap)


def make_world(sc: Scenario) -> tuple[list[tuple[float, float]], list[tuple[float, list[float]]]]:
    """The seeded world every strategy shares: artist sessions and job arrivals."""
    rng = random.Random(sc.seed)
    sessions: list[tuple[float, float]] = []
    t = 0.0
    while t < sc.duration:
        # arrivals keep the expected holdings at the curve: rate = level / session length
        level = artist_level(sc, sc.start + timedelta(seconds=t))
        rate = max(level, 0.05) / sc.artists.session
        t += rng.expovariate(rate)
        if t < sc.duration and rng.random() < level / max(level, 0.05):
            sessions.append((t, t + rng.expovariate(1 / sc.artists.session)))
    jobs: list[tuple[float, list[float]]] = []
    f = sc.farm
    for _ in range(f.backlog_jobs):
        jobs.append(
            (0.0, [rng.uniform(*f.task_minutes) * 60 for _ in range(rng.randint(*f.tasks_per_job))])
        )
    t = 0.0
    while f.jobs_per_hour > 0:
        t += rng.expovariate(f.jobs_per_hour / 3600)
        if t >= sc.duration:
            break
        jobs.append(
            (t, [rng.uniform(*f.task_minutes) * 60 for _ in range(rng.randint(*f.tasks_per_job))])
        )
    return sessions, jobs


class Day:
    """One strategy's run of the world: who holds what, what waits, and the tallies."""

    def __init__(self, sc: Scenario, strategy: str):
        sessions, jobs = make_world(sc)
        self.sc = sc
        self.oracle = strategy == "oracle"
        self.causal = CAUSAL.get(strategy)
        # the oracles hold a task's license from the moment they start it (no checkout
        # race), but for the causal bound that races as the real farm does
        self.reserves = self.oracle or (self.causal is not None and not self.causal.race)
        self.res = Result(strategy, hours=sc.duration / 3600)
        self.steps = int(sc.duration / sc.step)
        self.artist_q = deque(sorted(sessions))
        self.job_q = deque(sorted(jobs, key=lambda j: j[0]))
        self.jobs: dict[int, SimJob] = {}  # the jobs with tasks left, oldest first
        self.arrivals = 0  # jobs arrived so far: the next one's id
        self.artists_end: list[float] = []  # heap of artist session ends (holding)
        # heaps of the tasks started, (when, duration, job id): checking a license out at
        # `when`, or holding one until `when`
        self.pending: list[tuple[float, float, int]] = []
        self.holding: list[tuple[float, float, int]] = []
        self.waiting: list[tuple[float, float, int, float]] = []  # heap: artists refused:
        # (next try, first refused, tries so far, session length)
        # what the license server said, by step: t, artists, farm. No status tool lists
        # an artist it refused who tries again (lmstat and rlmstat list a queued request
        # only, from a client that asked to queue): only the log shows them
        self.history: deque[tuple[float, int, int]] = deque()
        delay_steps = max(1, int(sc.sync.count_delay / sc.step))
        self.running_hist: deque[int] = deque(maxlen=delay_steps + 1)
        self.paused = False  # the limit's queue stopped: Deadline starts nothing on it
        # when the server's log first showed news since the last cycle looked: an artist
        # refused, or one whose checkout left fewer free than the pool keeps (`kept_free`)
        self.news_at: float | None = None
        self.kept_free = 0  # reserve + headroom at the last cycle; 0: checkouts are no news
        # what the last cycle left artists once the farm fills its limit, and what artists
        # took since (out less in): the service's `Room` and its glances' tally
        self.room = 0
        self.taken = 0
        # the oracle: licenses artists (and tasks it scheduled) hold, by step
        self.busy = _busy(sc, sessions, self.steps) if self.oracle else []

    def tick(self, t: float) -> int:
        """Artists come and go, tasks finish or reach their checkout, jobs arrive; returns
        the tasks running (holding or about to check out)."""
        sc, res = self.sc, self.res
        self._artists_move(t)
        while self.holding and self.holding[0][0] <= t:
            _, duration, job = heapq.heappop(self.holding)
            self._ended(job)
            res.tasks_done += 1
            res.task_hours += duration / 3600
        while self.pending and self.pending[0][0] <= t:
            _, duration, job = heapq.heappop(self.pending)
            # the bounds without the race reserved this license when they started the task
            if self.reserves or len(self.artists_end) + len(self.holding) < sc.total:
                heapq.heappush(self.holding, (t + duration, duration, job))
            else:
                res.denials += 1  # started, found no license: the frame fails, retried
                self._requeue(job, duration)
        while self.job_q and self.job_q[0][0] <= t:
            arrived, tasks = self.job_q.popleft()
            self.jobs[self.arrivals] = SimJob(self.arrivals, arrived, deque(tasks))
            self.arrivals += 1
        artists, farm = len(self.artists_end), len(self.holding)
        running = farm + len(self.pending)
        self.running_hist.append(running)
        self.history.append((t, artists, farm))
        while self.history and self.history[0][0] < t - sc.sync.tool_latency - sc.step:
            self.history.popleft()
        return running

    def _artists_move(self, t: float) -> None:
        """Artists whose checkouts end let go; new ones and those retrying ask again."""
        while self.artists_end and self.artists_end[0] <= t:
            heapq.heappop(self.artists_end)
            self.taken -= 1
        while self.artist_q and self.artist_q[0][0] <= t:
            start, end = self.artist_q.popleft()
            self._artist(t, end - start, t, 0, end)
        while self.waiting and self.waiting[0][0] <= t:
            _, first, tries, length = heapq.heappop(self.waiting)
            self._artist(t, length, first, tries)

    @property
    def ready(self) -> bool:
        """Whether any task waits to run."""
        return any(j.ready for j in self.jobs.values())

    def _next_job(self) -> SimJob | None:
        """The job Deadline starts a task of next: the oldest under its maxWorkerCount (a
        queue's default scheduling, priority then submission order; all jobs here share a
        priority)."""
        return next((j for j in self.jobs.values() if j.can_start), None)

    def _start(self, job: SimJob, checkout: float) -> None:
        """`job`'s next task started, checking its license out at `checkout`."""
        job.running += 1
        heapq.heappush(self.pending, (checkout, job.ready.popleft(), job.job_id))

    def _ended(self, job_id: int) -> None:
        job = self.jobs[job_id]
        job.running -= 1
        if not job.ready and not job.running:
            del self.jobs[job_id]
            # the service puts a finished job's original maxWorkerCount back
            self.res.job_cap_writes += job.cap != -1

    def _requeue(self, job_id: int, duration: float) -> None:
        """A task back in its job's queue, first to run again."""
        job = self.jobs[job_id]
        job.running -= 1
        job.ready.appendleft(duration)

    def _free(self) -> int:
        """Licenses the server has free now: a causal bound's task holds its license from
        its start unless it races; the clairvoyant one's starts leave artists room."""
        reserving = self.causal is not None and not self.causal.race
        farm = len(self.holding) + (len(self.pending) if reserving else 0)
        return self.sc.total - len(self.artists_end) - farm

    def _artist(self, t: float, length: float, first: float, tries: int, end: float = 0.0) -> None:
        """An artist asks for a license: served, told to try again in a minute, or gone.
        A causal bound acts the instant it sees them (`_causal_acts`)."""
        res = self.res
        if self.causal and self.causal.at_request and self._free() < 1:
            self._requeue_youngest(t)
        if self._free() > 0:
            heapq.heappush(self.artists_end, end if tries == 0 else t + length)
            res.artist_minutes_lost += (t - first) / 60
            self.taken += 1
            if self.kept_free and self.room - self.taken < self.kept_free:
                self.news_at = t if self.news_at is None else self.news_at
        elif tries < RETRIES:
            res.artist_denials += tries == 0
            res.refusals += 1
            self.news_at = t if self.news_at is None else self.news_at
            heapq.heappush(self.waiting, (t + RETRY_EVERY, first, tries + 1, length))
        else:
            res.refusals += 1
            res.artists_gave_up += 1
            res.artist_minutes_lost += (t - first) / 60
        if self.causal:
            self._causal_acts(t)

    def _causal_acts(self, t: float) -> None:
        """A causal bound that cannot serve at request time frees a license the instant
        an artist is refused (they get it at their next try) and, keeping some free,
        requeues a task the instant an artist takes one of those. Free as the server
        says: a racing task about to check out is not counted, and may take the license
        kept free (the race's cost)."""
        assert self.causal is not None
        wanted = self.causal.keep_free + len(self.waiting)
        while self._free() < wanted:
            if self.causal.race:  # only a task holding a license gives one back now
                if not self.preempt(t, 1, math.inf, starting=False):
                    return
            elif not self._requeue_youngest(t):
                return

    @property
    def artists_wanting(self) -> int:
        """Artists holding a license or waiting to try again: what they want now."""
        return len(self.artists_end) + len(self.waiting)

    def keep_room(self, max_count: int) -> None:
        """What a cycle leaves artists once the farm fills its limit (none while its
        queue is stopped): measured against the pool's `kept_free` until the next one."""
        claim = 0 if self.paused else max_count
        farm = max(claim, len(self.holding) + len(self.pending))
        self.room, self.taken = self.sc.total - len(self.artists_end) - farm, 0

    def seen(self) -> tuple[int, int, int]:
        """(artists, farm) as the license server said `tool_latency` ago, and Deadline's
        currentCount, `count_delay` late."""
        _, artists, farm = self.history[0]
        return artists, farm, self.running_hist[0]

    def _requeue_youngest(self, t: float) -> bool:
        """The youngest task starting or holding a license, back in the queue; False
        when the farm runs none."""
        return self.preempt(t, 1, math.inf) > 0

    def preempt(self, t: float, n: int, younger_than: float, starting: bool = True) -> int:
        """Requeue the `n` youngest tasks that have run less than `younger_than`: those
        holding a license and, `starting`, those yet to check theirs out (the service
        picks runs by their start, from the sessions API); a license held comes back
        now, the work so far is lost."""
        delay = self.sc.farm.checkout_delay
        runs = [
            (end - length, self.holding, (end, length, job)) for end, length, job in self.holding
        ]
        if starting:
            runs += [
                (at - delay, self.pending, (at, length, job)) for at, length, job in self.pending
            ]
        runs.sort(key=lambda r: r[0], reverse=True)
        chosen = [r for r in runs if t - r[0] < younger_than][:n]
        for start, heap, entry in chosen:
            heap.remove(entry)
            self._requeue(entry[2], entry[1])
            self.res.preempted_task_minutes += (t - start) / 60
        heapq.heapify(self.holding)
        heapq.heapify(self.pending)
        return len(chosen)

    def start_tasks(self, i: int, t: float, running: int, max_count: int) -> None:
        """Deadline starts what the limit and the workers allow."""
        if self.oracle:
            self._oracle_starts(i, t, running)
            return
        cap = math.inf if max_count == -1 else max_count
        while not self.paused and running < cap and running < self.sc.farm.workers:
            job = self._next_job()
            if job is None:
                return
            self._start(job, t + self.sc.farm.checkout_delay)
            running += 1

    def _oracle_starts(self, i: int, t: float, running: int) -> None:
        # knows every artist session of the day: starts a task only where its license
        # stays free for the task's whole run, so no artist is ever turned away for it
        # (the race is the world's: its tasks too check out `checkout_delay` late)
        dt, delay = self.sc.step, self.sc.farm.checkout_delay
        while running < self.sc.farm.workers:
            job = self._next_job()
            if job is None:
                return
            first = i + 1 + int(delay / dt)
            span = range(first, min(self.steps, first + 1 + int(job.ready[0] / dt)))
            if any(self.busy[k] >= self.sc.total for k in span):
                break
            for k in span:
                self.busy[k] += 1
            self._start(job, t + delay)
            running += 1

    def account(self, i: int, t: float, max_count: int) -> None:
        """License-hours used and idle while tasks wait; a point of the plot every 5 min."""
        sc, res = self.sc, self.res
        farm = len(self.holding)
        in_use = len(self.artists_end) + farm
        hours = sc.step / 3600
        res.used_license_hours += in_use * hours
        res.total_license_hours += sc.total * hours
        if self.ready and sc.total - in_use > 0:
            res.idle_license_hours += (sc.total - in_use) * hours
        if i % max(1, int(300 / sc.step)) == 0:
            res.series.append((t, max_count, farm, len(self.artists_end)))


def _busy(sc: Scenario, sessions: list[tuple[float, float]], steps: int) -> list[int]:
    busy = [0] * (steps + 2)
    for start, end in sessions:
        for k in range(int(start / sc.step), min(steps + 2, int(end / sc.step) + 1)):
            busy[k] += 1
    return busy
