"""Control quality on the studio-day scenario: license-sync against static, naive and the
oracle. Prints the table and checks the targets.

Targets: license-sync has zero denials and reaches at least 95% of the oracle's farm
throughput, while `naive` shows denials and `static` leaves licenses idle.

One seed is one day; a day without denials can be luck. So the same scenario is then run
under other seeds, first with its own policy, then with more or less `headroom`: the
trade-off between denials and throughput that a TD chooses in the policy.

    python benchmarks/control_quality.py [--scenario config/scenarios/studio-day.yaml]
                                         [--seeds 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sync.simulation.report import format_table, summarise
from sync.simulation.scenario import Scenario, load_scenario
from sync.simulation.strategies import STRATEGIES, run, run_days
from sync.simulation.world import Result

DEFAULT = Path(__file__).parent.parent / "config/scenarios/studio-day.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(DEFAULT))
    ap.add_argument("--seeds", type=int, default=10, help="days to run for the sweeps (0: none)")
    args = ap.parse_args()
    sc = load_scenario(args.scenario)
    t0 = time.perf_counter()
    results = {s: run(sc, s) for s in STRATEGIES}
    took = time.perf_counter() - t0
    print(
        f"{sc.name}: {sc.duration / 3600:g} h of {sc.step:g} s steps, {sc.total} licenses, "
        f"seed {sc.seed} ({took:.1f} s for the four strategies)\n"
    )
    print(format_table(list(results.values())))
    ls, oracle = results["license-sync"], results["oracle"]
    share = ls.tasks_done / oracle.tasks_done
    checks = [
        ("license-sync has zero denials", ls.denials == 0, f"{ls.denials}"),
        (
            "license-sync reaches >= 95% of the oracle's throughput",
            share >= 0.95,
            f"{100 * share:.1f}%",
        ),
        ("naive shows denials", results["naive"].denials > 0, f"{results['naive'].denials}"),
        (
            "static leaves licenses idle",
            results["static"].idle_license_hours > ls.idle_license_hours,
            f"{results['static'].idle_license_hours:.0f} license-hours",
        ),
    ]
    print()
    for what, ok, figure in checks:
        print(f"{'MET    ' if ok else 'NOT MET'}  {what}: {figure}")
    if args.seeds > 0:
        print()
        print(sweep(sc, args.seeds))


def _variant(sc: Scenario, headroom: int | None = None, lag: bool = True) -> Scenario:
    """The scenario with another `headroom`, or with no lag: the sync polls every step and
    sees the license server and currentCount at once."""
    sc = sc.model_copy(deep=True)
    if headroom is not None:
        sc.policy = {**sc.policy, "headroom": headroom}
    if not lag:
        sc.sync = sc.sync.model_copy(
            update={"interval": sc.step, "tool_latency": 0.0, "count_delay": 0.0}
        )
    return sc


def sweep(sc: Scenario, seeds: int) -> str:
    first = sc.model_copy(update={"seed": 1})
    oracle = run_days(first, ["oracle"], seeds)["oracle"]  # neither policy nor lag steer it

    def days(variant: Scenario) -> list[Result]:
        return run_days(variant, ["license-sync"], seeds)["license-sync"]

    own = days(first)
    out = [
        f"license-sync on {seeds} seeded days (seeds 1-{seeds}), the scenario's policy:",
        "seed  denials  % of oracle  artists turned away",
    ]
    for seed, share, r in zip(range(1, seeds + 1), summarise(own, oracle).shares, own, strict=True):
        out.append(f"{seed:<4}  {r.denials:<7}  {share:<11.1f}  {r.artist_denials}")
    base = int(sc.policy.get("headroom", 0))
    out += [
        "",
        f"the trade-off, by headroom (the rest of the policy as is), over the same {seeds} days:",
        "headroom  denials  days with denials  % of oracle (mean, min-max)",
    ]
    for h in sorted({0, base, base + 1, base + 2}):
        d = summarise(own if h == base else days(_variant(first, headroom=h)), oracle)
        out.append(
            f"{h:<8}  {d.denials:<7}  {d.days_with_denials:<17}  {d.share()}"
            + ("  <- the scenario's" if h == base else "")
        )
    d = summarise(days(_variant(first, lag=False)), oracle)
    out += [
        "",
        f"the scenario's policy with no lag (a poll every {sc.step:g} s step, no tool latency, "
        "no currentCount delay):",
        f"denials {d.denials} on {d.days_with_denials} of {seeds} days; % of oracle {d.share()}",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    main()
