"""Control quality: what the studio feels, over seeded days of every scenario.

For each scenario the package ships (sync/offline/simulation/scenarios/), every strategy
over `--days` seeded days (seeds 1..N), added up: artist-minutes lost (artists refused
try again every minute and give up after ten tries), artists who gave up, farm checkout
denials, farm task-hours, task-minutes lost to preemption, writes. Then studio-day's
targets, and its frontier: artist-minutes lost against task-hours for the settings a TD
can choose (headroom, a learned reserve,
preemption), one point a setting.

    python benchmarks/control_quality.py [--days 10] [--scenario FILE]... [--json]
                                         [--plot frontier.png]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sync.law.render import table
from sync.offline.simulation.report import Totals, format_table, plot_frontier, totals
from sync.offline.simulation.scenario import Scenario, load_scenario
from sync.offline.simulation.strategies import STRATEGIES, run_days

SCENARIOS = Path(__file__).parent.parent / "sync/offline/simulation/scenarios"
OLD_DENIALS = 26  # license-sync's farm denials over ten studio days before artists retried
LEARN = {"drain": "10m", "weeks": 4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--scenario", action="append", help="default: every scenario")
    ap.add_argument("--json", action="store_true", help="the figures for scripts")
    ap.add_argument("--plot", metavar="PNG", help="draw studio-day's frontier")
    args = ap.parse_args()
    paths = [Path(p) for p in args.scenario] if args.scenario else sorted(SCENARIOS.glob("*.yaml"))
    out: dict[str, Any] = {}
    for path in paths:
        sc = _one_day_a_week(load_scenario(path)).model_copy(update={"seed": 1})
        t0 = time.perf_counter()
        by_strategy = run_days(sc, list(STRATEGIES), args.days)
        out[path.stem] = {s: t.as_dict() for s, t in totals(by_strategy).items()}
        if not args.json:
            print(f"{sc.name}: {args.days} seeded days (seeds 1-{args.days}), "
                  f"{time.perf_counter() - t0:.1f} s\n")  # fmt: skip
            print(format_table(by_strategy) + "\n")
        if path.stem == "studio-day":
            out["studio-day targets"] = _targets(totals(by_strategy), args.json)
        points = frontier(sc, args.days)
        out[f"{path.stem} frontier"] = {k: t.as_dict() for k, t in points.items()}
        if not args.json:
            print(_frontier_table(path.stem, points) + "\n")
        if args.plot and path.stem == "studio-day":
            plot_frontier(points, f"{sc.name}, {args.days} days", args.plot)
    if args.json:
        print(json.dumps(out, indent=2))


def _one_day_a_week(sc: Scenario) -> Scenario:
    """A week-long scenario is swept one day at a time: ten days, not ten weeks."""
    return sc.model_copy(update={"duration": 86400.0}) if sc.duration > 86400 else sc


def _targets(t: dict[str, Totals], quiet: bool) -> dict[str, Any]:
    oracle, ls, pre = t["oracle"], t["license-sync"], t["license-sync-preempt"]
    bound = max(oracle.artist_minutes_lost, 10.0)
    share = (lambda x: sum(x.shares) / len(x.shares)) if oracle.shares else (lambda x: 0.0)
    checks = [
        ("artist-minutes lost <= 4x the oracle's", ls.artist_minutes_lost <= 4 * bound,
         f"{ls.artist_minutes_lost:.0f} (oracle {oracle.artist_minutes_lost:.0f})"),
        (f"farm denials <= {OLD_DENIALS} (before artists retried)",
         ls.farm_denials <= OLD_DENIALS, f"{ls.farm_denials}"),
        ("task-hours >= 90% of the oracle's", share(ls) >= 90, f"{share(ls):.1f}%"),
        ("with preemption: artist-minutes lost <= 2x the oracle's",
         pre.artist_minutes_lost <= 2 * bound, f"{pre.artist_minutes_lost:.0f}"),
        ("with preemption: task-hours >= 92% of the oracle's", share(pre) >= 92,
         f"{share(pre):.1f}%, {pre.preempted_task_minutes:.0f} task-minutes preempted"),
    ]  # fmt: skip
    if not quiet:
        for what, ok, figure in checks:
            print(f"{'MET    ' if ok else 'NOT MET'}  {what}: {figure}")
        print()
    return {what: {"met": ok, "figure": figure} for what, ok, figure in checks}


def frontier(sc: Scenario, days: int) -> dict[str, Totals]:
    """license-sync under the settings a TD chooses, beside the two oracles."""
    base = dict(sc.policy)
    variants: dict[str, dict[str, Any]] = {}
    for h in (0, 1, 2, 3):
        variants[f"headroom {h}"] = {**base, "headroom": h}
    reserve = base.get("reserve", {"default": 0})
    reserve = reserve if isinstance(reserve, dict) else {"default": reserve}
    for q in (0.5, 0.75, 0.9):
        variants[f"learned q{q:g}"] = {
            **base,
            "reserve": {**reserve, "learn": {**LEARN, "quantile": q}},
        }
    points: dict[str, Totals] = {}
    oracle = run_days(sc, ["oracle"], days)["oracle"]
    for name, policy in variants.items():
        for strategy in ("license-sync", "license-sync-preempt"):
            results = run_days(sc.model_copy(update={"policy": policy}), [strategy], days)
            label = name + (" + preempt" if strategy.endswith("preempt") else "")
            points[label] = totals({strategy: results[strategy], "oracle": oracle})[strategy]
    both = run_days(sc, ["causal-oracle", "oracle"], days)
    points.update(totals(both))
    return points


def _frontier_table(name: str, points: dict[str, Totals]) -> str:
    head = ["setting", "artist-min lost", "farm denials", "task-hours", "% of oracle",
            "preempted task-min"]  # fmt: skip
    rows = [
        [name, f"{t.artist_minutes_lost:.0f}", str(t.farm_denials), f"{t.task_hours:.0f}",
         t.share(), f"{t.preempted_task_minutes:.0f}"]
        for name, t in points.items()
    ]  # fmt: skip
    return (
        f"{name}'s frontier: license-sync under each setting (the rest of the policy as "
        "is), beside the two oracles\n" + table(head, rows)
    )


if __name__ == "__main__":
    main()
