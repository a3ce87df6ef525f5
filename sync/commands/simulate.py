"""`license-sync simulate`: strategies compared on simulated days."""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from sync.commands import EXIT_OK
from sync.offline.simulation import STRATEGIES, report, scenario, strategies
from sync.policy import Pool, load_policy
from sync.values.errors import SyncError

# the scenarios the package ships, wherever it is installed
SCENARIOS = Path(str(resources.files("sync.offline.simulation") / "scenarios"))


def shipped() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


def scenario_path(value: str) -> Path:
    """`--scenario`: a file, or the name of a scenario the package ships (`studio-day`)."""
    if Path(value).is_file():
        return Path(value)
    if (SCENARIOS / f"{value}.yaml").is_file():
        return SCENARIOS / f"{value}.yaml"
    raise SyncError(
        f"--scenario {value!r}: no such file, nor a scenario of the package "
        f"({', '.join(shipped())})"
    )


def simulate(args: argparse.Namespace) -> int:
    paths = [scenario_path(v) for v in args.scenario] if args.scenario else None
    paths = paths or sorted(SCENARIOS.glob("*.yaml"))
    if args.days < 1:
        raise SyncError("--days must be at least 1")
    pool = _pool(args.policy, args.pool)
    out = [_one(args, scenario.load_scenario(p), pool) for p in paths]
    if args.format == "json":
        json.dump(out[0] if len(out) == 1 else out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK


def _one(args: argparse.Namespace, sc: scenario.Scenario, pool: Pool | None) -> dict[str, Any]:
    """One scenario over the days asked: printed as a table, returned as data."""
    if args.seed is not None:
        sc = sc.model_copy(update={"seed": args.seed})
    chosen = args.strategy or list(STRATEGIES)
    by_strategy = strategies.run_days(sc, chosen, args.days, pool)
    if args.format == "json":
        return report.as_json(sc, args.days, by_strategy)
    seeds = f"seed {sc.seed}" if args.days == 1 else f"seeds {sc.seed}-{sc.seed + args.days - 1}"
    print(
        f"{sc.name}: {sc.duration / 3600:g} h, {sc.total} licenses, {seeds}, "
        f"sync every {sc.sync.interval:g} s"
        + (f", pool {args.pool!r} of {args.policy}" if pool else "")
        + "\n"
    )
    print(report.format_table(by_strategy) + "\n")
    print(report.legend(by_strategy) + "\n")
    if args.plot:
        if args.days == 1:
            report.plot([days[0] for days in by_strategy.values()], sc, args.plot)
        else:
            points = report.totals(by_strategy)
            report.plot_frontier(points, f"{sc.name}, {seeds}", args.plot)
        print(f"plot written to {args.plot}\n")
    return report.as_json(sc, args.days, by_strategy)


def _pool(policy: str | None, name: str | None) -> Pool | None:
    if policy is None and name is None:
        return None
    if policy is None or name is None:
        raise SyncError("--policy and --pool go together: the pool NAME of the policy FILE")
    pools = load_policy(policy).policy.pools
    if name not in pools:
        raise SyncError(f"no pool {name!r} in {policy}; pools: {', '.join(pools)}")
    return pools[name]
