"""What the service remembers of each limit across a restart, in the history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.cycle.memory import MemoryStore
from sync.edges.history import History
from sync.values.domain import LimitMemory

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
KEY = ("farm-0123456789abcdef0123456789abcdef", "amount.nuke")


def test_a_rise_in_progress_survives_a_restart_with_its_times(tmp_path):
    path = str(tmp_path / "h.db")
    rising = LimitMemory(
        ("queue-a",),
        external=3,
        stamps=(("queue-a", ("2026-12-03T11:00:00+00:00", "me")),),
        rising_since=NOW - timedelta(seconds=90),
        stepped_at=NOW - timedelta(seconds=30),
    )
    store = MemoryStore(History(path))
    store.load()
    store.save_limits({KEY: rising}, NOW)
    store.history.close()
    assert MemoryStore(History(path)).load().limits[KEY] == rising


def test_a_row_kept_while_settle_counted_cycles_settles_again(tmp_path):
    path = str(tmp_path / "h.db")
    history = History(path)
    stamp = ["queue-a", "2026-12-03T11:00:00+00:00", "me"]
    history.set_state("memory", [[*KEY, 2, ["queue-a"], 3, [stamp]]], NOW)  # a count
    history.close()
    kept = MemoryStore(History(path)).load().limits[KEY]
    assert kept == LimitMemory(("queue-a",), 3, (("queue-a", (stamp[1], stamp[2])),))
    assert kept.rising_since is None and kept.stepped_at is None
