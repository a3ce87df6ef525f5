"""A service under the writer's lease (a real DynamoDB-compatible server on loopback, the
lease's clock injected): it writes while it holds the lease with time left, and no write
is sent that could outlast it."""

from __future__ import annotations

import pytest

from sync.cycle.service import Service
from sync.edges.deadline import Deadline, make_client
from sync.edges.dynamo_state import DynamoState
from sync.edges.history import History
from sync.edges.lease import Lease
from sync.edges.metrics import Metrics
from sync.policy import load_policy
from tests.support.dynamo import TABLE, state_table
from tests.support.fakes import Clock, FakeSource
from tests.support.policy import RENDER_HOSTS, policy, pool, write_policy


class Monotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def leased(sim, tmp_path, moto_url):
    farm = sim.farm
    _, lid = farm.add_queue_with_limit("amount.nuke", 19)
    lease_settings = {"duration": "30s", "heartbeat": "5s", "margin": "5s"}
    doc = policy(farm.farm_id, history=tmp_path / "h.db", pools={
        "nuke": pool(farm_selector=RENDER_HOSTS, headroom=1, hysteresis={"settle": 1}),
    }, state={"store": "dynamodb", "table": TABLE, "lease": lease_settings})  # fmt: skip
    write_policy(tmp_path / "p.yaml", doc)
    client = state_table(moto_url)
    mono, src, metrics = Monotonic(), FakeSource("lic"), Metrics()
    lease = Lease(client, TABLE, "me", 30.0, monotonic=mono)
    svc = Service(
        load_policy(tmp_path / "p.yaml"),
        deadline_factory=lambda f: Deadline(make_client("us-west-2", sim.url), f.id),
        metrics=metrics,
        history=History(str(tmp_path / "h.db")),
        clock=Clock(),
        source_factory=lambda name, cfg: src,
        durable=DynamoState(client, TABLE, lease),
        lease=lease,
    )
    svc.sim = sim  # its calls counted
    return svc, lease, mono, src, farm.limits[lid], client


def test_a_write_that_could_outlast_the_lease_is_not_sent(leased):
    svc, _, mono, src, limit, _ = leased
    assert svc.beat()
    src.artists = 5
    assert svc.run_cycle().ok and limit.max_count == 14  # 20 − 5 − headroom 1
    mono.t += 24.5  # 5.5 s left: less than the margin (5 s) and a second to send in
    src.artists = 7
    result = svc.run_cycle()
    assert limit.max_count == 14
    assert any("left on the lease: not sent" in e for e in result.errors), result.errors
    assert svc.beat()  # renewed: the next cycle writes it
    assert svc.run_cycle().ok and limit.max_count == 12


def test_a_replica_in_waiting_writes_nothing_and_says_so(leased):
    svc, _, mono, src, limit, client = leased
    other = Lease(client, TABLE, "other", 30.0, monotonic=Monotonic())
    assert other.beat()  # another replica holds it
    assert not svc.beat()
    src.artists = 5
    before = sum(svc.sim.calls.values())
    result = svc.run_cycle()
    svc.audit_setup()
    assert limit.max_count == 19 and result.errors == []
    # it read its license servers alone, as an exporter does: the writer reads the farm
    assert sum(svc.sim.calls.values()) == before
    _, why = svc.ready()
    assert why.startswith("waiting: another replica holds the writer's lease")
    value = svc.metrics.registry.get_sample_value("license_sync_leader", {"table": TABLE})
    assert value == 0.0
    # the other stops renewing: after a whole duration of its version, this one takes over
    mono.t += 30.5
    assert (
        svc.beat()
        and svc.metrics.registry.get_sample_value("license_sync_leader", {"table": TABLE}) == 1.0
    )
    assert svc.run_cycle().ok and limit.max_count == 14


def test_a_steady_cycle_calls_the_table_not_at_all(leased):
    svc, _, _, src, limit, client = leased
    calls: list[str] = []
    client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    assert svc.beat() and calls == ["GetItem", "PutItem"]  # the lease read, then taken
    calls.clear()
    src.artists = 5
    assert svc.run_cycle().ok and limit.max_count == 14
    # the first cycle as the writer: the memory read anew, then what it changed written
    assert set(calls) == {"GetItem", "Scan", "TransactWriteItems"}, calls
    calls.clear()
    for _ in range(3):
        assert svc.run_cycle().ok
    assert calls == [], calls  # nothing moved: nothing read or written but Deadline's
