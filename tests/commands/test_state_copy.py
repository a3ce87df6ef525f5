"""`license-sync state copy`: the durable memory from a history file to a DynamoDB table
(moto's server on loopback) and back, whole and twice alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.edges.dynamo_state import DynamoState
from sync.edges.history import DURABLE_STATE, History
from sync.values.domain import JobOriginal
from tests.support.clirun import run_cli
from tests.support.dynamo import TABLE, state_table

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FARM = "farm-0123456789abcdef0123456789abcdef"


@pytest.fixture
def table(aws_env, monkeypatch, moto_url):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    return state_table(moto_url)


def a_history(path) -> History:
    h = History(str(path))
    h.set_state("limit_originals", {f"{FARM}/limit-1": 19}, NOW)
    h.set_state("memory", [[FARM, "amount.nuke", None, ["queue-a"], None, [], None]], NOW)
    h.set_state("unadopted_jobs", ["job-9"], NOW)
    rec = JobOriginal("job-1", FARM, "queue-a", "nuke", "limit-1", original=-1, last_written=4)
    h.save_job_originals([rec.as_row()], NOW)
    return h


def memory_of(store) -> tuple:
    rows = {
        k: {c: v for c, v in r.items() if c != "updated"} for k, r in store.job_originals().items()
    }
    return {k: store.get_state(k) for k in DURABLE_STATE}, rows


def test_a_history_copied_to_the_table_and_back_is_the_same_memory(table, tmp_path):
    before = a_history(tmp_path / "h.db")
    src = f"sqlite:{tmp_path / 'h.db'}"
    p = run_cli("state", "copy", "--from", src, "--to", f"dynamodb:{TABLE}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("copied 3 state key(s) and 1 job original(s) from ")
    shared = DynamoState(table, TABLE, None)
    assert memory_of(shared) == memory_of(before)
    again = run_cli("state", "copy", "--from", src, "--to", f"dynamodb:{TABLE}")
    assert again.returncode == 0 and memory_of(shared) == memory_of(before)
    back = tmp_path / "back.db"
    p = run_cli("state", "copy", "--from", f"dynamodb:{TABLE}", "--to", f"sqlite:{back}")
    assert p.returncode == 0, p.stderr
    assert memory_of(History.reading(str(back))) == memory_of(before)


def test_a_job_original_the_source_lacks_is_removed_and_a_bad_store_named(table, tmp_path):
    a_history(tmp_path / "h.db")
    run_cli("state", "copy", "--from", f"sqlite:{tmp_path / 'h.db'}", "--to", f"dynamodb:{TABLE}")
    empty = tmp_path / "empty.db"
    History(str(empty)).close()
    p = run_cli("state", "copy", "--from", f"sqlite:{empty}", "--to", f"dynamodb:{TABLE}")
    assert "1 the source lacks removed" in p.stdout
    assert DynamoState(table, TABLE, None).job_originals() == {}
    bad = run_cli("state", "copy", "--from", "redis:x", "--to", f"dynamodb:{TABLE}")
    assert (
        bad.returncode == 1 and "say sqlite:PATH (a history file) or dynamodb:TABLE" in bad.stderr
    )
