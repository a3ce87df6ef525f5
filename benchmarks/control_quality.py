"""Control quality on the studio-day scenario: license-sync against static, naive and the
oracle. Prints the table and checks the targets.

Targets: license-sync has zero denials and reaches at least 95% of the oracle's farm
throughput, while `naive` shows denials and `static` leaves licenses idle.

    python benchmarks/control_quality.py [--scenario config/scenarios/studio-day.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sync.simulate import STRATEGIES, format_table, load_scenario, run

DEFAULT = Path(__file__).parent.parent / "config/scenarios/studio-day.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(DEFAULT))
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


if __name__ == "__main__":
    main()
