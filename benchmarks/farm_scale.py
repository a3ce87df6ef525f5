"""A cold start and steady cycles on large simulated farms, as the service runs them.

Each farm is a fake Deadline endpoint in a process of its own (its CPU is not ours),
adding `--latency` to every call; the real service reads them through boto3. Jobs have 3
steps, one of which requires its pool's amount. From start, cycles run back to back
while jobs' steps are still unread (as `run` catches up), then `--cycles` steady ones.

Prints the first cycle and a steady one: wall, CPU, calls by operation beside the serial
lower bound (calls × latency), peak RSS; and when the last limit and the last job cap of
the cold start were written. `--json` prints the same for scripts.

    python benchmarks/farm_scale.py --farms 3 --pools 50 --jobs 10000 --latency 20ms
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import botocore.session

from sync.cycle.serve import freeze_long_lived
from sync.cycle.service import Service
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.edges.metrics import Metrics
from sync.policy import load_policy, parse_duration

ROOT = Path(__file__).parent.parent
WRITES = ("UpdateLimit", "UpdateQueueLimitAssociation", "BatchUpdateJob", "UpdateJob")


def serve_farm(seed: int, pools: list[int], jobs: int, queues: int, latency: float, conn: Any):
    """A child process: one farm behind its endpoint; sends (farm id, url), then serves.
    The fakes are imported here only: the parent is the service, measured alone."""
    from sync.fakes.deadline import FakeDeadline, Faults
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm(count_delay=0, seed=seed)
    qs = [farm.add_queue() for _ in range(queues)]
    for p in pools:
        lid = farm.add_limit(f"amount.pool{p}", 1000)
        for q in qs:
            farm.associate(q, lid)
    for i in range(jobs):
        farm.add_job(
            qs[i % queues],
            f"shot{i:05d}",
            tasks=farm.rng.randint(1, 30),
            amount=f"amount.pool{pools[i % len(pools)]}",
            steps=3,
            priority=farm.rng.choice([25, 50, 75]),
        )
    server = FakeDeadline(farm, faults=Faults(latency=latency)).start()
    conn.send((farm.farm_id, server.url))
    conn.recv()  # until the parent is done


def policy_text(farms: list[str], pools: int, db: Path) -> str:
    lines = [f"interval: 60s\nhistory: {{path: {db}}}\nfarms:"]
    lines += [f"  - {{id: {f}, region: us-west-2}}" for f in farms]
    lines.append("sources:")
    lines += [f"  s{p}: {{kind: static, features: {{lic{p}: 500}}}}" for p in range(pools)]
    lines.append("pools:")
    for p in range(pools):
        lines.append(
            f"  pool{p}:\n    farm: {farms[p % len(farms)]}\n    limit: amount.pool{p}\n"
            f"    features: [{{source: s{p}, feature: lic{p}}}]\n"
            "    hysteresis: {settle: 1}\n    jobs: {policy: fair}"
        )
    return "\n".join(lines) + "\n"


class Timeline:
    """Every call the service makes, by operation, with when its last success came."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.calls: Counter[str] = Counter()
        self.last_ok: dict[str, float] = {}

    def __call__(self, operation: str, outcome: str) -> None:
        self.metrics.count_call(operation, outcome)
        self.calls[operation] += 1
        if outcome == "ok":
            self.last_ok[operation] = time.perf_counter()


def start_farms(args: argparse.Namespace) -> tuple[dict[str, str], list[Any]]:
    ctx = mp.get_context("fork")
    urls, pipes = {}, []
    for f in range(args.farms):
        pools = [p for p in range(args.pools) if p % args.farms == f]
        share = args.jobs // args.farms + (1 if f < args.jobs % args.farms else 0)
        parent, child = ctx.Pipe()
        ctx.Process(
            target=serve_farm,
            args=(11 + f, pools, share, args.queues, args.latency, child),
            daemon=True,
        ).start()
        farm_id, url = parent.recv()
        urls[farm_id] = url
        pipes.append(parent)
    return urls, pipes


def cycle(svc: Service, timeline: Timeline) -> dict[str, Any]:
    before = Counter(timeline.calls)
    w0, c0 = time.perf_counter(), time.process_time()
    result = svc.run_cycle()
    calls = timeline.calls - before
    return {
        "wall_s": round(time.perf_counter() - w0, 3),
        "cpu_s": round(time.process_time() - c0, 3),
        "calls": dict(sorted(calls.items())),
        "writes": sum(calls[op] for op in WRITES),
        "unread": sum(f.unread for f in result.observed.farms.values()),
        "errors": result.errors,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    urls, pipes = start_farms(args)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "policy.yaml").write_text(policy_text(list(urls), args.pools, tmp / "h.db"))
    metrics = Metrics()
    timeline = Timeline(metrics)
    loaded = load_policy(tmp / "policy.yaml")
    session = botocore.session.get_session()  # one for every farm, as factory_for
    svc = Service(
        loaded,
        deadline_factory=lambda f: Deadline(
            make_client(f.region, urls[f.id], session=session, pool_size=f.read_threads + 2),
            f.id,
            on_call=timeline,
            threads=f.read_threads,
        ),
        metrics=metrics,
        history=History(str(tmp / "h.db")),
    )
    start = time.perf_counter()
    cold = [cycle(svc, timeline)]
    while cold[-1]["unread"] and len(cold) < 100:  # as `run` catches up
        cold.append(cycle(svc, timeline))
    freeze_long_lived()  # as `run` does once caught up
    capped = timeline.last_ok.get("BatchUpdateJob", start) - start
    first_limits = timeline.last_ok.get("UpdateLimit", start) - start
    steady = [cycle(svc, timeline) for _ in range(args.cycles)]
    for p in pipes:
        p.send("done")
    typical = sorted(steady, key=lambda c: c["wall_s"])[len(steady) // 2]
    return {
        "farms": args.farms,
        "pools": args.pools,
        "jobs": args.jobs,
        "latency_ms": args.latency * 1000,
        "threads": loaded.policy.farms[0].read_threads,
        "first_limits_s": round(first_limits, 2),
        "all_capped_s": round(capped, 2),
        "cold_cycles": len(cold),
        "first_cycle": cold[0],
        "steady_cycle": typical,
        "steady_wall_s": statistics.median(c["wall_s"] for c in steady),
        "steady_cpu_s": statistics.median(c["cpu_s"] for c in steady),
        "steady_writes": max(c["writes"] for c in steady),
        "calls": {"first": cold[0]["calls"], "steady": typical["calls"]},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def show(r: dict[str, Any]) -> None:
    print(
        f"{r['farms']} farms, {r['pools']} pools, {r['jobs']} jobs, "
        f"{r['latency_ms']:g} ms a call, {r['threads']} read threads a farm"
    )
    print(
        f"cold start: last limit written at {r['first_limits_s']} s, last job cap at "
        f"{r['all_capped_s']} s ({r['cold_cycles']} cycle(s) back to back)"
    )
    for name in ("first_cycle", "steady_cycle"):
        c = r[name]
        n = sum(c["calls"].values())
        print(
            f"\n{name.replace('_', ' ')}: wall {c['wall_s']} s, CPU {c['cpu_s']} s, {n} calls "
            f"(serial at this latency: {n * r['latency_ms'] / 1000:.1f} s), "
            f"{c['writes']} writes, {c['unread']} jobs unread"
        )
        for op, k in c["calls"].items():
            print(f"  {op:<28} {k}")
    print(
        f"\nsteady: median wall {r['steady_wall_s']} s, CPU {r['steady_cpu_s']} s, "
        f"at most {r['steady_writes']} writes; peak RSS {r['peak_rss_mib']} MiB"
    )


def latency(text: str) -> float:
    return float(text[:-2]) / 1000 if text.endswith("ms") else parse_duration(text)


def as_in_the_container() -> None:
    """Run again with the allocator setting the Dockerfile gives the service."""
    found = re.search(r"MALLOC_ARENA_MAX=(\d+)", (ROOT / "Dockerfile").read_text())
    if found and os.environ.get("MALLOC_ARENA_MAX") != found.group(1):
        env = {**os.environ, "MALLOC_ARENA_MAX": found.group(1)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    as_in_the_container()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--farms", type=int, default=3)
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=10000, help="active jobs over all farms")
    ap.add_argument("--queues", type=int, default=10, help="queues a farm")
    ap.add_argument("--latency", type=latency, default=0.02, help="added to each call: 20ms")
    ap.add_argument("--cycles", type=int, default=3, help="steady cycles to measure")
    ap.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    args = ap.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)


if __name__ == "__main__":
    main()
