"""Kills: the real `license-sync run` process killed with SIGKILL at random, again and again,
against the fake endpoint as late and unkind as Deadline (REALISTIC), then `restore`.

After every kill, on what the fake farm holds and what the history file holds: no job or
limit carries 0; every job whose maxWorkerCount is not its original has that original
on disk, and so has the limit. At the end `restore --limits` must put every job, the
limit and the queues back as they were. Seeded, so a failure replays.

    python benchmarks/kills.py [--kills 60] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import REALISTIC, FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL_LIMIT = 10
POLICY = """\
interval: 1s
history: {{path: {db}}}
farms: [{{id: {farm}, region: us-west-2}}]
sources: {{lic: {{kind: flexlm, servers: ["27000@lic1"], timeout: 5s}}}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: lic, feature: nuke_r}}]
    farm_selector: {{hosts: ["^render-"]}}
    headroom: 1
    hysteresis: {{settle: 1}}
    jobs: {{policy: fair}}
"""


@dataclass
class KillResult:
    kills: int = 0
    writes_before_kill: list[int] = field(default_factory=list)  # writes each run landed
    violations: list[str] = field(default_factory=list)
    restore_code: int = -1
    restore_runs: int = 0
    restore_left: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _on_disk(db: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The jobs' and limits' originals the history file holds now (read-only)."""
    if not db.exists():
        return {}, {}
    with sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True) as conn:
        jobs = dict(conn.execute("SELECT job_id, original FROM job_originals").fetchall())
        row = conn.execute("SELECT value FROM state WHERE key = 'limit_originals'").fetchone()
    return jobs, (json.loads(row[0]) if row else {})


def _check(farm: FakeFarm, originals: dict[str, int], db: Path, n: int) -> list[str]:
    bad = []
    jobs_on_disk, limits_on_disk = _on_disk(db)
    with farm.lock:
        current = {j: job.max_worker_count for j, job in farm.jobs.items()}
        limits = {lid: lim.max_count for lid, lim in farm.limits.items()}
    for job_id, value in current.items():
        if value == 0 or value < -1:
            bad.append(f"kill {n}: job {job_id} maxWorkerCount {value}")
        if value != originals[job_id] and jobs_on_disk.get(job_id) != originals[job_id]:
            bad.append(
                f"kill {n}: job {job_id} at {value}, its original {originals[job_id]} "
                f"not on disk (disk: {jobs_on_disk.get(job_id)})"
            )
    for lid, value in limits.items():
        if value != ORIGINAL_LIMIT and limits_on_disk.get(f"{farm.farm_id}/{lid}") != (
            ORIGINAL_LIMIT
        ):
            bad.append(f"kill {n}: limit at {value}, its original not on disk")
    return bad


def _ticking(farm: FakeFarm, stop: threading.Event) -> None:
    while not stop.wait(0.2):  # the farm's tasks start and end on the wall clock
        farm.tick(datetime.now(UTC))


def kills(count: int = 60, seed: int = 1, workdir: Path | None = None) -> KillResult:
    rng = random.Random(seed)
    work = workdir or Path(tempfile.mkdtemp())
    farm = FakeFarm(**REALISTIC, now=datetime.now(UTC), seed=seed)
    queue, _ = farm.add_queue_with_limit("amount.nuke", ORIGINAL_LIMIT)
    originals: dict[str, int] = {}

    def add_jobs(k: int) -> None:
        for _ in range(k):
            mwc = rng.choice([-1, -1, 4, 8, 30])
            job = farm.add_job(
                queue, "comp", tasks=rng.randint(5, 40), amount="amount.nuke",
                priority=rng.choice([25, 50, 75]), duration=rng.uniform(5, 60),
                max_worker_count=mwc,
            )  # fmt: skip
            originals[job] = mwc

    add_jobs(8)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20, amount="amount.nuke")])
    status, policy, db = work / "lmstat.txt", work / "policy.yaml", work / "h.db"
    policy.write_text(POLICY.format(db=db, farm=farm.farm_id))
    res = KillResult()
    stop = threading.Event()
    writes = {"n": 0}
    with FakeDeadline(farm) as server:
        real = server.before_op

        def counted(op: str) -> None:
            if op in ("BatchUpdateJob", "UpdateLimit", "UpdateQueueLimitAssociation"):
                writes["n"] += 1
            if real:
                real(op)

        server.before_op = counted
        env = {
            **os.environ,
            "PATH": f"{ROOT / 'tests' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LM_OUTPUT": str(status),
            "AWS_ENDPOINT_URL_DEADLINE": server.url,
            "AWS_ACCESS_KEY_ID": "kills",
            "AWS_SECRET_ACCESS_KEY": "kills",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        ticker = threading.Thread(target=_ticking, args=(farm, stop), daemon=True)
        ticker.start()
        t0 = time.monotonic()
        try:
            for n in range(count):
                lic.set_artists("nuke_r", rng.randint(0, 12))
                tmp = status.with_suffix(".tmp")
                tmp.write_text(lic.lmstat())
                tmp.replace(status)
                if rng.random() < 0.4:
                    add_jobs(rng.randint(1, 3))
                before = writes["n"]
                proc = subprocess.Popen(
                    [sys.executable, "-m", "sync", "run", "--config", str(policy)],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(rng.uniform(1.0, 6.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                res.kills += 1
                res.writes_before_kill.append(writes["n"] - before)
                res.violations += _check(farm, originals, db, n)
            res.restore_code, res.restore_runs, res.restore_left = _restore(
                policy, env, farm, originals
            )
        finally:
            stop.set()
            ticker.join()
        res.seconds = time.monotonic() - t0
    return res


def _restore(
    policy: Path, env: dict[str, str], farm: FakeFarm, originals: dict[str, int]
) -> tuple[int, int, list[str]]:
    """`restore --limits` as an operator runs it: again while it exits 1 (a job whose
    write failed is still recorded; REALISTIC fails 2% of batch items), up to 3 times."""
    attempt = 0
    while attempt < 3:
        attempt += 1
        p = subprocess.run(
            [sys.executable, "-m", "sync", "restore", "--limits", "--config", str(policy)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if p.returncode == 0:
            break
    left = []
    with farm.lock:
        for job_id, job in farm.jobs.items():
            if job.max_worker_count != originals[job_id]:
                left.append(f"job {job_id}: {job.max_worker_count}, not {originals[job_id]}")
        for lim in farm.limits.values():
            if lim.max_count != ORIGINAL_LIMIT:
                left.append(f"limit {lim.limit_id}: {lim.max_count}, not {ORIGINAL_LIMIT}")
        left += [f"queue {q} left {s}" for (q, _), s in farm.associations.items() if s != "ACTIVE"]
    if p.returncode != 0:
        left.append(f"restore exited {p.returncode}: {p.stderr.strip()[-300:]}")
    return p.returncode, attempt, left


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    r = kills(args.kills, args.seed)
    landed = r.writes_before_kill
    print(f"{r.kills} kills in {r.seconds:.0f} s, seed {args.seed}")
    print(
        f"writes landed before a kill: {sum(landed)} in all; runs killed before any write "
        f"{sum(1 for w in landed if w == 0)}, after some {sum(1 for w in landed if w)}"
    )
    print(f"invariant violations after the kills: {len(r.violations)}")
    for v in r.violations[:20]:
        print("  " + v)
    print(
        f"restore --limits: exit {r.restore_code} after {r.restore_runs} run(s); not back as "
        f"it was: {len(r.restore_left)}"
    )
    for v in r.restore_left[:20]:
        print("  " + v)


if __name__ == "__main__":
    main()
