"""Licenses the farm uses around its limit, through the real process: `license-sync run`
against the fake Deadline, a fake `lmutil` printing what the fake license server holds,
and a job that runs Nuke without declaring amount.nuke. Declared tasks plus undeclared use
plus artists never pass the total once the service has seen it."""

from __future__ import annotations

import json
from datetime import timedelta

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from sync.fakes.templates import build, simple_template
from tests.support.clirun import run_cli
from tests.support.policy import LIC, RENDER_HOSTS, pool, write_policy
from tests.support.policy import policy as policy_doc
from tests.support.process import (
    free_port,
    lm_env,
    metric,
    run_service,
    scrape,
    wait_for,
    write_atomic,
)

TOTAL, ARTISTS, SNEAKY = 20, 4, 4


def test_undeclared_use_is_subtracted_so_nothing_passes_the_total(aws_env, tmp_path):
    farm = FakeFarm(count_delay=0)
    farm.products = {"nuke": "amount.nuke"}  # its command runs Nuke, whatever it declares
    q, lid = farm.add_queue_with_limit("amount.nuke", 19)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", TOTAL, "amount.nuke")])
    lic.set_artists("nuke_r", ARTISTS)
    sneaky = build(simple_template("sneaky", SNEAKY, command="nuke"), "JSON")
    farm.create_job(q, sneaky, duration=10_000)  # holds its licenses all along
    farm.add_job(q, "comp", tasks=200, amount="amount.nuke", duration=30)
    status, port = tmp_path / "lmstat.txt", free_port()

    def step(seconds: int) -> None:  # the farm moves on, and lmutil says so
        farm.tick(farm.now + timedelta(seconds=seconds))
        write_atomic(status, lic.lmstat())

    step(0)
    with FakeDeadline(farm) as server:
        policy = tmp_path / "policy.yaml"
        source = {**LIC, "timeout": "10s"}
        nuke = pool(farm_selector=RENDER_HOSTS, hysteresis={"settle": 1})
        doc = policy_doc(farm.farm_id, history=tmp_path / "h.db", port=port, interval="1s")
        write_policy(policy, {**doc, "sources": {"lic": source}, "pools": {"nuke": nuke}})
        proc = run_service(policy, lm_env(status, server.url))
        try:
            # what is free for declared tasks: the total less artists and the undeclared use
            wait_for(lambda: farm.limits[lid].max_count == TOTAL - ARTISTS - SNEAKY, 60, "12")
            # the cycle that wrote it exports its figures just after the write
            wait_for(
                lambda: (
                    metric(
                        scrape(port),
                        "license_sync_undeclared_in_use",
                        pool="nuke",
                        limit="amount.nuke",
                    )
                    == SNEAKY
                ),
                10,
                "the undeclared use exported",
            )
            refused = farm.denials
            for _ in range(2):  # frames end and start again under the limit: none refused
                cycles = metric(scrape(port), "license_sync_cycles_total", result="ok") or 0
                step(30)
                wait_for(
                    lambda c=cycles: (
                        (metric(scrape(port), "license_sync_cycles_total", result="ok") or 0)
                        > c + 1
                    ),
                    what="a cycle after the farm moved",
                )
                assert farm.in_use(lid) + SNEAKY + ARTISTS <= TOTAL
            assert farm.denials == refused
            assert farm.limits[lid].max_count == TOTAL - ARTISTS - SNEAKY
        finally:
            proc.kill()
            out = proc.communicate()[0]
    assert "Traceback" not in out, out
    # named in the log once, by the job and step that forgot the amount, on their hosts
    named = [line for line in out.splitlines() if "around its limits" in line]
    assert len(named) == 1, out
    assert "undeclared: 4 (job sneaky step step0 on render-" in named[0], named
    # and kept: `history --undeclared` adds up who took how much around the limit
    report = run_cli(
        "history", "--db", str(tmp_path / "h.db"), "--undeclared", "--format", "json"
    ).stdout
    (row,) = json.loads(report)
    assert (row["pool"], row["job"], row["step"], row["most"]) == ("nuke", "sneaky", "step0", 4)
    assert row["cycles"] >= 5 and row["license_hours"] > 0
    # made up for within two cycles: the first sees it, the second takes it
    decisions = run_cli("history", "--db", str(tmp_path / "h.db"), "--format", "json").stdout
    written = {d["cycle_id"]: d["new"] for d in json.loads(decisions) if d["applied"]}
    assert written[1] == TOTAL - ARTISTS and written[2] == TOTAL - ARTISTS - SNEAKY
