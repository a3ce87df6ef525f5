"""`license-sync demo`: the real service, through boto3, against simulators on loopback."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync.sim.farm import SimFarm
from sync.sim.license import SimFeature, SimLicenseServer
from sync.sim.lmutil import write_wrapper
from sync.sim.server import SimServer

POLICY = """\
# The demo's policy: written by `license-sync demo`; edit it while the demo runs and
# watch it reload. Every option is documented in config/policy.example.yaml.
interval: {interval}s
history: {{path: {history}, keep: 1d}}
metrics: {{address: "{address}"}}
farms:
  - id: {farm}
    region: us-west-2
sources:
  studio-flexlm: {{kind: flexlm, servers: ["27000@lic1"], executable: {lmutil}, timeout: 10s}}
  studio-rlm: {{kind: rlm, servers: ["5053@rlm1"], executable: {rlmutil}, timeout: 10s}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: studio-flexlm, feature: nuke_r}}]
    farm_selector: {{hosts: ["^render-"]}}
    reserve: 1
    headroom: 1
    hysteresis: {{settle: 2, max_step: 4}}
    jobs: {{policy: fair, min_workers: 1}}
  maya:
    limit: amount.maya
    features: [{{source: studio-rlm, feature: maya}}]
    farm_selector: {{hosts: ["^render-"]}}
    headroom: 1
    on_exhausted: pause
"""


class DemoWorld:
    """The simulated farm and license server, stepped by a clock thread."""

    def __init__(self, seed: int = 7):
        self.farm = SimFarm(count_delay=8.0, seed=seed)
        self.queues = [self.farm.add_queue(), self.farm.add_queue()]
        self.limits = {
            "amount.nuke": self.farm.add_limit("amount.nuke", 12, "Nuke"),
            "amount.maya": self.farm.add_limit("amount.maya", 6, "Maya"),
        }
        for q in self.queues:
            for lim in self.limits.values():
                self.farm.associate(q, lim)
        self.license = SimLicenseServer(
            self.farm,
            [
                SimFeature("nuke_r", 20, "amount.nuke", "foundry", "flexlm"),
                SimFeature("maya", 10, "amount.maya", "adskflex", "rlm"),
            ],
            host="lic1",
            port=27000,
            seed=seed,
        )
        self.license.set_artists("nuke_r", 8)
        self.license.set_artists("maya", 4)
        self.server = SimServer(self.farm, license_text=self.license.text)
        self._stop = threading.Event()
        self._n = 0

    def step(self, now: datetime) -> None:
        self._n += 1
        with self.farm.lock:
            active = [j for j in self.farm.jobs.values() if not j.finished]
            if len(active) < 6:
                amount = "amount.nuke" if self._n % 3 else "amount.maya"
                self.farm.add_job(
                    self.queues[self._n % 2],
                    f"shot_{self._n:03d}_comp",
                    tasks=self.farm.rng.randint(10, 40),
                    amount=amount,
                    priority=self.farm.rng.choice([30, 50, 70]),
                    duration=self.farm.rng.uniform(8, 25),
                )
        self.farm.tick(now)
        if self._n % 3 == 0:
            self.license.walk(now, peak=0.5)

    def start(self) -> None:
        self.server.start()

        def loop() -> None:
            while not self._stop.wait(1.0):
                self.step(datetime.now(UTC))

        threading.Thread(target=loop, name="sim-clock", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()


def run_demo(
    address: str = "127.0.0.1:9462",
    interval: float = 5.0,
    workdir: str | None = None,
    cycles: int | None = None,
) -> int:
    from sync.commands import format_decision_line, open_history, serve
    from sync.deadline import factory_for
    from sync.metrics import Metrics
    from sync.policy import load_policy
    from sync.service import Service

    work = Path(workdir or "license-sync-demo").resolve()
    work.mkdir(parents=True, exist_ok=True)
    world = DemoWorld()
    world.start()
    # The real boto3 client, pointed at the simulator with throwaway credentials.
    os.environ["AWS_ENDPOINT_URL_DEADLINE"] = world.server.url
    os.environ["AWS_ACCESS_KEY_ID"] = "demo"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "demo"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["LICENSE_SYNC_SIM_URL"] = world.server.url
    lmutil = write_wrapper(str(work / "lmutil"), world.server.url)
    rlmutil = write_wrapper(str(work / "rlmutil"), world.server.url)
    history_path = work / "history.db"
    policy_path = work / "policy.yaml"
    policy_path.write_text(
        POLICY.format(
            interval=interval,
            history=history_path,
            address=address,
            farm=world.farm.farm_id,
            lmutil=lmutil,
            rlmutil=rlmutil,
        )
    )
    loaded = load_policy(policy_path)
    metrics = Metrics()

    factory = factory_for(metrics)

    svc = Service(
        loaded,
        deadline_factory=factory,
        metrics=metrics,
        history=open_history(str(history_path), loaded.policy.history.keep, metrics),
    )
    print("license-sync demo: a simulated license server and Deadline farm on loopback")
    print(f"  Deadline endpoint  {world.server.url}  (farm {world.farm.farm_id})")
    print(f"  policy             {policy_path}")
    print(f"  history            {history_path}")
    print(f"  metrics            http://{address}/metrics")
    print("  Ctrl-C to stop.\n", flush=True)
    n = {"cycle": 0}

    def on_cycle(result: Any) -> None:
        n["cycle"] += 1
        stamp = result.started.astimezone().strftime("%H:%M:%S")
        for pp in result.plan.pools.values():
            for d in pp.decisions:
                print(f"{stamp} #{n['cycle']:<3} {format_decision_line(d, pp.figures)}", flush=True)
        for jp in result.jobs:
            caps = {a.job_id: a.cap for a in jp.allocations}
            shown = ", ".join(f"{j.name}={caps.get(j.job_id)}" for j in jp.jobs[:6])
            more = f" (+{len(jp.jobs) - 6} more)" if len(jp.jobs) > 6 else ""
            print(
                f"{stamp} #{n['cycle']:<3}   {jp.pool}: {len(jp.jobs)} jobs share "
                f"{jp.capacity} (demand {jp.demand}): maxWorkerCount {shown}{more}",
                flush=True,
            )
        for e in result.errors:
            print(f"{stamp} #{n['cycle']:<3} error: {e}", flush=True)

    try:
        return serve(svc, address, on_cycle=on_cycle, max_cycles=cycles)
    finally:
        world.stop()
        print(
            f"\ndemo stopped; denials seen by the farm: {world.farm.denials}. "
            f"History kept in {history_path}:\n  license-sync history --db {history_path}"
        )
