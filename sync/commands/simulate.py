"""`license-sync simulate`: strategies compared on simulated days."""

from __future__ import annotations

import argparse

from sync.commands import EXIT_OK
from sync.errors import SyncError
from sync.simulation import report, scenario, strategies


def simulate(args: argparse.Namespace) -> int:
    sc = scenario.load_scenario(args.scenario)
    if args.seed is not None:
        sc = sc.model_copy(update={"seed": args.seed})
    chosen = args.strategy or list(strategies.STRATEGIES)
    if args.days < 1:
        raise SyncError("--days must be at least 1")
    by_strategy = strategies.run_days(sc, chosen, args.days)
    results = [days[0] for days in by_strategy.values()]
    print(
        f"{sc.name}: {sc.duration / 3600:g} h, {sc.total} licenses, seed {sc.seed}, "
        f"sync every {sc.sync.interval:g} s\n"
    )
    print(report.format_table(results))
    if args.days > 1:
        print(f"\n{args.days} days, seeds {sc.seed}-{sc.seed + args.days - 1}:\n")
        print(report.format_days(by_strategy))
    if args.plot:
        report.plot(results, sc, args.plot)
        print(f"\nplot of the first day (seed {sc.seed}) written to {args.plot}")
    return EXIT_OK
