"""A month of history at 50 pools every 30 s, and what it costs: the file's size, a
cycle's prune once the month is full, and `license-sync history` over all of it.

The rows are written straight through `History.record_cycle`, as the service writes them
(one cycle's decisions and observations a transaction), with timestamps a month long.

    python benchmarks/history_month.py [--days 31] [--pools 50] [--interval 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync.edges.history import History


def fill(path: str, days: float, pools: int, interval: float) -> tuple[int, datetime]:
    """Write `days` of cycles; returns how many and the time of the last."""
    start = datetime(2026, 10, 1, tzinfo=UTC)
    cycles = int(days * 86400 / interval)
    h = History(path, keep=days * 86400)
    for n in range(cycles):
        at = (start + timedelta(seconds=n * interval)).isoformat()
        decisions = [
            {
                "at": at, "pool": f"pool{p}", "farm_id": "farm-" + "0" * 32,
                "limit_ref": f"amount.pool{p}", "limit_id": "limit-" + f"{p:032d}",
                "current": 10, "target": 10, "new": None, "changed": int(n % 97 == p),
                "applied": 0, "status": "ok", "reason": "maxCount 10 is already the target",
                "why": '[{"kind": "kept", "value": 10}]', "total": 20, "in_use": 12,
                "farm_use": 10, "external": 2, "reserve": 1, "current_count": 10,
            }
            for p in range(pools)
        ]  # fmt: skip
        observations = [
            {"at": at, "source": f"s{p}", "up": 1, "vendor": "v", "feature": f"f{p}",
             "total": 20, "in_use": 12, "reserved": 0, "queued": 0}
            for p in range(pools)
        ]  # fmt: skip
        cycle = {"started": at, "finished": at, "result": "ok", "duration": 0.5}
        h.record_cycle(cycle, observations, decisions, [])
    h.close()
    return cycles, start + timedelta(seconds=(cycles - 1) * interval)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=31)
    ap.add_argument("--pools", type=int, default=50)
    ap.add_argument("--interval", type=float, default=30)
    args = ap.parse_args()
    path = str(Path(tempfile.mkdtemp()) / "history.db")
    t0 = time.perf_counter()
    cycles, last = fill(path, args.days, args.pools, args.interval)
    size = os.path.getsize(path) / 2**20
    print(
        f"{cycles} cycles × {args.pools} pools written in {time.perf_counter() - t0:.0f} s: "
        f"{size:.0f} MiB"
    )
    h = History(path, keep=(args.days - 1) * 86400)  # a day is past the retention now
    t0, cycles, n = time.perf_counter(), 0, 1
    while n:
        n = h.prune(last)
        cycles += 1
    print(
        f"a day's backlog pruned over {cycles} cycles, "
        f"{(time.perf_counter() - t0) * 1000 / cycles:.0f} ms each"
    )
    t0 = time.perf_counter()
    n = h.prune(last + timedelta(seconds=args.interval))
    print(f"a steady cycle's prune: {n} rows in {(time.perf_counter() - t0) * 1000:.1f} ms")
    h.close()
    print(f"file after pruning: {os.path.getsize(path) / 2**20:.0f} MiB")
    for cmd in (["--all", "--format", "csv"], ["--format", "table"]):
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "sync", "history", "--db", path, *cmd], stdout=out
            )
            _, _, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
            child.returncode = 0
            size = out.tell() / 2**20
        print(
            f"license-sync history {' '.join(cmd)}: {time.perf_counter() - t0:.1f} s, "
            f"{size:.0f} MiB out, peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
        )


if __name__ == "__main__":
    main()
