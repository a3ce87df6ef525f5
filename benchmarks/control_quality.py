"""Control quality: what the studio feels, over seeded days of every scenario.

For each scenario the package ships (sync/offline/simulation/scenarios/), every strategy
over `--days` seeded days (seeds 1..N), added up: artist-minutes lost (artists refused
try again every minute and give up after ten tries), artists who gave up, farm checkout
denials, farm task-hours, task-minutes lost to preemption, writes. Then studio-day's
targets; then, for studio-day and fx-two-sites, the denial-driven strategies against the
targets of issue #26 and their frontier (artist-minutes lost against task-hours, one point
a setting a TD can choose: headroom, a learned reserve, on_exhausted, preemption), and
the job-cap writes an hour without and with `jobs.slack`.

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
from sync.offline.simulation.scenario import Scenario, load_scenario, one_day
from sync.offline.simulation.strategies import STRATEGIES, run_days

SCENARIOS = Path(__file__).parent.parent / "sync/offline/simulation/scenarios"
OLD_DENIALS = 26  # license-sync's farm denials over ten studio days before artists retried
LEARN = {"drain": "10m", "weeks": 4}
DENIAL_SHAPES = ("studio-day", "fx-two-sites")  # issue #26: studio-day and a shape of our own
# issue #26: artist-minutes lost within these times the causal bound
DENIAL_TARGETS = (("license-sync-denials", 2.5), ("license-sync-denials-preempt", 1.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--scenario", action="append", help="default: every scenario")
    ap.add_argument("--json", action="store_true", help="the figures for scripts")
    ap.add_argument("--plot", metavar="PNG", help="draw each shape's frontier (PNG-SHAPE.png)")
    args = ap.parse_args()
    paths = [Path(p) for p in args.scenario] if args.scenario else sorted(SCENARIOS.glob("*.yaml"))
    out: dict[str, Any] = {}
    for path in paths:
        sc = one_day(load_scenario(path)).model_copy(update={"seed": 1})
        t0 = time.perf_counter()
        by_strategy = run_days(sc, list(STRATEGIES), args.days)
        out[path.stem] = {s: t.as_dict() for s, t in totals(by_strategy).items()}
        if not args.json:
            print(f"{sc.name}: {args.days} seeded days (seeds 1-{args.days}), "
                  f"{time.perf_counter() - t0:.1f} s\n")  # fmt: skip
            print(format_table(by_strategy) + "\n")
        if path.stem == "studio-day":
            out["studio-day targets"] = _targets(totals(by_strategy), args.json)
        if path.stem not in DENIAL_SHAPES:
            continue
        out[f"{path.stem} denial targets"] = _denial_targets(totals(by_strategy), args.json)
        points = frontier(sc, args.days)
        out[f"{path.stem} frontier"] = {k: t.as_dict() for k, t in points.items()}
        if not args.json:
            print(_frontier_table(path.stem, points) + "\n")
        out[f"{path.stem} job caps"] = _job_caps(sc, args.days, args.json)
        if args.plot:
            out_png = Path(args.plot)  # a frontier a shape: frontier-studio-day.png, …
            out_png = out_png.with_stem(f"{out_png.stem}-{path.stem}")
            plot_frontier(points, f"{sc.name}, {args.days} days", str(out_png), _corners(points))
    if args.json:
        print(json.dumps(out, indent=2))


def _targets(t: dict[str, Totals], quiet: bool) -> dict[str, Any]:
    oracle, ls, pre = t["oracle"], t["license-sync"], t["license-sync-preempt"]
    bound = max(oracle.artist_minutes_lost, 10.0)

    def share(x: Totals) -> float:
        return x.mean_share or 0.0

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
    return _said(checks, quiet)


def _said(checks: list[tuple[str, bool, str]], quiet: bool) -> dict[str, Any]:
    """Each target MET or NOT MET with its figure, printed unless `quiet`, as data."""
    if not quiet:
        for what, ok, figure in checks:
            print(f"{'MET    ' if ok else 'NOT MET'}  {what}: {figure}")
        print()
    return {what: {"met": ok, "figure": figure} for what, ok, figure in checks}


def _denial_targets(t: dict[str, Totals], quiet: bool) -> dict[str, Any]:
    """Issue #26's targets for the strategies that read the servers' logs."""
    causal = t["causal-oracle"]
    bound = _causal_bound(t)
    checks = []
    for name, times in DENIAL_TARGETS:
        r = t[name]
        share = r.mean_share or 0.0
        checks += [
            (f"{name}: artist-minutes lost <= {times:g}x the causal bound",
             r.artist_minutes_lost <= times * bound,
             f"{r.artist_minutes_lost:.0f} (causal {causal.artist_minutes_lost:.0f}, "
             f"{r.artist_minutes_lost / bound:.1f}x)"),
            (f"{name}: task-hours >= 90% of the clairvoyant bound", share >= 90,
             f"{share:.1f}%"),
            (f"{name}: farm checkout failures <= 20", r.farm_denials <= 20,
             str(r.farm_denials)),
        ]  # fmt: skip
    return _said(checks, quiet)


def _job_caps(sc: Scenario, days: int, quiet: bool) -> dict[str, Any]:
    """Job-cap writes an hour with the scenario's jobs policy at slack 0 (every share
    written as it moves), 2 and 4, beside the artist-minutes each costs."""
    jobs = {"policy": "fair", **sc.policy.get("jobs", {})}
    out: dict[str, Any] = {}
    for slack in (0, 2, 4):
        policy = {**sc.policy, "jobs": {**jobs, "slack": slack}}
        run = run_days(sc.model_copy(update={"policy": policy}), ["license-sync"], days)
        t = totals(run)["license-sync"]
        out[f"slack {slack}"] = {
            "job_cap_writes_per_hour": round(t.job_caps_per_hour, 2),
            "job_cap_moves_per_hour": round(t.job_moves_per_hour, 2),
            "artist_minutes_lost": round(t.artist_minutes_lost),
        }
    if not quiet:
        head = ["jobs.slack", "job-cap writes/h", "of them moves/h", "artist-min lost",
                "writes, moves: fewer than at 0"]  # fmt: skip
        rows = [[k, f"{v['job_cap_writes_per_hour']:.1f}", f"{v['job_cap_moves_per_hour']:.1f}",
                 str(v["artist_minutes_lost"]), _fewer(out["slack 0"], v)]
                for k, v in out.items()]  # fmt: skip
        print(f"job caps (license-sync, {days} days)\n" + table(head, rows) + "\n")
    return out


def _corners(points: dict[str, Totals]) -> list[tuple[str, float, float]]:
    """Issue #26's targets as corners of the frontier's plot: 90% of the clairvoyant
    bound's task-hours, and 2.5x (1.5x with preemption) the causal bound's minutes."""
    hours = 0.9 * points["oracle"].task_hours
    labels = ("target", "target, preempting")
    bound = _causal_bound(points)
    return [
        (label, hours, times * bound)
        for label, (_, times) in zip(labels, DENIAL_TARGETS, strict=True)
    ]


def _causal_bound(t: dict[str, Totals]) -> float:
    """The causal oracle's artist-minutes, at least 10 (a bound of 0 bounds no ratio)."""
    return max(t["causal-oracle"].artist_minutes_lost, 10.0)


def _fewer(before: dict[str, Any], after: dict[str, Any]) -> str:
    def ratio(key: str) -> str:
        return f"{before[key] / after[key]:.1f}x" if after[key] else "all"

    return f"{ratio('job_cap_writes_per_hour')}, {ratio('job_cap_moves_per_hour')}"


def frontier(sc: Scenario, days: int) -> dict[str, Totals]:
    """license-sync under the settings a TD chooses, beside the two oracles."""
    base = sc.policy  # jobs shared where the scenario shares them, as the strategies do
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
    variants["on_exhausted pause"] = {**base, "on_exhausted": "pause"}
    points: dict[str, Totals] = {}
    oracle = run_days(sc, ["oracle"], days)["oracle"]
    for name, policy in variants.items():
        for strategy in ("license-sync-denials", "license-sync-denials-preempt"):
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
        f"{name}'s frontier: license-sync reading the servers' logs (license-sync-denials) "
        "under each setting, the rest of the policy as is, beside the two oracles\n"
        + table(head, rows)
    )


if __name__ == "__main__":
    main()
