"""One cycle at a time, with the clock injected, against the simulated endpoint over HTTP."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.cycle.service import Service
from sync.cycle.writes import WRITES
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.edges.http_endpoint import HealthServer
from sync.edges.metrics import Metrics
from sync.law.render import decision_line
from sync.licenses import Server, Vendor
from sync.policy import load_policy
from tests.support.clirun import run_cli
from tests.support.fakes import Clock, FakeSource
from tests.support.paths import FIXTURES as FIXTURES_DIR
from tests.support.paths import ROOT
from tests.support.policy import (
    RENDER_HOSTS,
    edit_policy,
    edit_pool,
    edit_source,
    policy,
    pool,
    write_policy,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def studio_policy(path: Path, farm: str) -> Path:
    hysteresis = {"settle": 2, "max_step": 10}
    nuke = pool(farm_selector=RENDER_HOSTS, headroom=1, stale_after="5m", hysteresis=hysteresis)
    keep = {"keep": "1d"}
    pools = {"nuke": nuke}
    doc = policy(
        farm, history=path.parent / "h.db", history_settings=keep, pools=pools, interval="60s"
    )
    return write_policy(path, doc)


@pytest.fixture
def world(sim, tmp_path):
    farm = sim.farm
    q, lid = farm.add_queue_with_limit("amount.nuke", 19)
    policy = tmp_path / "policy.yaml"
    studio_policy(policy, farm.farm_id)
    src = FakeSource("lic")
    clock = Clock()
    metrics = Metrics()
    svc = Service(
        load_policy(policy),
        deadline_factory=lambda f: Deadline(
            make_client("us-west-2", sim.url), f.id, on_call=metrics.count_call
        ),
        metrics=metrics,
        history=History(str(tmp_path / "h.db"), keep=86400),
        clock=clock,
        source_factory=lambda name, cfg: src,
        policy_quiet=0,  # edits here are whole: reload them at once
    )

    class W:
        pass

    w = W()
    w.sim, w.farm, w.limit_id, w.queue, w.policy, w.src, w.clock, w.svc, w.metrics = (
        sim,
        farm,
        lid,
        q,
        policy,
        src,
        clock,
        svc,
        metrics,
    )
    return w


def reloads(w, result: str) -> float | None:
    """The policy reload counter, as a scrape reads it."""
    return w.metrics.registry.get_sample_value(
        "license_sync_policy_reloads_total", {"result": result}
    )


def cycle(w, seconds: float = 60):
    w.clock.advance(seconds)
    return w.svc.run_cycle()


def max_count(w) -> int:
    return w.farm.limits[w.limit_id].max_count


def test_limit_follows_artist_checkouts(world):
    w = world
    w.src.artists = 5
    r = cycle(w)
    assert r.ok, r.errors
    assert max_count(w) == 14  # 20 − 5 external − 1 headroom, at once (a decrease)
    w.src.artists = 2
    cycle(w)
    assert max_count(w) == 14  # an increase waits one more cycle (settle 2)
    cycle(w)
    assert max_count(w) == 17


def farm_runs(w, n: int) -> None:
    """`n` tasks of the farm running under the limit: the checkouts `w.src.farm` shows."""
    w.farm.add_job(w.queue, "comp", tasks=n, amount="amount.nuke", duration=100_000)
    w.farm.tick(w.farm.now)
    w.src.farm = n


def test_farm_checkouts_are_not_external(world):
    w = world
    w.src.artists = 3
    farm_runs(w, 6)
    cycle(w)
    assert max_count(w) == 16  # 20 − 3 − 1: the farm's 6 stay inside the limit


def test_farm_checkouts_no_limit_counts_are_taken_from_what_the_limit_may_let_run(world):
    """6 farm checkouts, of which the limit's tasks hold 2: the other 4 are used around
    the limit (docs/design.md, "Use around the limit") and not left for declared tasks."""
    w = world
    w.src.artists = 3
    farm_runs(w, 2)
    busy = [wk.host_name for f in w.farm.fleets.values() for wk in f.workers if wk.session]
    w.src.farm_hosts = [*busy, "render-50", "render-51", "render-52", "render-53"]
    w.src.farm = 6
    cycle(w)  # one read: a run that just ended may still hold its license
    assert max_count(w) == 16
    assert w.svc.history.query("undeclared") == []  # seen once: no one's to answer for
    r = cycle(w)  # the second read confirms it
    assert max_count(w) == 12  # 20 − 3 − 4 − 1
    assert r.plan.limits.pools["nuke"].figures.undeclared == 4
    kept = w.svc.history.query("undeclared")  # hosts no worker of the farm is on
    assert sorted((row["host"], row["count"], row["job_id"]) for row in kept) == [
        (f"render-5{i}", 1, "") for i in range(4)
    ]


def test_a_license_held_around_the_limit_for_one_read_is_not_taken(world):
    """A checkout that outlives its run for one cycle (the process exits after its task
    ended) is no use around the limit: only what two reads in a row show is taken."""
    w = world
    w.src.artists = 3
    farm_runs(w, 2)
    w.src.farm = 6
    cycle(w)
    w.src.farm = 2
    r = cycle(w)
    assert max_count(w) == 16
    assert r.plan.limits.pools["nuke"].figures.undeclared == 0


def test_a_selector_of_the_farms_workers_counts_checkouts_on_their_hosts_as_the_farms(world):
    """`farm_selector: {workers: true}`: the hosts are the workers' own (ListWorkers
    hostProperties), matched by short name in any case or by IPv4 address; a host that
    merely looks like a render node is an artist's."""
    w = world
    edit_pool(w.policy, farm_selector={"workers": True})
    w.src.artists = 3
    farm_runs(w, 4)
    workers = [wk for f in w.farm.fleets.values() for wk in f.workers]
    hosts = [f"{wk.host_name.upper()}.farm.local" for wk in workers[:3]] + [workers[3].ip]
    w.src.farm_hosts = [*hosts, "render-999"]
    w.src.farm = 5
    r = cycle(w)
    fig = r.plan.pools["nuke"].figures
    assert fig is not None and fig.farm_use_from == "selector"
    assert (fig.farm_use, fig.external) == (4, 4)  # render-999 is no worker: an artist's
    assert max_count(w) == 20 - 4 - 1


def test_dry_run_writes_nothing(world):
    w = world
    w.svc.dry_run = True
    w.src.artists = 10
    r = cycle(w)
    assert [d.new for d in r.plan.changes] == [9]
    assert max_count(w) == 19
    assert not any(op == "UpdateLimit" for op, _ in w.farm.writes)


def test_history_records_cycles_observations_and_decisions(world):
    w = world
    w.src.artists = 5
    cycle(w)
    h = w.svc.history
    [c] = h.query("cycles")
    assert (c["result"], c["changes"]) == ("ok", 1)
    [o] = h.query("observations")
    assert (o["source"], o["feature"], o["total"], o["in_use"]) == ("lic", "nuke_r", 20, 5)
    [d] = h.query("decisions")
    assert (d["current"], d["target"], d["new"], d["applied"], d["external"]) == (19, 14, 14, 1, 5)
    assert "decrease 19 → 14" in d["reason"]


def test_history_survives_restart_with_memory(world, tmp_path):
    w = world
    w.src.artists = 5
    cycle(w)
    w.src.artists = 0
    cycle(w)  # the increase has held 1 of 2 cycles
    again = Service(
        w.svc.loaded,
        deadline_factory=w.svc.deadline_factory,
        clock=w.clock,
        history=History(str(tmp_path / "h.db")),
        source_factory=lambda n, c: w.src,
    )
    w.clock.advance(60)
    again.run_cycle()
    assert max_count(w) == 19  # the settle count was remembered across the restart


@pytest.mark.parametrize(("total", "in_use"), [(0, 5), (20, 25)])
def test_an_impossible_read_is_held_not_acted_on(world, total, in_use):
    w = world
    w.src.artists = 5
    cycle(w)
    assert max_count(w) == 14
    w.src.total, w.src.artists = total, in_use  # a server restarting, a garbled answer
    r = cycle(w, 60)
    assert max_count(w) == 14 and r.plan.decisions[0].status == "down"
    said = r.observed.sources["lic"].report.errors
    assert any("impossible read of nuke_r" in e for e in said), said


def test_a_restart_during_an_outage_holds_until_stale_after_from_the_last_good_read(
    world, tmp_path
):
    w = world
    w.src.artists = 5
    cycle(w)
    assert max_count(w) == 14
    w.src.up = False
    cycle(w, 60)  # down: held
    w.svc.history.close()
    w.svc = Service(
        w.svc.loaded,
        deadline_factory=w.svc.deadline_factory,
        clock=w.clock,
        history=History(str(tmp_path / "h.db")),
        source_factory=lambda n, c: w.src,
    )  # restarted while the server is still down
    r = cycle(w, 60)  # 120 s since the last good read: within stale_after 5m
    assert max_count(w) == 14 and r.plan.decisions[0].status == "down"
    r = cycle(w, 200)  # 320 s since it: stale, as it would have been without the restart
    assert max_count(w) == 1 and r.plan.decisions[0].status == "stale"


def test_source_down_holds_then_floor_then_recovers(world):
    w = world
    w.src.artists = 5
    cycle(w)
    assert max_count(w) == 14
    w.src.up = False
    r = cycle(w, 60)
    assert max_count(w) == 14 and r.plan.decisions[0].status == "down"
    cycle(w, 200)  # 260 s since the last good read: still within stale_after 5m
    assert max_count(w) == 14
    r = cycle(w, 60)  # 320 s: stale
    assert max_count(w) == 1 and r.plan.decisions[0].status == "stale"
    w.src.up = True
    cycle(w)
    cycle(w)
    assert max_count(w) == 11  # rises again, by max_step 10 per cycle once settled
    cycle(w)
    assert max_count(w) == 14


def test_limit_deleted_while_in_policy_is_an_error_not_a_crash(world):
    w = world
    del w.farm.limits[w.limit_id]
    r = cycle(w)
    assert not r.ok
    assert "not found" in r.errors[0]
    assert w.svc.history.query("errors")[0]["message"] == r.errors[0]


def test_policy_change_picked_up_without_restart(world):
    w = world
    w.src.artists = 0
    edit_pool(w.policy, ceiling=7)
    cycle(w)
    assert max_count(w) == 7
    assert reloads(w, "ok") == 2


@pytest.mark.parametrize(
    "bad",
    [
        "pools: [\n",  # YAML broken
        "",  # truncated in place
        "farms: []\nsources: {}\npools: {}\n",  # valid YAML, invalid policy
        None,  # deleted
    ],
)
def test_invalid_policy_edit_keeps_the_last_good_policy(world, bad):
    w = world
    w.src.artists = 5
    if bad is None:
        w.policy.unlink()
    else:
        w.policy.write_text(bad)
    r = cycle(w)
    assert max_count(w) == 14  # the last good policy still ran
    assert r.plan.pools.keys() == {"nuke"}
    assert reloads(w, "error") == 1
    cycle(w)  # the same bad file is counted once, not every cycle
    assert reloads(w, "error") == 1


def test_metrics_over_http(world):
    w = world
    w.src.artists = 4
    farm_runs(w, 2)
    cycle(w)
    server = HealthServer(w.metrics, "127.0.0.1:0", w.svc.ready).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
        assert 'license_sync_license_issued{feature="nuke_r",pool="nuke",source="lic"} 20.0' in text
        assert 'license_sync_license_in_use_external{pool="nuke"} 4.0' in text
        assert 'license_sync_license_in_use_farm{pool="nuke"} 2.0' in text
        assert 'license_sync_limit_max{limit="amount.nuke",pool="nuke"} 15.0' in text
        assert 'license_sync_limit_target{limit="amount.nuke",pool="nuke"} 15.0' in text
        assert 'license_sync_source_up{source="lic"} 1.0' in text
        assert 'license_sync_api_calls_total{operation="UpdateLimit",outcome="ok"} 1.0' in text
        assert 'license_sync_cycles_total{result="ok"} 1.0' in text
        assert 'license_sync_changes_total{kind="max_count"} 1.0' in text
        # every kind of write has its series from the start, even one never made yet
        docs = (ROOT / "docs/operations.md").read_text()
        for kind in {k.kind for k in WRITES} - {"max_count"}:
            assert f'license_sync_changes_total{{kind="{kind}"}} 0.0' in text
            assert f"`{kind}`" in docs  # and docs/operations.md says it exists
        assert "license_sync_license_expiry_timestamp_seconds" in text
        assert f'license_sync_policy_info{{sha="{w.svc.loaded.sha}"}} 1.0' in text
        assert urllib.request.urlopen(f"{base}/healthz", timeout=10).status == 200
        assert urllib.request.urlopen(f"{base}/readyz", timeout=10).status == 200
        w.clock.advance(4 * 60)  # no successful cycle for 3 intervals
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}/readyz", timeout=10)
        assert e.value.code == 503
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}/anything-else", timeout=10)
        assert e.value.code == 404
    finally:
        server.stop()


def test_pool_removed_from_policy_leaves_metrics(world):
    w = world
    cycle(w)
    assert b'pool="nuke"' in w.metrics.exposition()
    edit_policy(w.policy, lambda doc: doc["pools"].update(nuke2=doc["pools"].pop("nuke")))
    cycle(w)
    exp = w.metrics.exposition()
    assert b'pool="nuke"' not in exp and b'pool="nuke2"' in exp


def test_history_cli(world, tmp_path):
    w = world
    w.src.artists = 5
    cycle(w)
    db = str(tmp_path / "h.db")

    def run(*a):
        return run_cli("history", "--db", db, *a)

    table = run()
    assert table.returncode == 0
    assert "decrease 19 → 14" in table.stdout
    rows = json.loads(run("--format", "json").stdout)
    assert rows[0]["new"] == 14
    csv_out = run("--format", "csv", "--table", "cycles").stdout.splitlines()
    assert csv_out[0].startswith("id,") and len(csv_out) == 2
    other = run("--pool", "other")  # a typo is an error, not an empty table
    assert other.returncode == 1 and "no pool 'other' in the history" in other.stderr
    assert "pools: nuke" in other.stderr
    missing = run_cli("history", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and "no history at" in missing.stderr


def test_history_file_is_private(world, tmp_path):
    assert (Path(tmp_path / "h.db").stat().st_mode & 0o777) == 0o600


def test_each_server_of_a_triad_and_each_vendor_daemon_has_its_status(world):
    w = world
    w.src.servers = (
        Server("lic1", 27000, "up", master=True),
        Server("lic2", 27000, "down", master=False, message="Cannot connect"),
        Server("lic3", 27000, "up", master=False),
    )
    w.src.vendors = (Vendor("foundry", "up", "v11.19"), Vendor("adskflex", "down"))
    cycle(w)
    sample = w.metrics.registry.get_sample_value
    up = "license_sync_license_server_up"
    assert sample(up, {"source": "lic", "host": "27000@lic1", "master": "true"}) == 1
    assert sample(up, {"source": "lic", "host": "27000@lic2", "master": "false"}) == 0
    assert sample(up, {"source": "lic", "host": "27000@lic3", "master": "false"}) == 1
    daemon = "license_sync_vendor_daemon_up"
    assert sample(daemon, {"source": "lic", "vendor": "foundry"}) == 1
    assert sample(daemon, {"source": "lic", "vendor": "adskflex"}) == 0


def test_expiry_is_midnight_utc_whatever_the_hosts_time_zone(world, monkeypatch):
    import time as clock

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    clock.tzset()
    try:
        cycle(world)
        labels = {"pool": "nuke", "feature": "nuke_r", "source": "lic"}
        expiry = world.metrics.registry.get_sample_value(
            "license_sync_license_expiry_timestamp_seconds", labels
        )
    finally:
        monkeypatch.undo()
        clock.tzset()
    assert expiry == datetime(2027, 1, 31, tzinfo=UTC).timestamp()


def test_retention_prunes_old_rows(world):
    w = world
    cycle(w)
    w.clock.advance(2 * 86400)
    w.svc.history.prune(w.clock())
    assert w.svc.history.query("cycles") == []


def test_reloaded_retention_applies(world):
    w = world
    edit_policy(w.policy, lambda doc: doc["history"].update(keep="2h"))
    cycle(w)
    assert w.svc.history.keep == 7200


def test_unchanged_policy_is_hashed_not_parsed_and_a_bad_edit_parsed_once(world, monkeypatch):
    import sync.cycle.reload

    w = world
    parsed = []
    real = sync.cycle.reload.parse_policy
    monkeypatch.setattr(
        sync.cycle.reload,
        "parse_policy",
        lambda text, name: parsed.append(name) or real(text, name),
    )
    for _ in range(3):
        cycle(w)
    assert parsed == []  # the file did not change: no YAML parse, no validation
    good = w.policy.read_text()
    w.policy.write_text("pools: [\n")
    for _ in range(3):
        cycle(w)
    assert len(parsed) == 1
    assert reloads(w, "error") == 1
    valid = w.metrics.registry.get_sample_value
    assert valid("license_sync_policy_file_valid") == 0  # what the alert reads
    w.policy.write_text(good.replace("headroom: 1", "headroom: 2"))
    cycle(w)
    assert valid("license_sync_policy_file_valid") == 1  # fixed: the alert clears
    assert len(parsed) == 2
    assert w.svc.policy.pools["nuke"].headroom == 2


def test_reload_says_which_changes_wait_for_a_restart(world, caplog):
    w = world
    moved = str(w.policy.parent / "elsewhere.db")

    def edit(doc):
        doc["metrics"] = {"address": "127.0.0.1:9999"}
        doc["history"]["path"] = moved
        doc["pools"]["nuke"]["headroom"] = 2

    edit_policy(w.policy, edit)
    with caplog.at_level("WARNING", logger="license_sync"):
        cycle(w)
    assert w.svc.policy.pools["nuke"].headroom == 2  # the rest applied at once
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("metrics.address" in m and "restart" in m and "9999" in m for m in warnings)
    assert any("history.path" in m and "restart" in m and moved in m for m in warnings)
    assert w.svc.history.path != moved  # still writing where it was opened


def test_a_reload_says_what_changed(world, caplog):
    w = world
    w.farm.add_limit("amount.maya", 5)

    def edit(doc):
        doc["pools"]["nuke"].update(headroom=2, floor=2)
        doc["pools"]["maya"] = pool("amount.maya", "maya")
        doc["interval"] = "30s"

    edit_policy(w.policy, edit)
    with caplog.at_level("INFO", logger="license_sync"):
        cycle(w)
    [line] = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
    assert line.endswith(
        "pools added: maya; pools edited: nuke (headroom, floor); also changed: interval"
    )


def test_readiness_does_not_flap_when_cycles_outlast_the_interval(world):
    w = world
    slow = w.src.read

    def read_for_three_intervals():  # a farm so large a cycle takes three intervals
        w.clock.advance(180)
        return slow()

    w.src.read = read_for_three_intervals
    cycle(w)
    assert w.svc.ready()[0]
    for _ in range(3):  # the next cycle starts at once and runs as long
        w.clock.advance(170)
        assert w.svc.ready()[0], w.svc.ready()[1]
        w.clock.advance(10)
        w.svc.run_cycle()
    w.clock.advance(3 * 180 + 1)  # and no cycle ends for three of them: not ready
    assert not w.svc.ready()[0]


def test_a_policy_being_written_is_reloaded_only_once_left_alone(world):
    import os
    import time

    w = world
    w.svc.policy_quiet = 2.0  # the default
    cycle(w)
    sha = w.svc.loaded.sha
    # an editor's truncate-then-write, caught halfway: what is there parses and validates
    half = w.policy.read_text().split("    farm_selector:")[0]
    w.policy.write_text(half)
    cycle(w)
    assert w.svc.loaded.sha == sha  # too fresh to trust: the last good policy runs
    old = time.time() - 10
    os.utime(w.policy, (old, old))  # the writer has been gone for ten seconds
    cycle(w)
    assert w.svc.loaded.sha != sha


def test_a_policy_whose_mtime_is_in_the_future_is_reloaded_once_left_alone(world):
    import os
    import time

    w = world
    w.svc.policy_quiet = 2.0  # the default
    w.svc.watcher.monotonic = lambda: w.clock.t.timestamp()  # the service's own clock
    cycle(w)
    sha = w.svc.loaded.sha
    w.policy.write_text(w.policy.read_text() + "# tuned\n")
    ahead = time.time() + 86400  # `cp -p` from a machine whose clock ran a day ahead
    os.utime(w.policy, (ahead, ahead))
    cycle(w)
    assert w.svc.loaded.sha == sha  # new content, first seen: it may still be written
    cycle(w)
    assert w.svc.loaded.sha != sha  # the same content a cycle later: left alone


@pytest.mark.parametrize("host", ["[::1]", "[::]"])  # loopback, and every address
def test_metrics_bind_to_an_ipv6_address(host):
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = HealthServer(Metrics(), f"{host}:0", lambda: (True, "ok")).start()
    except OSError as e:
        pytest.skip(f"no IPv6 loopback: {e}")
    try:
        assert (
            urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=10).status == 200
        )
    finally:
        server.stop()


def test_a_new_interval_in_the_policy_reschedules_the_running_service(world):
    from sync.cycle.serve import serve

    w = world
    # the service starts on a one-minute interval; the file already says one second
    edit_policy(w.policy, lambda doc: doc.update(interval="1s"))
    started: list[datetime] = []

    def on_cycle(result) -> None:
        started.append(datetime.now(UTC))

    assert w.svc.policy.interval == 60
    t0 = time.monotonic()
    serve(w.svc, "127.0.0.1:0", on_cycle=on_cycle, max_cycles=2)
    # the first cycle loaded the new interval; the second came a second later, not a minute
    assert w.svc.policy.interval == 1
    assert len(started) == 2 and time.monotonic() - t0 < 30


def test_a_reserve_learned_from_the_history_comes_down_ahead_of_the_morning(world):
    w = world
    # four weeks of Mondays in the history: external use jumps from 2 to 10 at 09:00
    rows = []
    monday = datetime(2026, 11, 23, tzinfo=UTC)  # the clock's T0 is Wednesday the 25th
    for weeks in (4, 3, 2, 1):
        day = monday - timedelta(weeks=weeks)
        for minute in range(7 * 60, 11 * 60):
            at = (day + timedelta(minutes=minute)).isoformat()
            ext = 10 if minute >= 9 * 60 else 2
            rows.append({"at": at, "pool": "nuke", "status": "ok", "external": ext})
    w.svc.history.record_cycle({"started": rows[0]["at"]}, [], rows, [])
    edit_pool(w.policy, reserve={"default": 0, "learn": {"drain": "15m", "samples": 4}})
    w.clock.t = monday.replace(hour=8, minute=50)
    plan = w.svc.run_cycle().plan
    d, pp = plan.decisions[0], plan.pools["nuke"]
    assert pp.figures.reserve == 8  # the rise the next quarter hour brings, kept back now
    assert pp.reserve_from.startswith("learned: q0.9 of the rise within 15 min, Mon 08:00 UTC")
    assert d.target == 20 - 0 - 8 - 1
    w.clock.t = monday.replace(hour=7, minute=0)  # a calm hour of the profile: nothing kept
    assert w.svc.run_cycle().plan.pools["nuke"].figures.reserve == 0


def test_artists_refused_have_the_farms_youngest_task_requeued(world):
    w = world
    edit_pool(w.policy, preempt={"enabled": True, "max_per_cycle": 2})
    old = w.farm.add_job(w.queue, "old", tasks=10, amount="amount.nuke", duration=3600)
    w.farm.tick(w.clock.t - timedelta(minutes=20))  # ten tasks running for 20 minutes
    young = w.farm.add_job(w.queue, "young", tasks=5, amount="amount.nuke", duration=3600)
    w.farm.tick(w.clock.t - timedelta(minutes=2))  # five more, for 2 minutes
    assert w.farm.in_use(w.limit_id) == 15
    # the server: all 20 in use, the farm's 15 and 5 artists, and 2 more artists queued
    w.src.farm, w.src.artists, w.src.queued = 15, 5, 2
    w.svc.dry_run = True  # a dry run plans the preemption and requeues nothing
    assert w.svc.run_cycle().plan.decisions[0].preempt == 1
    assert w.farm.in_use(w.limit_id) == 15
    w.svc.dry_run = False
    r = w.svc.run_cycle()
    [d] = r.plan.decisions
    assert (d.target, d.preempt) == (14, 1)  # 20 − 5 − 1; the farm holds one too many
    [requeue] = r.outcome.preempted
    task = requeue.task
    assert task.job_id == young  # the youngest; the old job's 20 minutes are not thrown away
    assert w.farm.in_use(w.limit_id) == 14
    rows = w.svc.history.query("job_changes")
    assert [(row["kind"], row["job_id"]) for row in rows] == [("preempt", young)]
    assert "requeued after 2m to give back 1 license(s)" in rows[0]["reason"]
    # tasks that have run longer than younger_than are never requeued
    w.src.farm, w.src.queued = 14, 3
    w.farm.tick(w.clock.t + timedelta(minutes=30))
    w.clock.advance(30 * 60)
    w.src.artists = 6
    r = w.svc.run_cycle()
    assert r.plan.decisions[0].preempt >= 1 and r.outcome.preempted == []
    assert old in w.farm.jobs and w.farm.in_use(w.limit_id) == 14


def preempting(w, tasks: int = 5) -> None:
    edit_pool(w.policy, preempt={"enabled": True, "max_per_cycle": tasks})


def test_preemption_counts_what_runs_hold_never_the_late_count_nor_a_run_giving_back(world):
    """currentCount still says 10 (Deadline updates it late) while 15 runs hold the limit;
    a requeued run keeps its license until its process exits. Preemption requeues what
    the sessions say is one too many, once: the run giving its license back is not
    counted again on the next cycle, nor is another task thrown away for it."""
    w = world
    preempting(w)
    w.farm.count_delay = timedelta(days=1)  # the count never catches up in this test
    w.farm.release_delay = timedelta(minutes=5)
    w.farm.add_job(w.queue, "old", tasks=10, amount="amount.nuke", duration=3600)
    w.farm.tick(w.clock.t - timedelta(minutes=20))
    young = w.farm.add_job(w.queue, "young", tasks=5, amount="amount.nuke", duration=3600)
    w.farm.tick(w.clock.t - timedelta(minutes=2))
    w.src.farm, w.src.artists, w.src.queued = 15, 5, 2
    r = w.svc.run_cycle()
    [d] = r.plan.decisions
    assert (d.current_count, d.target) == (10, 14)  # by the count, nothing to requeue
    assert [w.task.job_id for w in r.outcome.preempted] == [young]
    w.clock.advance(60)
    w.farm.tick(w.clock.t)  # the requeued run is still exiting: the server still shows 15
    r = w.svc.run_cycle()
    assert r.plan.decisions[0].preempt >= 1 and r.outcome.preempted == []
    assert w.farm.in_use(w.limit_id) == 15  # 14 running and the one giving its license back


def test_running_chunks_are_never_requeued_and_are_counted(world):
    """A chunked step's runs name no task (UpdateTask cannot requeue them): preemption
    passes over them, counts them, and still requeues a task that can be."""
    w = world
    preempting(w)
    chunked = w.farm.add_job(
        w.queue, "chunked", tasks=20, chunk=2, amount="amount.nuke", duration=3600
    )
    w.farm.tick(w.clock.t - timedelta(minutes=3))
    single = w.farm.add_job(w.queue, "single", tasks=5, amount="amount.nuke", duration=3600)
    w.farm.tick(w.clock.t - timedelta(minutes=1))
    held = w.farm.in_use(w.limit_id)
    assert held > 5
    w.src.farm, w.src.artists, w.src.queued = held, 20 - held, 3
    r = w.svc.run_cycle()
    assert r.ok, r.errors
    requeued = {w.task.job_id for w in r.outcome.preempted}
    assert requeued == {single}
    skipped = w.metrics.registry.get_sample_value(
        "license_sync_preempt_skipped_total", {"reason": "chunked"}
    )
    assert skipped and skipped >= 1
    assert chunked in w.farm.jobs


def test_a_source_down_keeps_its_last_known_license_series(world):
    w = world
    w.src.artists = 3
    cycle(w)
    seen_at = w.clock.t.timestamp()
    w.src.up = False
    cycle(w)
    labels = {"pool": "nuke", "feature": "nuke_r", "source": "lic"}
    sample = w.metrics.registry.get_sample_value
    assert sample("license_sync_source_up", {"source": "lic"}) == 0
    assert sample("license_sync_license_issued", labels) == 20  # still there, from before
    assert sample("license_sync_license_expiry_timestamp_seconds", labels) is not None
    assert sample("license_sync_source_last_success_timestamp_seconds", {"source": "lic"}) == (
        seen_at
    )


def test_healthcheck_asks_the_address_the_policy_gives(world, tmp_path):
    from sync.edges.http_endpoint import HealthServer

    svc = world.svc
    server = HealthServer(world.metrics, "127.0.0.1:0", svc.ready, alive=svc.alive).start()
    try:
        # an edit the service refused is still read for its address; a wildcard bind is
        # asked on loopback
        refused = tmp_path / "p.yaml"
        refused.write_text(f'metrics: {{address: "0.0.0.0:{server.port}"}}\npools: {{x: 1}}\n')
        p = run_cli("healthcheck", "--config", str(refused))
        assert (p.returncode, p.stdout.split(":")[0]) == (0, "ok"), p.stderr
        world.clock.advance(3600)  # no cycle for an hour: the loop is stuck
        p = run_cli("healthcheck", "--address", f"127.0.0.1:{server.port}")
        assert p.returncode == 1 and "503" in p.stderr and "stuck" in p.stderr
    finally:
        server.stop()
    p = run_cli("healthcheck", "--address", f"127.0.0.1:{server.port}", "--timeout", "1")
    assert p.returncode == 1  # nobody answers


def test_a_source_that_stays_down_is_said_once_then_every_ten_minutes(world, caplog):
    w = world
    cycle(w)
    w.src.up = False
    with caplog.at_level("INFO", logger="license_sync"):
        for _ in range(30):  # half an hour of one-minute cycles
            cycle(w, 60)
        w.src.up = True
        cycle(w, 60)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("source lic")]
    down = [m for m in said if " down" in m and "up again" not in m]
    assert len(down) == 3, said  # at 0, 10 and 20 minutes, not 30 times
    assert down[0].startswith("source lic down: ")
    assert down[1].startswith("source lic still down: 11 reads since ")
    assert said[-1] == "source lic up again after 30 read(s) down"


# -- denials from the license server's own log --------------------------------------------

STUDIO_LOG = FIXTURES_DIR / "flexlm_log/studio.log"


def denials(w, who: str, pool: str = "nuke") -> float | None:
    return w.metrics.registry.get_sample_value(
        "license_sync_denials_total", {"pool": pool, "who": who}
    )


def test_the_servers_log_counts_who_was_refused_by_pool(world, tmp_path):
    """A vendor daemon's log names each refused checkout: an artist's, or the farm's (by
    the pool's farm_selector), counted, kept in the history with the artist's name hashed;
    a log that vanishes is a log down, and the cycle goes on."""
    w = world
    log = tmp_path / "foundry.log"
    head, *rest = STUDIO_LOG.read_text().splitlines(keepends=True)
    log.write_text(head)
    edit_source(w.policy, log={"path": str(log)})
    cycle(w)  # the edit is taken: the log is followed from here, its past not counted
    with log.open("a") as fh:
        fh.writelines(rest)
    r = cycle(w)
    assert r.ok, r.errors
    assert (denials(w, "artist"), denials(w, "farm")) == (1.0, 1.0)  # bob, render-013
    assert denials(w, "artist", pool="") == 1.0  # nukex_i: no pool takes it
    rows = {row["host"]: row for row in w.svc.history.query("denials")}
    assert rows["render-013"]["who"] == "farm" and rows["render-013"]["user"] == "render"
    [artist] = [row for row in rows.values() if row["pool"] == "nuke" and row["who"] == "artist"]
    assert artist["user"] != "bob" and artist["host"] != "ws-077"  # history.redact
    assert artist["at"] == "2026-12-03T00:01:05+00:00"  # dated past the log's midnight
    assert "Licensed number of users already reached" in artist["reason"]
    up = {"source": "lic"}
    assert w.metrics.registry.get_sample_value("license_sync_source_log_up", up) == 1.0
    cycle(w)  # nothing new: nothing counted twice
    assert denials(w, "artist") == 1.0
    log.unlink()
    assert cycle(w).ok
    assert w.metrics.registry.get_sample_value("license_sync_source_log_up", up) == 0.0


def test_an_artist_refused_in_the_log_lowers_the_limit_until_served(world, tmp_path):
    """A refused artist wants a license as surely as one holding it: counted as external
    use (and as someone refused now, for preemption) until the log shows them served."""
    w = world
    log = tmp_path / "foundry.log"
    log.write_text("09:00:00 (foundry) TIMESTAMP 11/25/2026\n")
    edit_source(w.policy, log={"path": str(log)})
    w.src.artists = 4
    before = cycle(w).plan.pools["nuke"].figures
    assert before is not None and before.waiting == 0
    limit = max_count(w)
    why = "Licensed number of users already reached. (-4,342)"
    refused = f'12:01:00 (foundry) DENIED: "nuke_r" bob@ws-077  ({why})\n'
    with log.open("a") as fh:
        fh.write(refused + refused)  # he tries again: one artist waiting, not two
    r = cycle(w)
    fig = r.plan.pools["nuke"].figures
    assert fig is not None and (fig.waiting, fig.external) == (1, before.external + 1)
    assert max_count(w) == limit - 1  # a decrease: at once
    with log.open("a") as fh:
        fh.write('12:02:00 (foundry) OUT: "nuke_r" bob@ws-077\n')
    fig = cycle(w).plan.pools["nuke"].figures
    assert fig is not None and fig.waiting == 0


RLM_LOGS = FIXTURES_DIR


@pytest.mark.parametrize(
    ("fixture", "before", "reason"),
    [
        ("rlm_log/studio.rlmlog", 8, "All licenses in use (-22)"),  # its REPORTLOG
        ("rlm_debug_log/foundry.dlog", 6, "All licenses in use"),  # its debug log
    ],
)
def test_an_rlm_log_of_either_kind_counts_who_was_refused(world, tmp_path, fixture, before, reason):
    """An RLM source's `log:` is its ISV server's report log or its debug log, told from
    its lines: the same refusals, told apart by the pool's farm_selector, dated in the
    log's year. `before`: the lines there when it is first followed."""
    w = world
    log = tmp_path / Path(fixture).name
    lines = (RLM_LOGS / fixture).read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:before]))
    edit_source(w.policy, kind="rlm", servers=["5053@lic2"], log={"path": str(log)})
    cycle(w)  # followed from here
    with log.open("a") as fh:
        fh.writelines(lines[before:])
    r = cycle(w)
    assert r.ok, r.errors
    assert (denials(w, "artist"), denials(w, "farm")) == (1.0, 1.0)  # bob, render-013
    rows = {row["who"]: row for row in w.svc.history.query("denials")}
    assert rows["farm"]["at"] == "2027-01-01T00:01:00+00:00"
    assert rows["artist"]["reason"] == reason
    fig = r.plan.pools["nuke"].figures
    assert fig is not None and fig.waiting == 1  # bob, refused and not served since
    line = decision_line(r.plan.pools["nuke"].decisions[0], fig)  # the demo's and run's
    assert f"external={fig.external} (1 refused, waiting)" in line


def test_the_service_audits_at_start_and_after_a_reload_and_says_each_finding_once(world, caplog):
    w = world
    own = w.farm.add_fleet("own", 1, amounts=(("amount.nuke", 0, 1),))
    w.farm.link_fleet(w.queue, own)
    findings = lambda: w.metrics.registry.get_sample_value(  # noqa: E731
        "license_sync_setup_findings", {"kind": "fleet_declares_amount"}
    )
    with caplog.at_level(logging.WARNING, logger="license_sync"):
        for _ in range(2):  # as `serve` runs it: a cycle, then the audit if one is due
            cycle(w)
            w.svc.audit_setup()
    said = [r.getMessage() for r in caplog.records if "farm setup" in r.getMessage()]
    assert len(said) == 1 and "fleet own" in said[0] and "fix:" in said[0]
    assert findings() == 1
    w.farm.fleets[own].amounts = []  # the studio mends the fleet; a policy edit follows
    edit_pool(w.policy, headroom=2)
    cycle(w)
    w.svc.audit_setup()
    assert findings() == 0


def test_the_farms_workers_are_read_for_the_history_every_ten_minutes_not_every_cycle(world):
    """No pool counts by `workers: true`, yet the history keeps checkouts on the workers'
    hosts in clear (docs/operations.md, "What the history holds"): the observer reads
    their hosts on the first cycle, then once ten minutes have passed; a pool that counts
    by them has them read every cycle."""
    from sync.cycle.observe import Observer

    w = world
    reads: list[str] = []

    class Farm:
        def __init__(self, farm_id: str):
            self.farm_id = farm_id

        def worker_hosts(self) -> frozenset[str]:
            reads.append(self.farm_id)
            return frozenset({"rndr-001"})

    observer, policy = Observer(), load_policy(w.policy).policy
    for minute in range(10):
        hosts = observer.read_worker_hosts(policy, Farm, T0 + timedelta(minutes=minute))
        assert hosts == {"rndr-001"}
    assert reads == [w.farm.farm_id]
    observer.read_worker_hosts(policy, Farm, T0 + timedelta(minutes=10))
    assert len(reads) == 2
    observer.read_worker_hosts(policy, Farm, T0 - timedelta(days=1))  # the clock stepped back
    assert len(reads) == 3
    edit_pool(w.policy, farm_selector={"workers": True})
    policy = load_policy(w.policy).policy
    for minute in range(3):
        observer.read_worker_hosts(policy, Farm, T0 + timedelta(minutes=minute))
    assert len(reads) == 6
