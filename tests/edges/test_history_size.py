"""A history that stays fast for a month: pruning by an index in bounded batches, space
given back, and `license-sync history` reading rows as it prints them."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from sync.edges.history import History
from tests.support.clirun import run_cli

START = datetime(2026, 11, 1, tzinfo=UTC)


def fill(h: History, cycles: int, pools: int = 5, every: float = 60) -> datetime:
    """`cycles` cycles of decisions, one changed in ten; returns the last one's time."""
    for n in range(cycles):
        at = (START + timedelta(seconds=n * every)).isoformat()
        rows = [
            {"at": at, "pool": f"p{p}", "limit_ref": f"amount.p{p}", "current": 5,
             "target": 5 + (n % 10 == 0), "new": 6 if n % 10 == 0 else None,
             "changed": int(n % 10 == 0), "status": "ok", "reason": "x" * 200}
            for p in range(pools)
        ]  # fmt: skip
        h.record_cycle({"started": at, "result": "ok"}, [], rows, [])
    return START + timedelta(seconds=(cycles - 1) * every)


@pytest.fixture
def history(tmp_path):
    h = History(str(tmp_path / "h.db"), keep=3600)
    yield h
    h.close()


def count(h: History, table: str) -> int:
    return h.db.table(table).count


def test_a_backlog_is_pruned_in_bounded_batches_oldest_first(history):
    last = fill(history, 300)  # 5 hours; one is kept
    assert history.prune(last, batch=100) == 200  # 100 decisions and 100 cycles
    assert count(history, "decisions") == 1400
    oldest = next(history.rows("decisions"))["at"]
    assert oldest == (START + timedelta(minutes=20)).isoformat()  # the oldest went first
    while history.prune(last, batch=100):
        pass
    cutoff = (last - timedelta(hours=1)).isoformat()
    assert all(r["at"] >= cutoff for r in history.rows("decisions"))
    assert count(history, "cycles") == 61  # the last hour, its first minute included


def test_pruning_gives_the_space_back(history):
    last = fill(history, 600)
    db = history.db
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    while history.prune(last):
        pass
    assert db.execute("PRAGMA page_count").fetchone()[0] < pages * 0.3


@pytest.mark.parametrize(("table", "column"), [("decisions", "at"), ("cycles", "started")])
def test_pruning_finds_old_rows_by_an_index(history, table, column):
    plan = " ".join(
        str(r[-1])
        for r in history.db.execute(
            f"EXPLAIN QUERY PLAN SELECT rowid FROM [{table}] WHERE [{column}] < ? "
            f"ORDER BY [{column}] LIMIT 10",
            ["2026"],
        )
    )
    assert "USING" in plan and "INDEX" in plan, plan  # not a scan of the whole table


def test_an_old_history_gets_its_time_indexes(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE decisions (cycle_id INTEGER, at TEXT, pool TEXT)")
    conn.close()
    h = History(str(path))
    assert "idx_decisions_at" in {i.name for i in h.db.table("decisions").indexes}
    h.close()


def test_history_prints_a_long_table_aligned_and_filters_in_sql(history, tmp_path):
    fill(history, 500)
    db = str(tmp_path / "h.db")
    p = run_cli("history", "--db", db)  # changed or failed: one cycle in ten
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 1 + 50 * 5
    p = run_cli("history", "--db", db, "--all")
    lines = p.stdout.splitlines()
    assert len(lines) == 1 + 2500 and lines[0].startswith("at ")  # one header
    assert len({line.index(" p", 18) for line in lines[1:]}) == 1  # one column layout
    rows = json.loads(run_cli("history", "--db", db, "--all", "--format", "json").stdout)
    assert len(rows) == 2500 and rows[0]["pool"] == "p0"
    empty = run_cli("history", "--db", db, "--since", "1m", "--format", "json")
    assert json.loads(empty.stdout) == []
