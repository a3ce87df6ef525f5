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
import functools
import time
from pathlib import Path

from sync.simulate import STRATEGIES, Scenario, format_table, load_scenario, run

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


@functools.cache
def _oracle_tasks(sc_json: str) -> int:
    return run(Scenario.model_validate_json(sc_json), "oracle").tasks_done


def _day(
    sc: Scenario, seed: int, headroom: int | None = None, lag: bool = True
) -> tuple[int, float, int]:
    """(denials, share of the oracle's throughput, artists turned away) for one seeded day.

    `lag=False`: the sync polls every step and sees the server and currentCount at once.
    """
    sc = sc.model_copy(deep=True, update={"seed": seed})
    oracle = _oracle_tasks(sc.model_dump_json())  # neither policy nor lag steer the oracle
    if headroom is not None:
        sc.policy = {**sc.policy, "headroom": headroom}
    if not lag:
        sc.sync = sc.sync.model_copy(
            update={"interval": sc.step, "tool_latency": 0.0, "count_delay": 0.0}
        )
    ls = run(sc, "license-sync")
    return ls.denials, ls.tasks_done / oracle, ls.artist_denials


def sweep(sc: Scenario, seeds: int) -> str:
    days = range(1, seeds + 1)
    own = [_day(sc, s) for s in days]
    out = [
        f"license-sync on {seeds} seeded days (seeds 1-{seeds}), the scenario's policy:",
        "seed  denials  % of oracle  artists turned away",
    ]
    for seed, (d, p, a) in zip(days, own, strict=True):
        out.append(f"{seed:<4}  {d:<7}  {100 * p:<11.1f}  {a}")
    base = int(sc.policy.get("headroom", 0))
    out += [
        "",
        f"the trade-off, by headroom (the rest of the policy as is), over the same {seeds} days:",
        "headroom  denials  days with denials  % of oracle (mean, min-max)",
    ]
    for h in sorted({0, base, base + 1, base + 2}):
        runs = own if h == base else [_day(sc, s, h) for s in days]
        den = [d for d, _, _ in runs]
        pct = [100 * p for _, p, _ in runs]
        out.append(
            f"{h:<8}  {sum(den):<7}  {sum(1 for d in den if d):<17}  "
            f"{sum(pct) / len(pct):.1f} ({min(pct):.1f}-{max(pct):.1f})"
            + ("  <- the scenario's" if h == base else "")
        )
    instant = [_day(sc, s, lag=False) for s in days]
    den = [d for d, _, _ in instant]
    pct = [100 * p for _, p, _ in instant]
    out += [
        "",
        f"the scenario's policy with no lag (a poll every {sc.step:g} s step, no tool latency, "
        "no currentCount delay):",
        f"denials {sum(den)} on {sum(1 for d in den if d)} of {seeds} days; "
        f"% of oracle {sum(pct) / len(pct):.1f} ({min(pct):.1f}-{max(pct):.1f})",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    main()
