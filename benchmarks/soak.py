"""Soak: thousands of cycles against the simulated farm with faults injected at random.

Seeded, so a failure replays. Jobs come through CreateJob from OpenJD templates, some
chunked, some waiting on an unlicensed step. After every cycle the invariants of
docs/design.md are checked on what the simulated farm actually holds (after a cycle with
no fault, also that no license idles while a job capped below its share waits); at the
end it prints RSS, open file descriptors and threads at the start and the end.

    python benchmarks/soak.py [--cycles 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync.cycle.service import Service
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.edges.metrics import Metrics
from sync.edges.sources import Source
from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import REALISTIC, FakeFarm
from sync.fakes.operations import ARTIST
from sync.fakes.oracle import idle_while_capped
from sync.fakes.templates import simple_template
from sync.licenses import Checkout, Feature, Report
from sync.policy import load_policy

CEILING = 18
TOTAL = 20


class RandomSource(Source):
    def __init__(self, rng: random.Random):
        self.name, self.kind, self.rng = "lic", "flexlm", rng
        self.artists, self.down, self.garbage = 5, False, False

    def read(self) -> Report:
        if self.down:
            return Report("flexlm", False, errors=("Cannot connect (soak)",))
        cos = tuple(
            Checkout(f"a{i}", f"ws{i}", None, "v1", "lic1", 27000, i, "x", 1, None, None)
            for i in range(self.artists)
        )
        return Report(
            "flexlm",
            True,
            features=(Feature("foundry", "nuke_r", None, TOTAL, self.artists, checkouts=cos),),
        )


POLICY = """\
interval: 60s
history: {{path: {db}, keep: 2h}}
farms: [{{id: {farm}, region: us-west-2}}]
sources: {{lic: {{kind: flexlm, servers: ["27000@lic1"]}}}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: lic, feature: nuke_r}}]
    farm_selector: {{hosts: ["^render-"]}}
    headroom: 1
    ceiling: {ceiling}
    stale_after: 5m
    hysteresis: {{settle: 2, max_step: 4}}
    jobs: {{policy: fair}}
"""


@dataclass
class SoakResult:
    cycles: int = 0
    violations: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    fds_start: int = 0
    fds_end: int = 0
    threads_start: int = 0
    threads_end: int = 0
    seconds: float = 0.0


def submit(farm: FakeFarm, queue_id: str, rng: random.Random, name: str) -> None:
    """A job made by CreateJob from an OpenJD template, as a studio's are: perhaps in
    chunks of 5, perhaps after an unlicensed step it waits for."""
    text = simple_template(
        name,
        rng.randint(1, 30),
        "amount.nuke",
        chunk=rng.choice([1, 1, 5]),
        after_unlicensed=rng.random() < 0.3,
    )
    p = {"farmId": farm.farm_id, "queueId": queue_id, "priority": rng.choice([25, 50, 75])}
    farm.call("CreateJob", {**p, "template": text, "templateType": "JSON"}, caller=ARTIST)


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def soak(cycles: int = 2000, seed: int = 1, workdir: Path | None = None) -> SoakResult:
    rng = random.Random(seed)
    work = workdir or Path(tempfile.mkdtemp())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "soak")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "soak")
    now = datetime(2026, 11, 2, tzinfo=UTC)
    farm = FakeFarm(**REALISTIC, now=now, seed=seed)  # as late and as unkind as Deadline
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    policy = work / "policy.yaml"
    good = POLICY.format(db=work / "h.db", farm=farm.farm_id, ceiling=CEILING)
    policy.write_text(good)
    src = RandomSource(rng)
    res = SoakResult()
    clock = {"now": now}
    writes: list[tuple[int, int]] = []
    with FakeDeadline(farm) as server:
        real_update = farm.op_UpdateLimit

        def watched(p):  # every maxCount write, with the value it replaced
            writes.append((farm.limits[p["limitId"]].max_count, p["maxCount"]))
            return real_update(p)

        farm.op_UpdateLimit = watched
        metrics = Metrics()
        svc = Service(
            load_policy(policy),
            metrics=metrics,
            clock=lambda: clock["now"],
            deadline_factory=lambda f: Deadline(
                # one attempt, no retry: every injected fault reaches the service, and no
                # backoff sleeps
                make_client("us-west-2", server.url, attempts=1, retry_mode="standard"),
                f.id,
                on_call=metrics.count_call,
            ),
            history=History(str(work / "h.db"), timeout=0.5),
            source_factory=lambda n, c: src,
        )
        svc.run_cycle()  # warm-up: imports, first connections
        gc.collect()
        res.rss_start_kb, res.fds_start = rss_kb(), fds()
        res.threads_start = threading.active_count()
        t0 = time.monotonic()
        for n in range(cycles):
            clock["now"] += timedelta(seconds=60)
            fault = rng.choices(
                ["none", "throttle", "5xx", "source_down", "bad_policy", "jobs", "finish"],
                weights=[50, 8, 6, 8, 4, 14, 10],
            )[0]
            res.faults[fault] = res.faults.get(fault, 0) + 1
            server.faults.throttle_first = rng.randint(1, 3) if fault == "throttle" else 0
            server.faults.error_rate = 0.5 if fault == "5xx" else 0.0
            if fault == "source_down":
                src.down = not src.down
            elif src.down and rng.random() < 0.3:
                src.down = False
            if fault == "bad_policy":
                policy.write_text(good.replace("headroom: 1", "headroom: [1"))
            elif policy.read_text() != good and rng.random() < 0.5:
                policy.write_text(good)
            if fault == "jobs":
                for _ in range(rng.randint(1, 3)):
                    submit(farm, q, rng, f"j{n}")
            if fault == "finish" and farm.jobs:
                with farm.lock:
                    farm.jobs.pop(rng.choice(list(farm.jobs)))
            src.artists = max(0, min(TOTAL, src.artists + rng.choice([-2, -1, 0, 1, 2])))
            before = farm.limits[lid].max_count
            n_writes = len(writes)
            farm.tick(clock["now"])
            r = svc.run_cycle()
            after = farm.limits[lid].max_count
            if fault == "none" and r.ok:
                idle = idle_while_capped(farm, q, {})
                res.violations += [
                    f"cycle {n}: {a} caps allow {m} of maxCount {c}" for a, m, c in idle
                ]
            res.cycles += 1
            for old, new in writes[n_writes:]:
                if new == 0 or new < -1:
                    res.violations.append(f"cycle {n}: wrote maxCount {new}")
                if new == old:
                    res.violations.append(f"cycle {n}: wrote {new} over the same value")
                if new > CEILING or new > TOTAL:
                    res.violations.append(f"cycle {n}: {new} above ceiling or total")
            if src.down and after > before and before != -1:
                res.violations.append(f"cycle {n}: raised {before} → {after} while down")
            for job in farm.jobs.values():
                if job.max_worker_count == 0 or job.max_worker_count < -1:
                    res.violations.append(f"cycle {n}: job maxWorkerCount {job.max_worker_count}")
            if len(res.violations) > 20:
                break
        res.seconds = time.monotonic() - t0
        gc.collect()
        res.rss_end_kb, res.fds_end = rss_kb(), fds()
        res.threads_end = threading.active_count()
        svc.history.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true", help="show the service's log")
    args = ap.parse_args()
    if not args.verbose:
        import logging

        logging.getLogger("license_sync").setLevel(logging.CRITICAL)
    r = soak(args.cycles, args.seed)
    print(
        f"{r.cycles} cycles in {r.seconds:.1f} s ({r.seconds / max(1, r.cycles) * 1e3:.1f} ms "
        f"a cycle), seed {args.seed}"
    )
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())))
    print(
        f"RSS: {r.rss_start_kb / 1024:.1f} MiB at start, {r.rss_end_kb / 1024:.1f} MiB at "
        f"the end ({(r.rss_end_kb - r.rss_start_kb) / 1024:+.1f} MiB)"
    )
    print(
        f"open file descriptors: {r.fds_start} → {r.fds_end}; threads: "
        f"{r.threads_start} → {r.threads_end}"
    )
    print(f"invariant violations: {len(r.violations)}")
    for v in r.violations[:20]:
        print("  " + v)


if __name__ == "__main__":
    main()
