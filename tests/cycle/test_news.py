"""What in a source's log is worth a cycle between two: the observer's glance."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sync.cycle.observe import Observer
from sync.law.limits import PoolPlan
from sync.law.state import SourceState
from sync.licenses import Report
from sync.policy import parse_policy
from sync.values.domain import Decision, Figures

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FARM = "farm-0123456789abcdef0123456789abcdef"


def policy(log, selector: str):
    return parse_policy(
        "farms: [{id: farm-0123456789abcdef0123456789abcdef}]\n"
        f"sources: {{lic: {{kind: flexlm, servers: ['27000@lic1'], log: {{path: '{log}'}}}}}}\n"
        "pools:\n"
        "  nuke: {limit: amount.nuke, features: [{source: lic, feature: nuke_r}],"
        f" headroom: 1, reserve: 3{selector}}}\n"
    ).policy


@pytest.fixture
def glance(tmp_path):
    """An observer following a FlexLM log after a cycle that read the pool 6 free of 20
    (the farm 12, artists 2), keeping 4 (reserve 3, headroom 1) for artists."""
    log = tmp_path / "foundry.log"
    log.write_text(" 9:00:00 (foundry) TIMESTAMP 12/3/2026\n")

    def make(selector=", farm_selector: {hosts: ['^render-']}"):
        pol, obs = policy(log, selector), Observer()
        obs.read_logs(pol, {"lic": SourceState(Report("flexlm", True), NOW)}, NOW)
        obs.keep_rooms(
            pol, {"nuke": PoolPlan("nuke", (), Figures(20, 14, 12, "selector", 2, 3, 1))}
        )

        def write(*lines: str) -> str | None:
            with log.open("a") as fh:
                fh.writelines(f'12:00:0{i} (foundry) {ln} "nuke_r" {who}\n'
                              for i, (ln, who) in enumerate(x.split() for x in lines))  # fmt: skip
            return obs.news_now(pol, NOW)

        return obs, pol, write

    return make


def test_artists_checkouts_leaving_less_than_the_pool_keeps_are_news(glance):
    _, _, write = glance()
    assert write("OUT: ann@ws-01", "OUT: bob@ws-02") is None  # 4 free: as many as it keeps
    news = write("OUT: cy@ws-03")
    assert (
        news == "pool nuke: artists took 3 since the last cycle, leaving 3 free of the 4 it keeps"
    )


def test_the_farms_checkouts_and_the_artists_checkins_are_not(glance):
    _, _, write = glance()
    assert write("OUT: render@render-01", "OUT: render@render-02", "OUT: render@render-03") is None
    assert write("OUT: ann@ws-01", "OUT: bob@ws-02", "IN: ann@ws-01", "OUT: cy@ws-03") is None
    assert write("OUT: dee@ws-04") is not None  # 3 taken, one given back, then a 4th


def test_a_cycle_reads_the_pool_anew_and_forgets_what_glances_counted(glance):
    obs, pol, write = glance()
    assert write("OUT: ann@ws-01", "OUT: bob@ws-02") is None
    obs.read_logs(pol, {"lic": SourceState(Report("flexlm", True), NOW)}, NOW)
    obs.keep_rooms(pol, {"nuke": PoolPlan("nuke", (), Figures(20, 16, 12, "selector", 4, 3, 1))})
    assert obs.taken == {}
    assert write("OUT: cy@ws-03") is not None  # 4 free at the cycle, 3 after cy


def test_the_room_counts_the_tasks_the_farm_may_still_start_under_its_limit(glance):
    obs, pol, write = glance()
    # the farm holds 12 under a maxCount of 14: 2 more may start, so 4 are left, not 6
    decision = Decision("nuke", FARM, "amount.nuke", "limit-1", 14, 14, None, ())
    fig = Figures(20, 14, 12, "selector", 2, 3, 1)
    obs.keep_rooms(pol, {"nuke": PoolPlan("nuke", (decision,), fig)})
    assert obs.rooms["nuke"].free == 4
    assert write("OUT: ann@ws-01") is not None  # the first artist eats into what it keeps
    paused = replace(decision, new=1, pause=("queue-a",))
    obs.keep_rooms(pol, {"nuke": PoolPlan("nuke", (paused,), fig)})
    assert obs.rooms["nuke"].free == 6  # its queue stopped: the farm starts nothing


def test_a_pool_whose_farm_cannot_be_told_apart_counts_no_checkout(glance):
    _, _, write = glance(selector="")  # the farm's use is currentCount: any OUT may be it
    assert write(*(f"OUT: a{i}@ws-{i}" for i in range(8))) is None


def test_an_rlm_report_logs_checkouts_are_read_the_same_way(tmp_path):
    log = tmp_path / "foundry.rlmlog"
    log.write_text(
        "RLM Report Log Format 0, version 16.1, authenticated\n"
        "ISV: foundry, RLM version 16.1 BL2\n"
        "START lic2 12/03/2026 08:00\n"
    )
    pol = parse_policy(
        "farms: [{id: farm-0123456789abcdef0123456789abcdef}]\n"
        f"sources: {{lic: {{kind: rlm, servers: ['5053@lic2'], log: {{path: '{log}'}}}}}}\n"
        "pools:\n"
        "  nuke: {limit: amount.nuke, features: [{source: lic, feature: nuke_r}],"
        " headroom: 1, reserve: 3, farm_selector: {hosts: ['^render-']}}\n"
    ).policy
    obs = Observer()
    obs.read_logs(pol, {"lic": SourceState(Report("rlm", True), NOW)}, NOW)
    obs.keep_rooms(pol, {"nuke": PoolPlan("nuke", (), Figures(20, 14, 12, "selector", 2, 3, 1))})
    with log.open("a") as fh:
        fh.writelines(
            f'OUT nuke_r 14.0 1 {who} {host} "" 1 1 0 4{i} 4{i} 3e8 "" "" "" 12/03 12:00:0{i}\n'
            for i, (who, host) in enumerate(
                [("r", "render-01"), ("ann", "ws-01"), ("bob", "ws-02")]
            )
        )
    assert obs.news_now(pol, NOW) is None  # 6 free less ann and bob: 4, as it keeps
    with log.open("a") as fh:
        fh.write('OUT nuke_r 14.0 1 cy ws-03 "" 1 1 0 45 45 3e8 "" "" "" 12/03 12:00:09\n')
    assert obs.news_now(pol, NOW) == (
        "pool nuke: artists took 3 since the last cycle, leaving 3 free of the 4 it keeps"
    )
