"""Who sets maxCount in the simulated day, and how: `static`, `naive`, `license-sync` (the
real control law, `limits.plan_pool`) and `oracle` (the upper bound)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sync.domain import LimitMemory, LimitState
from sync.limits import SourceState, plan_pool
from sync.report import Checkout, Feature, Report
from sync.simulation.scenario import Scenario, scenario_pool
from sync.simulation.world import Day, Result

STRATEGIES = ("static", "naive", "license-sync", "oracle")
FARM = "farm-" + "0" * 32


def run(sc: Scenario, strategy: str) -> Result:
    """Simulate the scenario under one strategy."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: {', '.join(STRATEGIES)}")
    day = Day(sc, strategy)
    sync = LicenseSync(sc) if strategy == "license-sync" else None
    max_count = sc.static_limit if strategy == "static" else sc.total
    next_poll = 0.0
    for i in range(day.steps):
        t = (i + 1) * sc.step
        running = day.tick(t)
        outage = any(o.start <= t < o.end for o in sc.outages)
        old = max_count
        if strategy == "oracle":
            max_count = max(1, sc.total - len(day.artists_end))
        elif t >= next_poll:
            next_poll = t + sc.sync.interval
            artists, farm, current_count = day.seen()
            if strategy == "naive" and not outage:
                max_count = max(1, sc.total - (artists + farm) + current_count)
            elif sync is not None:
                now = sc.start + timedelta(seconds=t)
                max_count = sync.decide(now, artists, farm, current_count, max_count, outage)
        if max_count != old and strategy != "oracle":
            day.res.writes += 1
        day.start_tasks(i, t, running, max_count)
        day.account(i, t, max_count)
    return day.res


def run_days(sc: Scenario, strategies: list[str], days: int) -> dict[str, list[Result]]:
    """Each strategy on `days` seeded days: the scenario's seed, then seed + 1, …"""
    worlds = [sc.model_copy(update={"seed": sc.seed + d}) for d in range(days)]
    return {s: [run(w, s) for w in worlds] for s in strategies}


class LicenseSync:
    """The real control law, fed what the license server and Deadline say."""

    def __init__(self, sc: Scenario):
        self.sc = sc
        self.pool = scenario_pool(sc)
        self.memory: dict[tuple[str, str], LimitMemory] = {}
        self.last_good: datetime | None = None

    def decide(
        self, now: datetime, artists: int, farm: int, current: int, max_count: int, outage: bool
    ) -> int:
        if outage:
            report = Report("flexlm", False, errors=("Cannot connect (scenario)",))
        else:
            report = Report("flexlm", True, features=(self._feature(artists, farm),))
            self.last_good = now
        limit = LimitState(FARM, "limit-sim", "sim", "amount.sim", max_count, current)
        pp, self.memory = plan_pool(
            "sim",
            self.pool,
            FARM,
            {"sim": SourceState(report, self.last_good)},
            {(FARM, "amount.sim"): limit},
            self.memory,
            now,
        )
        d = pp.decisions[0]
        return d.new if d.new is not None else max_count

    def _feature(self, artists: int, farm: int) -> Feature:
        def held(user: str, host: str, n: int) -> Checkout:
            return Checkout(user, host, None, None, None, None, None, None, n, None, None)

        checkouts = (held("artist", "ws", artists), held("render", "render-1", farm))
        return Feature(None, "lic", None, self.sc.total, artists + farm, checkouts=checkouts)
