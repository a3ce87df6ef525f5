"""`license-sync simulate`: a day of artists and farm jobs sharing one license pool,
run under several strategies on the same seeded world (a discrete-time simulation).

The world: artists check licenses out and in on a daily curve; jobs arrive with tasks
that check a license out `checkout_delay` after they start (the check-to-checkout race:
a task that finds no license then fails, a *denial*, and is retried); Deadline starts a
task only while the limit's running tasks are below its maxCount, and reports
currentCount `count_delay` late; the sync polls every `interval` and sees the license
server `tool_latency` late.

Strategies: `static` (a hand-set limit), `naive` (maxCount = total − in_use +
currentCount at every poll), `license-sync` (the real planner with the scenario's
policy) and `oracle` (instant, perfect knowledge: the upper bound).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sync.errors import PolicyError
from sync.planner import LimitMemory, LimitState, SourceState, plan_pool
from sync.policy import Duration, Pool
from sync.report import Checkout, Feature, Report

STRATEGIES = ("static", "naive", "license-sync", "oracle")
FARM = "farm-" + "0" * 32


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Artists(_M):
    base: float = Field(2, ge=0, description="licenses artists hold at night")
    peak: float = Field(20, ge=0, description="licenses artists hold at the peak")
    peak_hours: str = "09:00-19:00"
    session: Duration = Field(2700, description="mean checkout length")
    days: str = "mon-fri"


class FarmModel(_M):
    workers: int = Field(60, ge=1)
    jobs_per_hour: float = Field(4, ge=0)
    tasks_per_job: tuple[int, int] = (20, 80)
    task_minutes: tuple[float, float] = (3, 12)
    checkout_delay: Duration = 20.0
    backlog_jobs: int = Field(3, ge=0, description="jobs waiting at the start")


class SyncModel(_M):
    interval: Duration = 60.0
    tool_latency: Duration = 2.0
    count_delay: Duration = 30.0


class Outage(_M):
    start: Duration  # seconds from the start of the run
    end: Duration


class Scenario(_M):
    name: str
    seed: int = 1
    start: datetime = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
    duration: Duration = 86400.0
    step: Duration = 10.0
    total: int = Field(ge=1)
    artists: Artists = Artists()
    farm: FarmModel = FarmModel()
    sync: SyncModel = SyncModel()
    static_limit: int = Field(ge=1)
    policy: dict[str, Any] = {}
    outages: list[Outage] = []


def load_scenario(path: str | Path) -> Scenario:
    try:
        data = yaml.safe_load(Path(path).read_text())
        return Scenario.model_validate(data)
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"cannot read scenario {str(path)!r}: {e}") from e
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, er['loc']))}: {er['msg']}" for er in e.errors())
        raise PolicyError(f"scenario {str(path)!r} is invalid: {msgs}") from e


def scenario_pool(sc: Scenario) -> Pool:
    """The scenario's policy as a pool of the real policy model."""
    return Pool.model_validate(
        {
            "limit": "amount.sim",
            "features": [{"source": "sim", "feature": "lic"}],
            "farm_selector": {"hosts": ["^render-"]},
            **sc.policy,
        }
    )


@dataclass
class Result:
    strategy: str
    denials: int = 0
    artist_denials: int = 0
    tasks_done: int = 0
    idle_license_hours: float = 0.0
    used_license_hours: float = 0.0
    total_license_hours: float = 0.0
    writes: int = 0
    series: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, max, farm, ext

    @property
    def utilisation(self) -> float:
        return (
            self.used_license_hours / self.total_license_hours if self.total_license_hours else 0.0
        )


def _artist_level(sc: Scenario, when: datetime) -> float:
    from sync.policy import parse_days, parse_hours

    a = sc.artists
    start, end = parse_hours(a.peak_hours)
    if when.weekday() not in parse_days(a.days):
        return a.base
    h = when.hour + when.minute / 60
    s, e = start.hour + start.minute / 60, end.hour + end.minute / 60
    ramp = 1.0
    if h < s - ramp or h >= e + ramp:
        return a.base
    if h < s:
        return a.base + (a.peak - a.base) * (h - (s - ramp)) / ramp
    if h >= e:
        return a.peak - (a.peak - a.base) * (h - e) / ramp
    return a.peak


def _world(sc: Scenario) -> tuple[list[tuple[float, float]], list[tuple[float, list[float]]]]:
    """The seeded world every strategy shares: artist sessions and job arrivals."""
    rng = random.Random(sc.seed)
    sessions: list[tuple[float, float]] = []
    t = 0.0
    while t < sc.duration:
        # arrivals keep the expected holdings at the curve: rate = level / session length
        level = _artist_level(sc, sc.start + timedelta(seconds=t))
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


def run(sc: Scenario, strategy: str) -> Result:
    """Simulate the scenario under one strategy."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: {', '.join(STRATEGIES)}")
    sessions, jobs = _world(sc)
    res = Result(strategy)
    pool = scenario_pool(sc) if strategy == "license-sync" else None
    memory: dict[tuple[str, str], LimitMemory] = {}
    last_good: datetime | None = None
    dt = sc.step
    steps = int(sc.duration / dt)
    artist_q = deque(sorted(sessions))
    job_q = deque(sorted(jobs, key=lambda j: j[0]))
    ready: deque[float] = deque()  # task durations waiting to run
    artists_end: list[float] = []  # heap of artist session ends (holding)
    pending: list[tuple[float, float]] = []  # heap: (checkout time, duration)
    holding: list[tuple[float, int]] = []  # heap: (end time, 1)
    max_count = sc.static_limit if strategy == "static" else sc.total
    history: deque[tuple[float, int, int, int]] = deque()  # t, artists, farm, running
    next_poll = 0.0
    delay_steps = max(1, int(sc.sync.count_delay / dt))
    running_hist: deque[int] = deque(maxlen=delay_steps + 1)

    busy = [0] * (steps + 2)  # oracle: licenses artists (and scheduled tasks) hold, by step
    if strategy == "oracle":
        for start, end in sessions:
            for k in range(int(start / dt), min(steps + 2, int(end / dt) + 1)):
                busy[k] += 1

    for i in range(steps):
        t = (i + 1) * dt
        now = sc.start + timedelta(seconds=t)
        # artists come and go; one who finds no free license goes without
        while artists_end and artists_end[0] <= t:
            heapq.heappop(artists_end)
        farm_holding = len(holding)
        while artist_q and artist_q[0][0] <= t:
            start, end = artist_q.popleft()
            if len(artists_end) + farm_holding < sc.total:
                heapq.heappush(artists_end, end)
            else:
                res.artist_denials += 1
        # farm tasks finish, or reach their checkout
        while holding and holding[0][0] <= t:
            heapq.heappop(holding)
            res.tasks_done += 1
        while pending and pending[0][0] <= t:
            _, duration = heapq.heappop(pending)
            # the oracle reserved this license when it started the task
            if strategy == "oracle" or len(artists_end) + len(holding) < sc.total:
                heapq.heappush(holding, (t + duration, 1))
            else:
                res.denials += 1  # started, found no license: the frame fails, retried
                ready.appendleft(duration)
        while job_q and job_q[0][0] <= t:
            ready.extend(job_q.popleft()[1])
        artists = len(artists_end)
        farm = len(holding)
        running = farm + len(pending)
        running_hist.append(running)
        history.append((t, artists, farm, running))
        while history and history[0][0] < t - sc.sync.tool_latency - dt:
            history.popleft()
        outage = any(o.start <= t < o.end for o in sc.outages)

        # the sync decides
        old = max_count
        if strategy == "oracle":
            max_count = max(1, sc.total - artists)
        elif t >= next_poll:
            next_poll = t + sc.sync.interval
            seen = history[0]  # what the license server said tool_latency ago
            current_count = running_hist[0]  # Deadline's delayed currentCount
            if strategy == "naive" and not outage:
                in_use = seen[1] + seen[2]
                max_count = max(1, sc.total - in_use + current_count)
            elif strategy == "license-sync":
                assert pool is not None
                if outage:
                    report = Report("flexlm", False, errors=("Cannot connect (scenario)",))
                else:
                    cos = (
                        Checkout(
                            "artist", "ws", None, None, None, None, None, None, seen[1], None, None
                        ),
                        Checkout(
                            "render",
                            "render-1",
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            seen[2],
                            None,
                            None,
                        ),
                    )
                    report = Report(
                        "flexlm",
                        True,
                        features=(
                            Feature(None, "lic", None, sc.total, seen[1] + seen[2], checkouts=cos),
                        ),
                    )
                    last_good = now
                limit = LimitState(FARM, "limit-sim", "sim", "amount.sim", max_count, current_count)
                new_memory: dict[tuple[str, str], LimitMemory] = {}
                pp = plan_pool(
                    "sim",
                    pool,
                    FARM,
                    {"sim": SourceState(report, last_good)},
                    {(FARM, "amount.sim"): limit},
                    memory,
                    now,
                    new_memory,
                )
                memory = new_memory
                d = pp.decisions[0]
                if d.new is not None:
                    max_count = d.new
        if max_count != old and strategy != "oracle":
            res.writes += 1

        # Deadline starts what the limit and the workers allow
        cap = math.inf if max_count == -1 else max_count
        if strategy == "oracle":
            # knows every artist session of the day: starts a task only where its license
            # stays free for the task's whole run, so no artist is ever turned away for it
            # (the race is the world's: its tasks too check out `checkout_delay` late)
            delay = sc.farm.checkout_delay
            while ready and running < sc.farm.workers:
                duration = ready[0]
                first = i + 1 + int(delay / dt)
                span = range(first, min(steps, first + 1 + int(duration / dt)))
                if any(busy[k] >= sc.total for k in span):
                    break
                ready.popleft()
                for k in span:
                    busy[k] += 1
                heapq.heappush(pending, (t + delay, duration))
                running += 1
        while strategy != "oracle" and ready and running < cap and running < sc.farm.workers:
            duration = ready.popleft()
            heapq.heappush(pending, (t + sc.farm.checkout_delay, duration))
            running += 1
        farm = len(holding)
        in_use = len(artists_end) + farm
        free = sc.total - in_use
        hours = dt / 3600
        res.used_license_hours += in_use * hours
        res.total_license_hours += sc.total * hours
        if ready and free > 0:
            res.idle_license_hours += free * hours
        if i % max(1, int(300 / dt)) == 0:
            res.series.append((t, max_count, farm, len(artists_end)))
    return res


def format_table(results: list[Result]) -> str:
    head = [
        "strategy",
        "denials",
        "idle lic-h (farm waiting)",
        "utilisation",
        "tasks done",
        "% of oracle",
        "limit writes",
        "artists turned away",
    ]
    oracle = next((r for r in results if r.strategy == "oracle"), None)
    rows = []
    for r in results:
        pct = (
            f"{100 * r.tasks_done / oracle.tasks_done:.1f}%"
            if oracle and oracle.tasks_done
            else "—"
        )
        rows.append(
            [
                r.strategy,
                str(r.denials),
                f"{r.idle_license_hours:.1f}",
                f"{100 * r.utilisation:.1f}%",
                str(r.tasks_done),
                pct,
                "—" if r.strategy == "oracle" else str(r.writes),
                str(r.artist_denials),
            ]
        )
    return _table(head, rows)


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def run_days(sc: Scenario, strategies: list[str], days: int) -> dict[str, list[Result]]:
    """Each strategy on `days` seeded days: the scenario's seed, then seed + 1, …"""
    worlds = [sc.model_copy(update={"seed": sc.seed + d}) for d in range(days)]
    return {s: [run(w, s) for w in worlds] for s in strategies}


@dataclass(frozen=True)
class Days:
    """A strategy's results over several seeded days, added up."""

    days: int
    denials: int
    days_with_denials: int
    tasks_mean: float
    idle_mean: float
    artist_denials: int
    shares: tuple[float, ...]  # % of the oracle's tasks, a day each; () without an oracle

    def share(self, unit: str = "") -> str:
        """`mean (min-max)` of the shares, or — without an oracle."""
        if not self.shares:
            return "—"
        s = self.shares
        return f"{sum(s) / len(s):.1f}{unit} ({min(s):.1f}-{max(s):.1f})"


def summarise(results: list[Result], oracle: list[Result] | None = None) -> Days:
    """Add up a strategy's days; `oracle`: the oracle's results on the same days."""
    n = len(results)
    shares: tuple[float, ...] = ()
    if oracle and all(o.tasks_done for o in oracle):
        shares = tuple(
            100 * r.tasks_done / o.tasks_done for r, o in zip(results, oracle, strict=True)
        )
    return Days(
        days=n,
        denials=sum(r.denials for r in results),
        days_with_denials=sum(1 for r in results if r.denials),
        tasks_mean=sum(r.tasks_done for r in results) / n,
        idle_mean=sum(r.idle_license_hours for r in results) / n,
        artist_denials=sum(r.artist_denials for r in results),
        shares=shares,
    )


def format_days(by_strategy: dict[str, list[Result]]) -> str:
    """One row a strategy, over all the days: one day's luck is not a policy's quality."""
    head = [
        "strategy",
        "days",
        "denials",
        "days with denials",
        "tasks done (mean)",
        "% of oracle (mean, min-max)",
        "idle lic-h (mean)",
        "artists turned away",
    ]
    oracle = by_strategy.get("oracle")
    rows = []
    for strategy, results in by_strategy.items():
        d = summarise(results, oracle)
        rows.append(
            [
                strategy,
                str(d.days),
                str(d.denials),
                str(d.days_with_denials),
                f"{d.tasks_mean:.0f}",
                d.share("%"),
                f"{d.idle_mean:.1f}",
                str(d.artist_denials),
            ]
        )
    return _table(head, rows)


def plot(results: list[Result], sc: Scenario, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PolicyError(
            "--plot needs matplotlib: pip install 'deadline-license-sync[plot]'"
        ) from e
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 2.6 * len(results)), sharex=True)
    if len(results) == 1:
        axes = [axes]
    for ax, r in zip(axes, results, strict=True):
        hours = [t / 3600 for t, *_ in r.series]
        ax.plot(hours, [m for _, m, _, _ in r.series], label="maxCount", drawstyle="steps-post")
        ax.plot(hours, [f for _, _, f, _ in r.series], label="farm holds")
        ax.plot(hours, [a for _, _, _, a in r.series], label="artists hold")
        ax.axhline(sc.total, color="grey", lw=0.8, ls="--", label="total")
        ax.set_title(
            f"{r.strategy}: {r.denials} denials, {r.tasks_done} tasks, "
            f"{r.idle_license_hours:.0f} idle license-hours",
            fontsize=9,
        )
        ax.set_ylabel("licenses")
    axes[0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("hours from start")
    fig.suptitle(sc.name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
