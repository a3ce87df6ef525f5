"""Who sets maxCount in the simulated day, and how.

- `static`: a hand-set limit; `naive`: maxCount = total − in_use + currentCount at every
  poll;
- `license-sync`: the real control law (`limits.plan_pool`) with the scenario's pool (or
  a real policy's); `license-sync-preempt`: the same with preemption on;
- `license-sync-denials` (and `-preempt`): the same law also reading the server's log, as
  the service does with a source's `log:` — the artists it refused and has not served
  since count as wanting a license, and a refusal starts a cycle `log_latency` after it
  (docs/design.md, "Denials in the law");
- `causal-oracle`: perfect, instant knowledge of the present and none of the future;
- `oracle`: knows every artist session of the day (clairvoyant: the upper bound).

The gap between the two oracles is what no controller that cannot see the future can
close; the gap to the causal oracle is ours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sync.law.allocation import allocate
from sync.law.jobplan import cap_to_write
from sync.law.learn import Profile, learn
from sync.law.limits import plan_pool
from sync.law.state import SourceState
from sync.licenses import Checkout, Feature, Report
from sync.offline.simulation import BOUNDS, STRATEGIES
from sync.offline.simulation.scenario import Scenario, scenario_pool
from sync.offline.simulation.world import Day, Result, make_world
from sync.policy import Pool
from sync.values.domain import ACTIVE, PAUSED, Association, JobDemand, LimitMemory, LimitState

FARM = "farm-" + "0" * 32


def run(sc: Scenario, strategy: str, pool: Pool | None = None) -> Result:
    """Simulate the scenario under one strategy; `pool`: a real policy's pool instead of
    the scenario's."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: {', '.join(STRATEGIES)}")
    day = Day(sc, strategy)
    sync = None
    if strategy.startswith("license-sync"):
        preempt, reads_log = strategy.endswith("-preempt"), "-denials" in strategy
        sync = LicenseSync(sc, pool, preempt=preempt, reads_log=reads_log)
    max_count = sc.static_limit if strategy == "static" else sc.total
    next_poll = 0.0
    for i in range(day.steps):
        t = (i + 1) * sc.step
        running = day.tick(t)
        old = max_count
        if strategy == "oracle":
            max_count = max(1, sc.total - len(day.artists_end))
        elif day.causal is not None:
            # no license to spare: it stops the queue rather than start a task to fail
            free = sc.total - day.artists_wanting - day.causal.keep_free
            max_count, day.paused = max(1, free), free < 1
        elif t >= next_poll or _kicked(day, sync, t):
            if t >= next_poll:  # a cycle the log starts leaves the interval as it was
                next_poll = t + sc.sync.interval
            else:
                day.res.log_cycles += 1
            day.news_at = None
            max_count = _poll(sc, strategy, day, sync, t, max_count)
            day.keep_room(max_count)
        if max_count != old and strategy not in BOUNDS:
            day.res.writes += 1
        day.start_tasks(i, t, running, max_count)
        day.account(i, t, max_count)
    return day.res


def _kicked(day: Day, sync: LicenseSync | None, t: float) -> bool:
    """An artist's refusal, or a checkout that leaves fewer free than the pool keeps,
    read from the log, starts a cycle `log_latency` after it."""
    if sync is None or not sync.reads_log or day.news_at is None:
        return False
    return t >= day.news_at + day.sc.sync.log_latency


def _poll(
    sc: Scenario, strategy: str, day: Day, sync: LicenseSync | None, t: float, max_count: int
) -> int:
    outage = any(o.start <= t < o.end for o in sc.outages)
    artists, farm, current_count = day.seen()
    if strategy == "naive" and not outage:
        return max(1, sc.total - (artists + farm) + current_count)
    if sync is None:
        return max_count
    now = sc.start + timedelta(seconds=t)
    seen = None if outage else (artists, farm)
    # the log shows who it refused and has not served since: those still trying
    waiting = len(day.waiting) if sync.reads_log and not outage else 0
    new, preempt = sync.decide(now, seen, current_count, max_count, waiting)
    # the log shows an artist's checkout too: one leaving less free than this is news
    day.kept_free = sync.kept_free if sync.reads_log and sc.sync.checkout_news else 0
    paused = sync.queue_status != ACTIVE
    day.res.writes += paused != day.paused  # a pause or a resume written
    day.paused = paused
    if preempt:
        day.res.writes += day.preempt(t, preempt, sync.pool.preempt.younger_than)
    if sync.pool.jobs.policy != "none":
        share_jobs(day, sync.pool, new)
    return new


def share_jobs(day: Day, pool: Pool, capacity: int) -> None:
    """Each job's maxWorkerCount for a maxCount of `capacity`, by the service's own
    allocation and its rule for when a cap is written, counted as written."""
    jobs = [j for j in day.jobs.values() if j.ready or j.running]
    demands = [
        JobDemand(
            str(j.job_id),
            "queue-sim",
            f"job-{j.job_id}",
            "td",
            day.sc.start + timedelta(seconds=j.arrived),
            50,
            1,
            len(j.ready) + j.running,
            j.cap,
        )
        for j in jobs
    ]
    for job, a in zip(jobs, allocate(capacity, demands, pool.jobs), strict=True):
        if a.cap is not None and (cap := cap_to_write(a, job.cap, job.cap != -1)) is not None:
            day.res.job_cap_writes += 1
            day.res.job_cap_moves += job.cap != -1
            job.cap = cap


def run_days(
    sc: Scenario, strategies: list[str], days: int, pool: Pool | None = None
) -> dict[str, list[Result]]:
    """Each strategy on `days` seeded days: the scenario's seed, then seed + 1, …"""
    worlds = [sc.model_copy(update={"seed": sc.seed + d}) for d in range(days)]
    return {s: [run(w, s, pool) for w in worlds] for s in strategies}


class LicenseSync:
    """The real control law, fed what the license server and Deadline say."""

    def __init__(
        self,
        sc: Scenario,
        pool: Pool | None = None,
        preempt: bool = False,
        reads_log: bool = False,
    ):
        self.sc = sc
        self.pool = _sim_pool(pool) if pool is not None else scenario_pool(sc)
        if preempt:
            on = self.pool.preempt.model_copy(update={"enabled": True})
            self.pool = self.pool.model_copy(update={"preempt": on})
        self.reads_log = reads_log  # the source's log is read too (the -denials strategies)
        self.memory: dict[tuple[str, str], LimitMemory] = {}
        # the farm's one queue on the limit: `on_exhausted: pause` stops it (no task starts)
        self.queue_status = ACTIVE
        self.last_good: datetime | None = None
        self.kept_free = 0
        self.profile = learned_profile(sc, self.pool)

    def decide(
        self,
        now: datetime,
        seen: tuple[int, int] | None,
        current: int,
        max_count: int,
        waiting: int = 0,
    ) -> tuple[int, int]:
        """(the maxCount to write, tasks to requeue); `seen` None: the server is down;
        `waiting`: artists the server's log refused and has not served since."""
        if seen is None:
            report = Report("flexlm", False, errors=("Cannot connect (scenario)",))
        else:
            report = Report("flexlm", True, features=(self._feature(*seen),))
            self.last_good = now
        queue = (Association("queue-sim", self.queue_status),)
        limit = LimitState(FARM, "limit-sim", "sim", "amount.sim", max_count, current, queue)
        pp, self.memory = plan_pool(
            "sim",
            self.pool,
            FARM,
            {"sim": SourceState(report, self.last_good, waiting={"lic": waiting})},
            {(FARM, "amount.sim"): limit},
            self.memory,
            now,
            self.profile,
            interval=self.sc.sync.interval,
        )
        if pp.figures is not None:  # what the pool keeps free for artists, as last read
            self.kept_free = pp.figures.reserve + pp.figures.headroom
        d = pp.decisions[0]
        self.queue_status = PAUSED if d.pause else ACTIVE if d.resume else self.queue_status
        return (d.new if d.new is not None else max_count), d.preempt

    def _feature(self, artists: int, farm: int) -> Feature:
        def held(user: str, host: str, n: int) -> Checkout:
            return Checkout(user, host, None, None, None, None, None, None, n, None, None)

        checkouts = (held("artist", "ws", artists), held("render", "render-1", farm))
        return Feature(None, "lic", None, self.sc.total, artists + farm, checkouts=checkouts)


def _sim_pool(pool: Pool) -> Pool:
    """A real policy's pool on the simulation's one feature and limit."""
    return Pool.model_validate(
        {
            **pool.model_dump(exclude={"limit", "limits", "farm", "features", "farm_selector"}),
            "limit": "amount.sim",
            "features": [{"source": "sim", "feature": "lic"}],
            "farm_selector": {"hosts": ["^render-"]},
        }
    )


def learned_profile(sc: Scenario, pool: Pool) -> Profile | None:
    """What the service would have learned from its history: the artists' use on the
    seeded days before this one (`weeks` of them), a point every sync interval."""
    spec = pool.reserve.learn
    if spec is None:
        return None
    points: list[tuple[datetime, int]] = []
    step = sc.sync.interval
    for back in range(spec.weeks, 0, -1):  # each earlier seed is the same day, weeks ago
        sessions, _ = make_world(sc.model_copy(update={"seed": sc.seed - back}))
        day = sc.start - timedelta(weeks=back)
        for k in range(int(sc.duration / step)):
            held = sum(1 for start, end in sessions if start <= k * step < end)
            points.append((day + timedelta(seconds=k * step), held))
    return learn(points, spec.drain, spec.quantile, spec.samples, pool.reserve.learned_tz)
