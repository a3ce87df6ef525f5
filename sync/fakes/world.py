"""The demo's world: a fake farm and a fake license server on loopback, with artists and
jobs coming and going on a clock thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import REALISTIC, FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer


class DemoWorld:
    """The simulated farm and license server, stepped by a clock thread."""

    def __init__(self, seed: int = 7):
        self.farm = FakeFarm(**REALISTIC, seed=seed)  # as late and as unkind as Deadline
        self.queues = [self.farm.add_queue(), self.farm.add_queue()]
        self.limits = {
            "amount.nuke": self.farm.add_limit("amount.nuke", 12, "Nuke"),
            "amount.maya": self.farm.add_limit("amount.maya", 6, "Maya"),
        }
        for q in self.queues:
            for lim in self.limits.values():
                self.farm.associate(q, lim)
        self.license = FakeLicenseServer(
            self.farm,
            [
                FakeFeature("nuke_r", 20, "amount.nuke", "foundry", "flexlm"),
                FakeFeature("maya", 10, "amount.maya", "adskflex", "rlm"),
            ],
            host="lic1",
            port=27000,
            seed=seed,
        )
        self.license.set_artists("nuke_r", 8)
        self.license.set_artists("maya", 4)
        self.server = FakeDeadline(self.farm, license_text=self.license.text)
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
