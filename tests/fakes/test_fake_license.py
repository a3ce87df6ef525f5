"""The fake license server beside the fake farm: the demo's two threads never deadlock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer


def test_the_clock_and_lmstat_readers_never_deadlock():
    farm = FakeFarm(count_delay=0)
    q, _ = farm.add_queue_with_limit("amount.nuke", 50)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20, "amount.nuke")])
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    done = []

    def clock():  # the demo's clock thread: tasks start and check licenses out
        for i in range(400):
            farm.add_job(q, f"j{i}", tasks=2, amount="amount.nuke", duration=1)
            farm.tick(t0 + timedelta(seconds=i))
        done.append("clock")

    def reader():  # lmutil asking the fake server for its status
        for _ in range(400):
            lic.lmstat()
        done.append("reader")

    threads = [threading.Thread(target=f, daemon=True) for f in (clock, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)  # a bound, not a wait: both finish in well under a second
    assert sorted(done) == ["clock", "reader"]
