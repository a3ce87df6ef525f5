"""Licenses the farm uses around its limit, through the real process: `license-sync run`
against the fake Deadline, a fake `lmutil` printing what the fake license server holds,
and a job that runs Nuke without declaring amount.nuke. Declared tasks plus undeclared use
plus artists never pass the total once the service has seen it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from sync.fakes.templates import build, simple_template
from sync.law.limits import PoolPlan, Split
from sync.law.render import decision_line, plan_lines
from sync.law.undeclared import by_limit, name_undeclared
from sync.values.domain import Decision, Figures, HostRun, Undeclared
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


def _plan(undeclared: int, refs: tuple[str, ...] = ("amount.nuke",), weights=()):
    fig = Figures(
        20, 10, 10, "selector", 0, 0, 0, undeclared=undeclared, undeclared_seen=undeclared
    )
    decisions = tuple(Decision("nuke", "farm-1", r, f"limit-{r}", 5, 5, None, ()) for r in refs)
    splits = tuple(Split(r, 0, 0, w) for r, w in zip(refs, weights, strict=False))
    return PoolPlan("nuke", decisions, fig, splits=splits)


def test_each_host_beyond_its_runs_acquired_is_named_by_the_runs_that_acquired_nothing():
    runs = [
        HostRun("render-001", "w1", "q", "job-a", "step-a", {"limit-amount.nuke": 1}),
        HostRun("render-002", "w2", "q", "job-a", "step-a", {"limit-amount.nuke": 1}),
        HostRun("render-002", "w2", "q", "job-b", "step-b", {}),
        HostRun("render-003", "w3", "q", "job-c", "step-c", {"limit-other": 1}),
    ]
    held = {"render-001": 1, "render-002": 2, "render-003": 3, "ws-9": 1}
    found = name_undeclared(_plan(5), held, ["limit-amount.nuke"], runs)
    assert [(u.host, u.job_id, u.count) for u in found] == [
        ("render-002", "job-b", 1),  # 2 held, 1 acquired: the other run forgot it
        ("render-003", "job-c", 3),  # a run that acquired another limit only: all three
        ("ws-9", "", 1),  # a host no run of the farm is on: named alone
    ]
    assert name_undeclared(_plan(0), held, ["limit-amount.nuke"], runs) == ()


def test_a_pools_undeclared_use_is_borne_by_its_limits_as_they_share():
    assert by_limit(_plan(4)) == {"amount.nuke": 4}
    split = by_limit(_plan(5, ("a", "b", "c"), (2.0, 1.0, 1.0)))
    assert split == {"a": 3, "b": 1, "c": 1} and sum(split.values()) == 5


def test_plan_says_what_one_read_sees_around_the_limit_before_it_is_taken():
    seen_once = replace(_plan(0), figures=replace(_plan(0).figures, undeclared_seen=3))
    [found] = [line for line in plan_lines(seen_once) if "around the limit" in line]
    assert "undeclared: 3 seen in this read, taken when the next read shows it too" in found
    named = (Undeclared("nuke", "render-004", 3, "w", "q", "j", "s", "comp", "Nuke"),)
    taken = replace(_plan(3), figures=replace(_plan(3).figures, undeclared_seen=3))
    line = decision_line(taken.decisions[0], taken.figures, undeclared=named)
    assert "farm=10 (undeclared: 3 (job comp step Nuke on render-004 ×3))" in line
    assert not [x for x in plan_lines(_plan(0)) if "around the limit" in x]
