"""API calls and time per cycle on a large simulated farm, with jobs sharing pools.

20 pools (one limit each), 10 queues, 2,000 active jobs of 3 steps each, through the
real boto3 client against the simulated endpoint on loopback. Prints, per cycle, the
calls by operation and the cycle's wall and CPU time, then the CPU time of planning the
job caps alone, and what a naive design (one GetStep per step, one UpdateJob per job)
would call.

    python benchmarks/farm_scale.py [--jobs 2000] [--pools 20] [--queues 10] [--cycles 3]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from sync.allocation import allocate
from sync.deadline import Deadline, make_client
from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.history import History
from sync.metrics import Metrics
from sync.policy import JobsPolicy, load_policy
from sync.service import Service


def build(jobs: int, pools: int, queues: int) -> tuple[FakeFarm, list[str]]:
    farm = FakeFarm(count_delay=0, seed=11)
    qs = [farm.add_queue() for _ in range(queues)]
    for p in range(pools):
        lid = farm.add_limit(f"amount.pool{p}", 1000)
        for q in qs:
            farm.associate(q, lid)
    for i in range(jobs):
        farm.add_job(
            qs[i % queues],
            f"shot{i:05d}",
            tasks=farm.rng.randint(1, 30),
            amount=f"amount.pool{i % pools}",
            steps=3,
            priority=farm.rng.choice([25, 50, 75]),
        )
    return farm, qs


def policy_text(farm: FakeFarm, pools: int, db: Path) -> str:
    lines = [
        f"interval: 60s\nhistory: {{path: {db}}}\n"
        f"farms: [{{id: {farm.farm_id}, region: us-west-2}}]\nsources:"
    ]
    lines += [f"  s{p}: {{kind: static, features: {{lic{p}: 500}}}}" for p in range(pools)]
    lines.append("pools:")
    for p in range(pools):
        lines.append(
            f"  pool{p}:\n    limit: amount.pool{p}\n"
            f"    features: [{{source: s{p}, feature: lic{p}}}]\n"
            "    hysteresis: {settle: 1}\n    jobs: {policy: fair}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--pools", type=int, default=20)
    ap.add_argument("--queues", type=int, default=10)
    ap.add_argument("--cycles", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    farm, _ = build(args.jobs, args.pools, args.queues)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "policy.yaml").write_text(policy_text(farm, args.pools, tmp / "h.db"))
    with FakeDeadline(farm) as server:
        metrics = Metrics()
        svc = Service(
            load_policy(tmp / "policy.yaml"),
            deadline_factory=lambda f: Deadline(
                make_client(f.region, server.url), f.id, on_call=metrics.count_call
            ),
            metrics=metrics,
            history=History(str(tmp / "h.db")),
        )
        print(
            f"farm: {args.pools} pools, {args.queues} queues, {args.jobs} active jobs "
            f"of 3 steps each"
        )
        for n in range(1, args.cycles + 1):
            before = Counter(server.calls)
            w0, c0 = time.perf_counter(), time.process_time()
            result = svc.run_cycle()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            calls = Counter(server.calls) - before
            writes = sum(1 for c in result.outcome.job_changes if c.kind == "cap")
            print(
                f"\ncycle {n}: wall {wall:.2f} s, CPU {cpu:.2f} s, {sum(calls.values())} "
                f"calls, {writes} job caps written, errors: {len(result.errors)}"
            )
            for op, k in sorted(calls.items()):
                print(f"  {op:<28} {k}")
            if n == 1:
                changed = writes
        reads_budget = args.pools + math.ceil(args.jobs / 100) + 2
        print(
            f"\nsteady-cycle read budget (pools + queue pages + ⌈jobs/100⌉): "
            f"about {reads_budget}; first-cycle BatchUpdateJob target: "
            f"⌈{changed}/100⌉ = {math.ceil(changed / 100)}"
        )

    # planning alone: the pure allocation over every pool's jobs
    demands = [d for jp in result.plan.pools_jobs for d in jp.jobs]
    by_pool: dict[str, list] = {}
    for jp in result.plan.pools_jobs:
        by_pool[jp.pool] = jp.jobs
    runs = []
    for _ in range(7):
        c0 = time.process_time()
        for jobs in by_pool.values():
            allocate(500, jobs, JobsPolicy(policy="fair"))
        runs.append(time.process_time() - c0)
    runs.sort()
    print(
        f"planning {len(demands)} jobs in {len(by_pool)} pools: median "
        f"{runs[len(runs) // 2] * 1e3:.1f} ms CPU (target < 50 ms)"
    )
    print(
        f"a naive design: {args.jobs * 3} GetStep + {args.jobs} UpdateJob = "
        f"{args.jobs * 4} calls every cycle"
    )


if __name__ == "__main__":
    main()
