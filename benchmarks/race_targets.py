"""Artists first, against the bound a real license server allows (issue #39).

For every shipped scenario and each shape kept apart in benchmarks/shapes/ (checked,
never tuned to), over `--days` seeded days (seeds 1..N, a week-long scenario one day a
week): the ladder of causal bounds, then license-sync as a TD would run it — the
scenario's policy and the service's defaults, reading the servers' logs — without and
with preemption, against the targets:

- artist-minutes lost: at most causal-h1-race's with preemption, 1.5x it without;
- farm checkout failures: at most 20;
- farm work: at least causal-h1-race's share of the oracle's, less 2 points.

With `--frontier`, each shape also under the scenario's policy with one field changed
(reserve 0, settle 1, one more headroom): what a TD's choice buys and costs.

    python benchmarks/race_targets.py [--days 10] [--scenario FILE]... [--json]
                                      [--frontier]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sync.law.render import table
from sync.offline.simulation.report import Totals, totals
from sync.offline.simulation.scenario import Scenario, load_scenario, one_day
from sync.offline.simulation.strategies import run_days

HERE = Path(__file__).parent
SHIPPED = sorted((HERE.parent / "sync/offline/simulation/scenarios").glob("*.yaml"))
KEPT_APART = sorted((HERE / "shapes").glob("*.yaml"))
LADDER = ["causal-oracle", "causal-refused", "causal-h1", "causal-h1-race", "oracle"]
PLAIN = ["license-sync", "license-sync-denials"]  # the best of each pair is the figure
PREEMPT = ["license-sync-preempt", "license-sync-denials-preempt"]
MAX_FAILURES = 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--scenario", action="append", help="default: shipped and kept apart")
    ap.add_argument("--json", action="store_true", help="the figures for scripts")
    ap.add_argument("--frontier", action="store_true", help="one policy field changed")
    args = ap.parse_args()
    paths = [Path(p) for p in args.scenario] if args.scenario else SHIPPED + KEPT_APART
    out: dict[str, Any] = {}
    for path in paths:
        sc = one_day(load_scenario(path)).model_copy(update={"seed": 1})
        t0 = time.perf_counter()
        t = totals(run_days(sc, LADDER + PLAIN + PREEMPT, args.days))
        out[path.stem] = {
            "strategies": {s: x.as_dict() for s, x in t.items()},
            "targets": _targets(t),
        }
        if not args.json:
            kept = " (kept apart)" if path.parent.name == "shapes" else ""
            print(f"{path.stem}{kept}: {args.days} days, {time.perf_counter() - t0:.0f} s")
            print(_table(t) + "\n")
            for what, v in out[path.stem]["targets"].items():
                print(f"{'MET    ' if v['met'] else 'NOT MET'}  {what}: {v['figure']}")
            print()
        if args.frontier:
            out[path.stem]["frontier"] = _frontier(sc, args.days, args.json)
    if args.json:
        print(json.dumps(out, indent=2))


def best(t: dict[str, Totals], names: list[str]) -> str:
    """The strategy of `names` that loses artists the fewest minutes."""
    return min(names, key=lambda s: (t[s].artist_minutes_lost, t[s].farm_denials))


def _targets(t: dict[str, Totals]) -> dict[str, dict[str, Any]]:
    bound = t["causal-h1-race"]
    minutes = max(bound.artist_minutes_lost, 10.0)  # a bound of 0 bounds no ratio
    work = (bound.mean_share or 0.0) - 2
    checks = {}
    for names, times in ((PLAIN, 1.5), (PREEMPT, 1.0)):
        s = best(t, names)
        r = t[s]
        share = r.mean_share or 0.0
        checks[f"{s}: artist-min <= {times:g}x causal-h1-race's"] = {
            "met": r.artist_minutes_lost <= times * minutes,
            "figure": f"{r.artist_minutes_lost:.0f} vs {bound.artist_minutes_lost:.0f} "
            f"({r.artist_minutes_lost / minutes:.2f}x)",
        }
        checks[f"{s}: farm checkout failures <= {MAX_FAILURES}"] = {
            "met": r.farm_denials <= MAX_FAILURES,
            "figure": str(r.farm_denials),
        }
        checks[f"{s}: farm work >= causal-h1-race's - 2 points"] = {
            "met": share >= work,
            "figure": f"{share:.1f}% vs {work + 2:.1f}%",
        }
    return checks


def _frontier(sc: Scenario, days: int, quiet: bool) -> dict[str, Any]:
    """The log-reading strategies under the scenario's policy with one field changed."""
    pol = sc.policy
    variants: dict[str, dict[str, Any]] = {
        "as written": {},
        "reserve 0": {"reserve": 0},
        "settle 1": {"hysteresis": {**pol.get("hysteresis", {}), "settle": 1}},
        "headroom + 1": {"headroom": pol.get("headroom", 0) + 1},
    }
    out: dict[str, Any] = {}
    rows = []
    for name, change in variants.items():
        changed = sc.model_copy(update={"policy": {**pol, **change}})
        t = totals(run_days(changed, [PLAIN[1], PREEMPT[1], "oracle"], days))
        out[name] = {s: t[s].as_dict() for s in (PLAIN[1], PREEMPT[1])}
        rows.append([name] + [_cell(t[s]) for s in (PLAIN[1], PREEMPT[1])])
    if not quiet:
        print(table(["setting", PLAIN[1], PREEMPT[1]], rows) + "\n")
    return out


def _cell(t: Totals) -> str:
    """artist-minutes lost · farm failures · farm work"""
    return f"{t.artist_minutes_lost:.0f} · {t.farm_denials} · {t.mean_share or 0:.1f}%"


def _table(t: dict[str, Totals]) -> str:
    head = ["strategy", "artist-min lost", "farm failures", "% of oracle", "preempted task-min"]
    rows = [
        [s, f"{x.artist_minutes_lost:.0f}", str(x.farm_denials), x.share(),
         f"{x.preempted_task_minutes:.0f}"]
        for s, x in t.items()
    ]  # fmt: skip
    return table(head, rows)


if __name__ == "__main__":
    main()
