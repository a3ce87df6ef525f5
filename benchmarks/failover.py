"""Failover: two `license-sync run` replicas on one DynamoDB table (moto's server on
loopback) and the fake farm as late and unkind as Deadline (REALISTIC); the writer is
killed with SIGKILL at a random moment, again and again, and restarted as the one in
waiting. Each time: how long until the other replica writes, against the bound of one
lease duration plus one interval (and a heartbeat to notice); that no write of the killed
replica lands after the other's first; at the end, `restore --limits` from a third
policy must put every job, the limit and the queues back. Seeded.

    python -m benchmarks.failover [--kills 30] [--seed 1]     (from the checkout's root)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from benchmarks.kills import ORIGINAL_LIMIT, POLICY, ROOT, _restore, _ticking
from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import REALISTIC, FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer

LEASE, HEARTBEAT, INTERVAL = 3.0, 0.5, 1.0
STATE = (
    "state: {{store: dynamodb, table: license-sync, region: us-west-2, "
    "lease: {{duration: {lease}s, heartbeat: {beat}s, margin: 0.5s}}}}\n"
    "metrics: {{address: '127.0.0.1:{port}'}}\n"
)
WRITES = {"UpdateLimit", "BatchUpdateJob", "UpdateJob", "UpdateQueueLimitAssociation"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One `license-sync run`, its own history and metrics port, named in its access key."""

    def __init__(self, name: str, work: Path, farm_id: str, env: dict[str, str]):
        self.name, self.port = name, free_port()
        self.policy = work / f"{name}.yaml"
        self.policy.write_text(
            POLICY.format(db=work / f"{name}.db", farm=farm_id)
            + STATE.format(lease=LEASE, beat=HEARTBEAT, port=self.port)
        )
        self.env = {**env, "AWS_ACCESS_KEY_ID": f"replica-{name}"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.policy.parent / f"{self.name}.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sync", "run", "--config", str(self.policy)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def leads(self) -> bool:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2)
            return 'license_sync_leader{table="license-sync"} 1.0' in text.read().decode()
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def _wait(ok: Any, seconds: float) -> float | None:
    start = time.monotonic()
    while not ok():
        if time.monotonic() - start > seconds:
            return None
        time.sleep(0.05)
    return time.monotonic() - start


def failover(kills: int, seed: int) -> dict[str, Any]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line a DynamoDB call, else

    rng, work = random.Random(seed), Path(tempfile.mkdtemp())
    print(f"replicas' logs in {work}")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    url = "http://{}:{}".format(*moto.get_host_and_port())
    boto3.client("dynamodb", region_name="us-west-2", endpoint_url=url).create_table(
        TableName="license-sync", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )  # fmt: skip
    farm = FakeFarm(**REALISTIC, now=datetime.now(UTC), seed=seed)
    queue, _ = farm.add_queue_with_limit("amount.nuke", ORIGINAL_LIMIT)
    originals = {}
    for _ in range(8):
        mwc = rng.choice([-1, -1, 4, 8, 30])
        job = farm.add_job(queue, "comp", tasks=rng.randint(5, 40), amount="amount.nuke",
                           duration=rng.uniform(5, 60), max_worker_count=mwc)  # fmt: skip
        originals[job] = mwc
    # the server counts artists alone (the farm's tasks hold no license of it): every
    # change of artists is a limit to write, and no read is one a server could not give
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20)])
    status = work / "lmstat.txt"
    writes: list[tuple[float, str]] = []
    call = farm.call

    def recording(operation: str, p: dict[str, Any], caller: str = "service") -> Any:
        answer = call(operation, p, caller)
        if operation in WRITES:
            writes.append((time.monotonic(), caller.rsplit("/", 1)[-1]))
        return answer

    farm.call = recording  # type: ignore[method-assign]
    took: list[float] = []
    violations: list[str] = []
    stop = threading.Event()
    with FakeDeadline(farm) as server:
        env = {
            **os.environ,
            "PATH": f"{ROOT / 'tests' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LM_OUTPUT": str(status), "AWS_ENDPOINT_URL_DEADLINE": server.url,
            "AWS_ENDPOINT_URL_DYNAMODB": url, "AWS_SECRET_ACCESS_KEY": "failover",
            "AWS_EC2_METADATA_DISABLED": "true",
        }  # fmt: skip

        def artists(n: int) -> None:
            lic.set_artists("nuke_r", n)
            tmp = status.with_suffix(".tmp")
            tmp.write_text(lic.lmstat())
            tmp.replace(status)

        artists(4)
        a, b = (Replica(n, work, farm.farm_id, env) for n in ("a", "b"))
        threading.Thread(target=_ticking, args=(farm, stop), daemon=True).start()
        t0 = time.monotonic()
        try:
            a.start()
            b.start()
            for n in range(kills):
                if _wait(lambda: a.leads() or b.leads(), 30) is None:
                    violations.append(f"kill {n}: no replica leads within 30 s")
                    break
                writer, other = (a, b) if a.leads() else (b, a)
                _wait(lambda: time.monotonic() - max((at for at, _ in writes), default=0) > 2, 30)
                time.sleep(rng.uniform(0.2, 3.0))  # a random moment of the writer's cycles
                writer.kill()
                killed = time.monotonic()
                artists(2 if n % 2 else 9)  # another value each time: the limit must move
                key = f"replica-{other.name}"
                t = _wait(lambda k=key, s=killed: any(w == k and at > s for at, w in writes), 60)
                if t is None:
                    violations.append(f"kill {n}: replica {other.name} never wrote")
                    break
                took.append(t)
                late = [at for at, w in writes if w == f"replica-{writer.name}" and at > killed]
                if late:
                    violations.append(f"kill {n}: {len(late)} write(s) of the killed replica")
                writer.start()  # back as the one in waiting
            a.stop()
            b.stop()
            third = Replica("c", work, farm.farm_id, env)
            code, runs, left = _restore(third.policy, third.env, farm, originals)
        finally:
            stop.set()
            a.stop()
            b.stop()
            moto.stop()
    bound = LEASE + INTERVAL + HEARTBEAT
    return {
        "kills": len(took), "violations": violations, "restore_code": code,
        "restore_runs": runs, "restore_left": left, "seconds": time.monotonic() - t0,
        "takeover": sorted(took), "bound": bound,
        "over_bound": [t for t in took if t > bound + 1.0],  # a second for the scheduler
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    r = failover(args.kills, args.seed)
    t = r["takeover"]
    print(f"{r['kills']} kills in {r['seconds']:.0f} s; lease {LEASE:g} s, heartbeat "
          f"{HEARTBEAT:g} s, interval {INTERVAL:g} s (bound {r['bound']:g} s)")  # fmt: skip
    if t:
        print(f"kill -9 to the other's first write: min {t[0]:.1f} s, median "
              f"{statistics.median(t):.1f} s, max {t[-1]:.1f} s; "
              f"{len(r['over_bound'])} over the bound + 1 s")  # fmt: skip
    print(
        f"writes of a killed replica after its kill, and other faults: {r['violations'] or 'none'}"
    )
    print(f"restore --limits: exit {r['restore_code']} after {r['restore_runs']} run(s); "
          f"left: {r['restore_left'] or 'nothing'}")  # fmt: skip
    sys.exit(1 if r["violations"] or r["restore_left"] or r["over_bound"] else 0)


if __name__ == "__main__":
    main()
