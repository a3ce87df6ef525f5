"""The lease and the durable memory in DynamoDB, against a real DynamoDB-compatible
server on loopback (moto's server mode) through boto3."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.edges.dynamo_state import DynamoState
from sync.edges.lease import Lease
from sync.values.errors import StateError
from tests.support.dynamo import TABLE, state_table

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(aws_env, moto_url):
    return state_table(moto_url)


class Clock:
    """A replica's own monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def replica(client, name: str, clock: Clock, duration: float = 20.0) -> Lease:
    return Lease(client, TABLE, name, duration, monotonic=clock)


def test_one_replica_holds_the_lease_and_another_waits_while_it_beats(dynamodb):
    a_clock, b_clock = Clock(), Clock()
    a, b = replica(dynamodb, "a", a_clock), replica(dynamodb, "b", b_clock)
    assert a.beat() and a.held and a.remaining() == 20.0
    for _ in range(10):  # a renews every 5 s; b sees a new version each time
        a_clock.t += 5
        b_clock.t += 5
        assert a.beat() and not b.beat()
    assert a.remaining() == 20.0 and b.remaining() == 0.0


def test_a_replica_takes_over_only_after_a_whole_duration_of_the_same_version(dynamodb):
    a_clock, b_clock = Clock(), Clock()
    a, b = replica(dynamodb, "a", a_clock), replica(dynamodb, "b", b_clock)
    assert a.beat()
    assert not b.beat()  # b first sees a's version: its count starts now, on its own clock
    b_clock.t += 19.9
    assert not b.beat()
    b_clock.t += 0.2
    assert b.beat() and b.held
    # a, frozen meanwhile (a pause, a partition), finds the lease gone at its next beat
    a_clock.t += 5
    assert not a.beat() and not a.held


def test_remaining_counts_from_when_the_last_renewal_was_sent(dynamodb):
    clock = Clock()
    a = replica(dynamodb, "a", clock)
    assert a.beat()
    clock.t += 15
    assert a.remaining() == 5.0 and a.held
    clock.t += 5
    assert a.remaining() == 0.0 and not a.held


def test_a_released_lease_is_taken_at_once(dynamodb):
    a, b = replica(dynamodb, "a", Clock()), replica(dynamodb, "b", Clock())
    assert a.beat()
    a.release()
    assert b.beat()  # a rolling update: the new replica need not wait a duration


def test_the_durable_memory_is_read_by_any_replica_and_written_by_the_holder_only(dynamodb):
    a_clock, b_clock = Clock(), Clock()
    a, b = replica(dynamodb, "a", a_clock), replica(dynamodb, "b", b_clock)
    assert a.beat()
    mine, theirs = DynamoState(dynamodb, TABLE, a), DynamoState(dynamodb, TABLE, b)
    mine.set_state("limit_originals", {"farm/limit": 19}, NOW)
    rows = [{"job_id": f"job-{i}", "original": -1, "last_written": 4} for i in range(150)]
    mine.save_job_originals(rows, NOW)  # two transactions of at most 99 writes each
    assert theirs.get_state("limit_originals") == {"farm/limit": 19}
    assert len(theirs.job_originals()) == 150
    assert theirs.job_originals()["job-7"]["last_written"] == 4
    with pytest.raises(StateError, match="lease is not held"):
        theirs.set_state("memory", [], NOW)
    # a deposed writer: b takes over while a is frozen; a's write is refused, not landed
    b.beat()
    b_clock.t += 21
    assert b.beat()
    with pytest.raises(StateError, match="the lease passed to another replica"):
        mine.set_state("limit_originals", {}, NOW)
    assert theirs.get_state("limit_originals") == {"farm/limit": 19}
    theirs.drop_job_originals([f"job-{i}" for i in range(100)])
    assert len(mine.job_originals()) == 50


def test_a_missing_table_or_one_of_another_shape_is_one_clear_error(dynamodb):
    with pytest.raises(StateError, match="dynamodb:nope: no such table"):
        DynamoState(dynamodb, "nope", None).check()
    dynamodb.create_table(
        TableName="other",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(StateError, match="not a license-sync state table"):
        DynamoState(dynamodb, "other", None).check()
    DynamoState(dynamodb, TABLE, None).check()


def test_a_one_off_writer_takes_a_dead_writers_lease_after_a_duration_not_a_live_ones(dynamodb):
    a_clock, b_clock = Clock(), Clock()
    a, b = replica(dynamodb, "a", a_clock), replica(dynamodb, "b", b_clock)
    assert a.beat()

    def renewing(seconds: float) -> None:  # while b waits, a goes on renewing
        for _ in range(int(seconds // 5) + 1):
            a_clock.t += 5
            a.beat()
        b_clock.t += seconds

    assert not b.take(sleep=renewing)

    def dead(seconds: float) -> None:  # a stopped: nothing renews it while b waits
        b_clock.t += seconds

    assert b.take(sleep=dead) and b.held
    assert b.take(sleep=lambda _: pytest.fail("held, yet it waited"))
