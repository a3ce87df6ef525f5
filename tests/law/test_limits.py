"""The control law: table-driven cases and hypothesis properties. No mocks, no clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.law.limits import Split, apportion, plan, requeues
from sync.law.reasons import text
from sync.law.render import explain_lines, plan_lines
from sync.law.state import SourceState
from sync.licenses import Feature, Report
from sync.policy import FarmConfig, FeatureRef, Policy, Pool, StaticSourceConfig
from sync.values.domain import (
    ACTIVE,
    PAUSED,
    STOPPED,
    Association,
    Holding,
    LimitMemory,
    LimitState,
    RunningTask,
)
from tests.support.fakes import checkout

FARM = "farm-0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
LIMIT_ID = "limit-" + "a" * 32


def mkpool(**kw) -> Pool:
    kw.setdefault("limit", "amount.nuke")
    kw.setdefault("features", [FeatureRef(source="s", feature="nuke_r")])
    kw.setdefault("hysteresis", {"settle": 1})
    return Pool.model_validate(kw)


def mkpolicy(pool: Pool, name: str = "nuke") -> Policy:
    return Policy(
        farms=[FarmConfig(id=FARM)],
        sources={"s": StaticSourceConfig(kind="static", features={})},
        pools={name: pool},
    )


def report(
    total: int | None = 20,
    in_use: int = 0,
    checkouts=(),
    up: bool = True,
    feature: str = "nuke_r",
    **kw,
) -> Report:
    if not up:
        return Report("flexlm", False, errors=("Cannot connect",))
    return Report(
        "flexlm",
        True,
        features=(
            Feature("foundry", feature, None, total, in_use, checkouts=tuple(checkouts), **kw),
        ),
    )


def limit(max_count: int = 10, current: int = 0, assoc=(), limit_id=LIMIT_ID) -> LimitState:
    return LimitState(
        FARM,
        limit_id,
        "Nuke",
        "amount.nuke",
        max_count,
        current,
        tuple(Association(q, s) for q, s in assoc),
    )


def run(
    pool: Pool, rep: Report, lim: LimitState, memory=None, now=NOW, last_good: datetime | None = NOW
):
    p = plan(
        mkpolicy(pool),
        {"s": SourceState(rep, last_good)},
        {(FARM, "amount.nuke"): lim},
        memory or {},
        now,
    )
    [d] = p.pools["nuke"].decisions
    return d, p


@pytest.mark.parametrize(
    ("pool_kw", "rep_kw", "lim_kw", "target", "new"),
    [
        # total 20, 5 artists, farm holds 3 by currentCount → external 2? no: in_use 8
        ({}, {"in_use": 8}, {"max_count": 10, "current": 3}, 15, None),  # increase waits? settle=1
        ({"reserve": 2, "headroom": 1}, {"in_use": 8}, {"max_count": 20, "current": 3}, 12, 12),
        ({"ceiling": 6}, {"in_use": 0}, {"max_count": 10}, 6, 6),
        ({"floor": 4}, {"in_use": 20}, {"max_count": 10}, 4, 4),
        ({"reserve": "10%"}, {"in_use": 0}, {"max_count": 30}, 18, 18),
        ({"reserve": "25%"}, {"total": 10, "in_use": 0}, {"max_count": 30}, 7, 7),  # ceil(2.5)
        ({}, {"in_use": 0}, {"max_count": 20}, 20, None),  # already right
        ({}, {"total": None, "in_use": 4}, {"max_count": 10}, -1, None),  # uncounted: waits 1
        ({"uncounted": 12}, {"total": None, "in_use": 4}, {"max_count": 10}, 8, 8),
        ({"ceiling": 9}, {"total": None, "in_use": 4}, {"max_count": 20}, 9, 9),
    ],
)
def test_target_table(pool_kw, rep_kw, lim_kw, target, new):
    pool_kw = {"hysteresis": {"settle": 2}, **pool_kw}
    d, _ = run(mkpool(**pool_kw), report(**rep_kw), limit(**lim_kw))
    assert d.target == target
    assert d.new == new
    if new is not None:
        [decrease] = [r for r in d.why if r.kind == "decrease"]  # a reason is its numbers
        assert (decrease["current"], decrease["target"]) == (lim_kw["max_count"], new)


def test_external_from_current_count():
    d, p = run(mkpool(), report(total=20, in_use=8), limit(max_count=20, current=3))
    fig = p.pools["nuke"].figures
    assert (fig.in_use, fig.farm_use, fig.farm_use_from, fig.external) == (8, 3, "currentCount", 5)
    assert d.target == 15


def test_without_a_selector_what_running_tasks_hold_is_the_farms_use():
    """acquiredLimits, read now, stands before currentCount, which lags: 9 held by the
    farm's tasks while currentCount still says 3."""
    st = replace(limit(max_count=20, current=3), held=9)
    d, p = run(mkpool(), report(total=20, in_use=12), st)
    fig = p.pools["nuke"].figures
    assert (fig.farm_use, fig.farm_use_from, fig.external) == (9, "acquiredLimits", 3)
    assert d.target == 17


def test_farm_selector_counts_matching_checkouts():
    pool = mkpool(farm_selector={"hosts": ["^render-"], "users": ["^svc_"]})
    cos = [
        checkout("render-001"),
        checkout("render-002", count=2),
        checkout("ws042"),
        checkout("ws043", user="svc_batch"),
    ]
    d, p = run(pool, report(total=20, in_use=5, checkouts=cos), limit(max_count=20, current=9))
    fig = p.pools["nuke"].figures
    assert (fig.farm_use, fig.farm_use_from, fig.external) == (4, "selector", 1)
    assert d.target == 19


def test_external_never_negative():
    # currentCount is delayed: it can exceed what the license server says is in use
    d, p = run(mkpool(), report(total=20, in_use=2), limit(max_count=20, current=7))
    assert p.pools["nuke"].figures.external == 0
    assert d.target == 20


def test_several_features_and_servers_are_summed():
    pool = mkpool(
        features=[
            FeatureRef(source="s", feature="nuke_r"),
            FeatureRef(source="t", feature="nuke_r"),
        ]
    )
    pol = Policy(
        farms=[FarmConfig(id=FARM)],
        sources={
            "s": StaticSourceConfig(kind="static", features={}),
            "t": StaticSourceConfig(kind="static", features={}),
        },
        pools={"nuke": pool},
    )
    p = plan(
        pol,
        {
            "s": SourceState(report(total=10, in_use=3), NOW),
            "t": SourceState(report(total=5, in_use=1), NOW),
        },
        {(FARM, "amount.nuke"): limit(max_count=40)},
        {},
        NOW,
    )
    fig = p.pools["nuke"].figures
    assert (fig.total, fig.in_use, fig.external) == (15, 4, 4)
    assert p.pools["nuke"].decisions[0].new == 11


def test_vendor_filter():
    pool = mkpool(features=[FeatureRef(source="s", feature="render", vendor="sidefx")])
    rep = Report(
        "flexlm",
        True,
        features=(
            Feature("adskflex", "render", None, 10, 3),
            Feature("sidefx", "render", None, 4, 1),
        ),
    )
    _, p = run(pool, rep, limit(max_count=10))
    assert p.pools["nuke"].figures.total == 4


def test_reserve_schedule_by_time_of_day():
    pool = mkpool(
        reserve={
            "default": 1,
            "schedule": [
                {"days": "mon-fri", "hours": "09:00-19:00", "tz": "Europe/London", "value": 6}
            ],
        }
    )
    day, _ = run(pool, report(in_use=0), limit(max_count=30), now=NOW)  # Wed 12:00 GMT
    night, _ = run(pool, report(in_use=0), limit(max_count=30), now=NOW.replace(hour=22))
    assert (day.target, night.target) == (14, 19)
    assert "schedule[0]" in run(pool, report(), limit(), now=NOW)[1].pools["nuke"].reserve_from


def rise(pool: Pool, seconds: list[float], start: int = 5) -> list[int | None]:
    """What each cycle writes of a rise to 20, the cycles at these seconds from NOW
    (the policy's interval is 60 s)."""
    mem: dict = {}
    seen = []
    lim = limit(max_count=start)
    for at in seconds:
        d, p = run(
            pool, report(total=20, in_use=0), lim, memory=mem, now=NOW + timedelta(seconds=at)
        )
        mem = p.memory
        seen.append(d.new)
        if d.new is not None:
            lim = limit(max_count=d.new)
    return seen


def test_increase_waits_settle_cycles_then_rises_by_max_step():
    pool = mkpool(hysteresis={"settle": 3, "max_step": 4})
    assert rise(pool, [0, 60, 120, 180, 240]) == [None, None, 9, 13, 17]
    # the scheduler's delay is no reason to wait a whole interval more
    assert rise(pool, [0, 59, 118, 177, 236]) == [None, None, 9, 13, 17]


def test_cycles_a_refusal_starts_between_two_neither_hurry_a_settle_nor_a_rise():
    pool = mkpool(hysteresis={"settle": 3, "max_step": 4})
    # four cycles started by refusals between the periodic ones at 0, 60, 120 and 180
    seen = rise(pool, [0, 5, 10, 60, 65, 120, 125, 130, 180])
    assert seen == [None, None, None, None, None, 9, None, None, 13]


def test_settle_given_as_a_time_waits_that_long_whatever_the_cycles():
    pool = mkpool(hysteresis={"settle": "90s"})
    assert rise(pool, [0, 30, 60, 89, 90]) == [None, None, None, None, 20]
    assert rise(mkpool(hysteresis={"settle": 1}), [0]) == [20]  # 1 cycle: at once


def test_increase_counter_resets_when_target_drops():
    pool = mkpool(hysteresis={"settle": 2}, farm_selector={"hosts": ["^render-"]})
    d1, p1 = run(pool, report(total=20, in_use=0), limit(max_count=10))
    assert d1.new is None and p1.memory[(FARM, "amount.nuke")].rising_since == NOW
    later = NOW + timedelta(seconds=60)
    d2, p2 = run(pool, report(total=20, in_use=15), limit(10), memory=p1.memory, now=later)
    assert d2.new == 5  # decrease at once
    assert p2.memory[(FARM, "amount.nuke")].rising_since is None
    # wanted again: it settles again from then
    d3, _ = run(pool, report(total=20, in_use=0), limit(5), memory=p2.memory, now=later)
    assert d3.new is None


def test_a_farm_burst_under_a_late_current_count_is_not_taken_for_artists():
    """No farm_selector: the farm's use is currentCount, which Deadline updates late. Ten
    tasks start (in use 2 → 12) while currentCount still says 2: the rise of external use
    is the farm's own, so nothing comes down, and nothing goes up on it either."""
    pool = mkpool(hysteresis={"settle": 1})
    _, p1 = run(pool, report(total=20, in_use=2), limit(max_count=12, current=2))
    burst, p2 = run(pool, report(total=20, in_use=12), limit(max_count=12, current=2), p1.memory)
    assert burst.new is None and "until a second read shows it" in text(burst.why)
    assert p2.pools["nuke"].figures.external == 0
    caught_up, _ = run(
        pool, report(total=20, in_use=12), limit(max_count=12, current=12), p2.memory
    )
    assert caught_up.new == 20 and "second read" not in text(caught_up.why)


def test_a_rise_of_external_use_the_farm_cannot_explain_comes_down_at_once():
    pool = mkpool(hysteresis={"settle": 1}, reserve=4)
    _, p1 = run(pool, report(total=20, in_use=2), limit(max_count=10, current=2))
    # 18 in use and the farm may hold at most 10: at least 8 are artists' now
    d, p2 = run(pool, report(total=20, in_use=18), limit(max_count=10, current=2), p1.memory)
    assert d.new == 8 and "counted as 8" in text(d.why)
    # a second read that still shows 16 external believes it
    d2, _ = run(pool, report(total=20, in_use=18), limit(max_count=8, current=2), p2.memory)
    assert d2.new == 1 and "second read" not in text(d2.why)


def test_an_external_rise_is_believed_at_once_when_the_server_queues_a_checkout():
    pool = mkpool(hysteresis={"settle": 1})
    _, p1 = run(pool, report(total=20, in_use=2), limit(max_count=12, current=2))
    d, _ = run(
        pool, report(total=20, in_use=12, queued=1), limit(max_count=12, current=2), p1.memory
    )
    assert d.new == 10 and "second read" not in text(d.why)


def test_an_unconfirmed_external_rise_never_raises_the_limit_or_resumes_a_queue():
    pool = mkpool(hysteresis={"settle": 1}, on_exhausted="pause")
    mem = {(FARM, "amount.nuke"): LimitMemory(("queue-a",), 5)}
    lim = limit(max_count=1, current=0, assoc=[("queue-a", "STOPPED")])
    # 5 external before; now 7 in use with currentCount 0 and maxCount 1: at most 1 is the
    # farm's, so at least 6 are external — the read of 7 is not yet believed, nor a rise
    d, p = run(pool, report(total=8, in_use=7), lim, mem)
    assert d.new is None and d.resume == () and "counted as 6" in text(d.why)
    assert p.memory[(FARM, "amount.nuke")].paused == ("queue-a",)
    assert p.memory[(FARM, "amount.nuke")].external == 7


def test_decrease_applies_at_once_even_with_settle():
    d, _ = run(mkpool(hysteresis={"settle": 5}), report(total=20, in_use=18), limit(max_count=10))
    assert d.new == 2 and "applied at once" in text(d.why)


def test_deadband_skips_small_changes():
    pool = mkpool(hysteresis={"deadband": 3, "settle": 1})
    down, _ = run(pool, report(total=20, in_use=12), limit(max_count=10))  # target 8
    up, _ = run(pool, report(total=20, in_use=8), limit(max_count=10))  # target 12
    assert (down.new, up.new) == (None, None)
    assert [r.kind for r in down.why] == ["decrease_in_deadband"]
    assert [r.kind for r in up.why] == ["increase_in_deadband"]
    assert "within the deadband 3" in text(up.why)


def test_unlimited_max_count_is_lowered_at_once():
    d, _ = run(mkpool(), report(total=20, in_use=5), limit(max_count=-1))
    assert d.new == 15


def test_source_down_holds():
    d, _ = run(
        mkpool(), report(up=False), limit(max_count=10), last_good=NOW - timedelta(minutes=2)
    )
    assert (d.new, d.status) == (None, "down")
    assert "holding maxCount 10" in text(d.why) and "Cannot connect" in text(d.why)


def test_source_down_past_stale_after_falls_to_floor():
    d, _ = run(
        mkpool(floor=2, stale_after="5m"),
        report(up=False),
        limit(max_count=10),
        last_good=NOW - timedelta(minutes=6),
    )
    assert (d.new, d.status) == (2, "stale")
    assert "falling to floor 2" in text(d.why)


def test_a_source_down_exactly_stale_after_is_stale():
    pool = mkpool(floor=2, stale_after="5m")
    held, _ = run(pool, report(up=False), limit(10), last_good=NOW - timedelta(seconds=299))
    stale, _ = run(pool, report(up=False), limit(10), last_good=NOW - timedelta(minutes=5))
    assert (held.status, held.new) == ("down", None)
    assert (stale.status, stale.new) == ("stale", 2)


def test_source_never_read_is_stale_at_once():
    d, _ = run(mkpool(), report(up=False), limit(max_count=10), last_good=None)
    assert d.new == 1


def test_on_stale_floor_drops_at_once():
    d, _ = run(
        mkpool(on_stale="floor", floor=3), report(up=False), limit(max_count=10), last_good=NOW
    )
    assert d.new == 3


def test_stale_pool_below_floor_is_not_raised():
    d, _ = run(
        mkpool(floor=5, stale_after="1m"),
        report(up=False),
        limit(max_count=2),
        last_good=NOW - timedelta(hours=1),
    )
    assert d.new is None


def test_missing_feature_is_a_source_failure():
    d, _ = run(mkpool(), report(feature="other"), limit(max_count=10))
    assert d.new is None or d.new <= 10
    assert "feature 'nuke_r' not in source 's'" in text(d.why)


def test_feature_error_is_a_source_failure():
    d, _ = run(mkpool(), report(total=None, error="unsupported"), limit(max_count=10))
    assert "unsupported" in text(d.why)


def test_exhausted_hold_one():
    d, _ = run(mkpool(), report(total=10, in_use=10), limit(max_count=5))
    assert d.new == 1 and "exhausted" in text(d.why) and d.pause == ()


def test_exhausted_begins_below_one_free_license():
    """Exactly one license free for the farm is not exhausted; none is."""
    one, _ = run(mkpool(), report(total=10, in_use=9), limit(max_count=5))
    none, _ = run(mkpool(), report(total=10, in_use=10), limit(max_count=5))
    assert (one.exhausted, one.target) == (False, 1)
    assert none.exhausted and "exhausted" in text(none.why)


def test_hold_one_never_resumes_the_queues_we_paused_while_still_exhausted():
    """Queues paused under `on_exhausted: pause`, the policy since changed to hold_one:
    they stay paused while the pool is exhausted and are resumed once it is not."""
    mem = {(FARM, "amount.nuke"): LimitMemory(("queue-a",))}
    lim = limit(max_count=1, assoc=[("queue-a", PAUSED)])
    still, _ = run(mkpool(on_exhausted="hold_one"), report(total=10, in_use=10), lim, mem)
    back, _ = run(mkpool(on_exhausted="hold_one"), report(total=10, in_use=2), lim, mem)
    assert (still.resume, back.resume) == ((), ("queue-a",))


def test_exhausted_pause_stops_active_queues_and_resumes_later():
    pool = mkpool(on_exhausted="pause")
    lim = limit(
        max_count=5, assoc=[("queue-a", ACTIVE), ("queue-b", ACTIVE), ("queue-c", "STOPPED")]
    )
    d, p = run(pool, report(total=10, in_use=10), lim)
    assert d.pause == ("queue-a", "queue-b")  # a queue a human stopped is not ours
    assert d.new == 1
    back = limit(
        max_count=1, assoc=[("queue-a", PAUSED), ("queue-b", PAUSED), ("queue-c", "STOPPED")]
    )
    d2, p2 = run(pool, report(total=10, in_use=2), back, memory=p.memory)
    assert d2.resume == ("queue-a", "queue-b")
    # remembered until they read ACTIVE: a resume that fails is written again
    assert p2.memory[(FARM, "amount.nuke")].paused == ("queue-a", "queue-b")
    d3, _ = run(pool, report(total=10, in_use=2), back, memory=p2.memory)
    assert d3.resume == ("queue-a", "queue-b")
    active = limit(
        max_count=1, assoc=[("queue-a", ACTIVE), ("queue-b", ACTIVE), ("queue-c", "STOPPED")]
    )
    d4, p4 = run(pool, report(total=10, in_use=2), active, memory=p2.memory)
    assert d4.resume == () and p4.memory[(FARM, "amount.nuke")].paused == ()


def test_a_paused_queue_moved_to_stopped_is_resumed():
    pool = mkpool(on_exhausted="pause")
    mem = {(FARM, "amount.nuke"): LimitMemory(("queue-a",))}
    lim = limit(max_count=1, assoc=[("queue-a", "STOPPED"), ("queue-b", "STOPPED")])
    d, _ = run(pool, report(total=10, in_use=0), lim, memory=mem)
    assert d.resume == ("queue-a",)


def test_paused_queue_stopped_by_someone_else_is_not_resumed():
    pool = mkpool(on_exhausted="pause")
    mem = {(FARM, "amount.nuke"): LimitMemory(("queue-a",))}
    lim = limit(max_count=1, assoc=[("queue-a", PAUSED), ("queue-b", PAUSED)])
    d, _ = run(pool, report(total=10, in_use=0), lim, memory=mem)
    assert d.resume == ("queue-a",)


def test_limit_not_found_is_an_error_decision():
    p = plan(
        mkpolicy(mkpool()),
        {"s": SourceState(report(), NOW)},
        {(FARM, "amount.nuke"): "limit 'amount.nuke' not found"},
        {},
        NOW,
    )
    [d] = p.pools["nuke"].decisions
    assert (d.status, d.new) == ("error", None)
    assert "not found" in text(d.why)


def test_a_pool_is_in_error_when_one_of_its_decisions_is():
    missing = {(FARM, "amount.nuke"): "limit 'amount.nuke' not found"}
    bad = plan(mkpolicy(mkpool()), {"s": SourceState(report(), NOW)}, missing, {}, NOW)
    _, good = run(mkpool(), report(), limit())
    assert (bad.pools["nuke"].status, good.pools["nuke"].status) == ("error", "ok")


def test_a_source_down_is_named_in_the_reason():
    d, _ = run(mkpool(), report(up=False), limit(), last_good=NOW - timedelta(minutes=1))
    assert "source 's' down: Cannot connect" in text(d.why)


def test_a_source_down_is_said_once_for_a_pool_of_two_of_its_features():
    two = [FeatureRef(source="s", feature="nuke_r"), FeatureRef(source="s", feature="nuke_i")]
    d, _ = run(mkpool(features=two), report(up=False), limit(), last_good=NOW)
    assert text(d.why).count("source 's' down") == 1, text(d.why)


def test_a_selector_of_the_workers_alone_counts_their_hosts_checkouts_as_the_farms():
    """`farm_selector: {workers: true}` and nothing else is a selector: the checkouts on
    the workers' hosts (short names, any case) are the farm's, the rest are artists'."""
    pool = mkpool(farm_selector={"workers": True})
    rep = report(
        total=20,
        in_use=5,
        checkouts=[checkout("Render-01.farm.local", count=3), checkout("ws-1", count=2)],
    )
    p = plan(
        mkpolicy(pool),
        {"s": SourceState(rep, NOW)},
        {(FARM, "amount.nuke"): limit(max_count=10, current=3)},
        {},
        NOW,
        workers=frozenset({"render-01"}),
    )
    fig = p.pools["nuke"].figures
    assert (fig.farm_use_from, fig.farm_use, fig.external) == ("selector", 3, 2)


def test_no_use_around_an_unlimited_limit_is_invented_from_a_late_count():
    """An unlimited limit (maxCount -1) read by currentCount alone could admit any number
    of tasks: none of the farm's checkouts is taken for use around it."""
    pool = mkpool(farm_selector={"hosts": ["^render-"]})
    farm = [checkout(f"render-{i}") for i in range(5)]
    p = plan(
        mkpolicy(pool),
        {"s": SourceState(report(total=20, in_use=5, checkouts=farm), NOW)},
        {(FARM, "amount.nuke"): limit(max_count=-1, current=2)},
        {},
        NOW,
    )
    assert p.pools["nuke"].figures.undeclared_seen == 0


def test_several_limits_split_the_free_remainder_by_share():
    pool = Pool.model_validate(
        {
            "limits": [{"farm": FARM, "limit": "a", "share": 2}, {"farm": FARM, "limit": "b"}],
            "features": [{"source": "s", "feature": "nuke_r"}],
            "hysteresis": {"settle": 1},
        }
    )
    la = LimitState(FARM, "limit-a", "A", "a", 30, 4)
    lb = LimitState(FARM, "limit-b", "B", "b", 30, 2)
    p = plan(
        mkpolicy(pool),
        {"s": SourceState(report(total=30, in_use=11), NOW)},
        {(FARM, "a"): la, (FARM, "b"): lb},
        {},
        NOW,
    )
    da, db = p.pools["nuke"].decisions
    # external = 11 − 6 = 5; free = 25; remainder = 25 − 6 = 19 → shares 13 and 6
    assert (da.target, db.target) == (4 + 13, 2 + 6)
    assert da.target + db.target == 30 - 5


def test_explain_lines_show_the_arithmetic():
    pool = mkpool(reserve=2, headroom=1)
    _, p = run(pool, report(total=20, in_use=8), limit(max_count=20, current=3))
    lines = "\n".join(explain_lines(p.pools["nuke"], pool))
    assert "external  = max(0, 8 − 3) = 5" in lines
    assert "free      = 20 − 5 − 2 − 1 = 12" in lines
    assert "target = clamp(12, floor 1, ceiling —, total 20) = 12" in lines


# -- properties --------------------------------------------------------------------------


pools = st.builds(
    lambda floor, ceiling, reserve, headroom, settle, max_step, deadband, exhausted, stale: mkpool(
        floor=floor,
        ceiling=None if ceiling is None else max(ceiling, floor),
        reserve=reserve,
        headroom=headroom,
        hysteresis={"settle": settle, "max_step": max_step, "deadband": deadband},
        on_exhausted=exhausted,
        on_stale=stale,
    ),
    st.integers(1, 5),
    st.none() | st.integers(1, 60),
    st.integers(0, 10) | st.sampled_from(["10%", "50%", "0%"]),
    st.integers(0, 5),
    st.integers(1, 4),
    st.none() | st.integers(1, 8),
    st.integers(1, 4),
    st.sampled_from(["pause", "hold_one"]),
    st.sampled_from(["hold", "floor"]),
)
reports = st.builds(
    lambda total, in_use, up: report(total=total, in_use=in_use, up=up),
    st.none() | st.integers(0, 80),
    st.integers(0, 100),
    st.booleans(),
)
limits = st.builds(
    lambda m, c: limit(max_count=m, current=c, assoc=[("queue-a", ACTIVE), ("queue-b", PAUSED)]),
    st.sampled_from([-1]) | st.integers(1, 100),
    st.integers(0, 100),
)


@given(pool=pools, rep=reports, lim=limits, rising=st.integers(0, 5), age=st.integers(0, 7200))
@settings(max_examples=400, deadline=None)
def test_invariants(pool, rep, lim, rising, age):
    since = NOW - timedelta(seconds=60 * rising) if rising else None
    mem = {(FARM, "amount.nuke"): LimitMemory(("queue-b",), rising_since=since)}
    d, _ = run(pool, rep, lim, memory=mem, last_good=NOW - timedelta(seconds=age))
    if d.new is not None:
        assert d.new != 0 and d.new >= -1  # Deadline rejects 0 and < −1
        assert d.new != lim.max_count  # nothing written equal to the current value
        if d.new != -1:
            if pool.ceiling is not None:
                assert d.new <= pool.ceiling
            if rep.up and rep.features[0].total is not None:
                assert d.new <= max(1, rep.features[0].total)
        if not rep.up:  # a pool whose source failed is never raised
            assert lim.max_count == -1 or d.new < lim.max_count
        if pool.ceiling is not None or (rep.up and rep.features[0].total is not None):
            assert d.new != -1
    if not rep.up:
        assert d.pause == () and d.resume == ()


@settings(max_examples=200, deadline=None)
@given(pools, st.integers(0, 80), st.floats(0, 1), st.integers(0, 80))
def test_a_needed_change_is_written_within_settle_and_max_step(pool, total, share, start):
    """Progress beside the safety bounds above: with the licenses steady and every write
    landing, maxCount reaches its target (or within the deadband of it) after `settle`
    cycles plus one a `max_step`, then stays. Before this property, a law that never
    wrote an increase of 1 passed every test."""
    rep = report(total=total, in_use=round(total * share))
    hy = pool.hysteresis
    cur, memory = start, None
    cycles = hy.settle + math.ceil(max(total, start) / (hy.max_step or 10**9)) + 1
    for k in range(cycles):  # a cycle every interval (60 s)
        at = NOW + timedelta(seconds=60 * k)
        d, p = run(pool, rep, limit(max_count=cur), memory, now=at)
        memory, cur = p.memory, cur if d.new is None else d.new
    d, _ = run(pool, rep, limit(max_count=cur), memory, now=NOW + timedelta(seconds=60 * cycles))
    assert d.new is None, (cur, d)  # settled
    assert abs(d.target - cur) < hy.deadband, (cur, d)


def test_preemption_requeues_the_youngest_farm_tasks_when_artists_are_refused():
    pool = mkpool(headroom=5, preempt={"enabled": True, "max_per_cycle": 3})
    # 20 licenses all in use, 2 artists queued: the farm holds 12, its target is 20 − 8 − 5
    d, _ = run(pool, report(total=20, in_use=20, queued=2), limit(max_count=12, current=12))
    assert d.target == 7 and d.preempt == 3  # at most max_per_cycle a cycle
    assert d.why[-1].kind == "preempting" and d.why[-1]["queued"] == 2
    assert "requeueing the farm's 3 youngest task(s)" in text(d.why)


def test_no_preemption_while_artists_are_served_or_when_it_is_off():
    on = mkpool(headroom=1, preempt={"enabled": True})
    calm, _ = run(on, report(total=20, in_use=12), limit(max_count=12, current=12))
    assert calm.preempt == 0  # 8 free, no queue: nobody is refused
    off, _ = run(mkpool(headroom=1), report(total=20, in_use=20, queued=2), limit(12, 12))
    assert off.preempt == 0


def test_preemption_when_fewer_are_free_than_the_reserve_though_nobody_queues_yet():
    pool = mkpool(reserve=3, headroom=1, preempt={"enabled": True})
    # 2 free under a reserve of 3: artists are about to be refused; the farm holds 14 of 12
    soon, _ = run(pool, report(total=20, in_use=18), limit(max_count=14, current=14))
    assert soon.target == 12 and soon.preempt == 2
    # the reserve and the headroom free and nobody queued: nothing is requeued
    even, _ = run(pool, report(total=20, in_use=16), limit(max_count=14, current=13))
    assert even.target < 14 and even.preempt == 0
    # the reserve free but not the headroom: an artist's checkout took the license kept
    # against the race, and the farm may start another task on it
    short, _ = run(pool, report(total=20, in_use=17), limit(max_count=14, current=14))
    assert short.target == 13 and short.preempt == 1


def test_preemption_when_artists_queue_though_the_reserve_is_free():
    pool = mkpool(reserve=3, headroom=1, preempt={"enabled": True})
    d, _ = run(pool, report(total=20, in_use=17, queued=1), limit(max_count=16, current=16))
    assert d.target == 15 and d.preempt == 1  # a checkout of another version is refused


def test_an_unlimited_limit_whose_source_is_down_falls_to_floor_once_stale():
    d, _ = run(
        mkpool(floor=2, stale_after="5m"),
        report(up=False),
        limit(max_count=-1),
        last_good=NOW - timedelta(minutes=6),
    )
    assert (d.new, d.status) == (2, "stale")
    held, _ = run(
        mkpool(floor=2, stale_after="5m"),
        report(up=False),
        limit(max_count=-1),
        last_good=NOW - timedelta(minutes=2),
    )
    assert (held.new, held.status) == (None, "down")  # within stale_after: held, unlimited


def test_a_pool_over_two_farms_names_each_limits_farm_in_the_plan():
    other = "farm-" + "b" * 32
    pool = Pool.model_validate(
        {
            "limits": [
                {"farm": FARM, "limit": "amount.arnold"},
                {"farm": other, "limit": "amount.arnold"},
            ],
            "features": [{"source": "s", "feature": "nuke_r"}],
            "hysteresis": {"settle": 1},
        }
    )
    policy = Policy.model_validate(
        {
            "farms": [{"id": FARM}, {"id": other}],
            "sources": {"s": {"kind": "static", "features": {"nuke_r": 30}}},
            "pools": {"arnold": pool.model_dump(exclude_unset=True)},
        }
    )
    la = LimitState(FARM, "limit-a", "A", "amount.arnold", 30, 4)
    lb = LimitState(other, "limit-b", "B", "amount.arnold", 30, 2)
    p = plan(
        policy,
        {"s": SourceState(report(total=30, in_use=11), NOW)},
        {(FARM, "amount.arnold"): la, (other, "amount.arnold"): lb},
        {},
        NOW,
    )
    lines = [ln.strip() for ln in plan_lines(p.pools["arnold"]) if "amount.arnold" in ln]
    assert [ln.split(":")[0] for ln in lines] == [
        f"~ arnold/amount.arnold on {FARM}",
        f"~ arnold/amount.arnold on {other}",
    ]
    one = plan(mkpolicy(mkpool()), {"s": SourceState(report(total=30, in_use=11), NOW)},
               {(FARM, "amount.nuke"): limit()}, {}, NOW)  # fmt: skip
    assert plan_lines(one.pools["nuke"])[0].strip().startswith("~ nuke/amount.nuke: ")


def running(*ages: int) -> tuple[RunningTask, ...]:
    """Running tasks of one unit each, started `ages` seconds before NOW."""
    return tuple(
        RunningTask("q", "job", "step", f"task-{a}", NOW - timedelta(seconds=a), 1) for a in ages
    )


@dataclass(frozen=True)
class Preempt:
    target: int
    tasks: int
    younger_than: float


def test_requeues_take_the_youngest_up_to_max_per_cycle_and_none_as_old_as_younger_than():
    tasks = running(10, 20, 30, 40, 60)  # the last ran exactly younger_than
    holding = Holding(tasks, held=5)
    two, _ = requeues(holding, Preempt(0, 2, 60), set(), NOW)
    every, _ = requeues(holding, Preempt(0, 10, 60), set(), NOW)
    assert [t.task_id for t in two] == ["task-10", "task-20"]
    assert [t.task_id for t in every] == ["task-10", "task-20", "task-30", "task-40"]
    # those already requeued count as given back: only what is still over is chosen
    rest, _ = requeues(holding, Preempt(2, 10, 60), {"task-10"}, NOW)
    assert [t.task_id for t in rest] == ["task-20", "task-30"]


# -- whole decisions: what is written, what is carried, and the words a wrangler reads ------

ME, ANN = "arn:aws:iam::111122223333:role/license-sync", "arn:aws:iam::111122223333:user/ann"
OUR_PAUSE = ("2026-11-25T11:00:00+00:00", ME)


def assoc(queue: str, status: str, by: str = ME, at: str = "11:00") -> Association:
    return Association(queue, status, (f"2026-11-25T{at}:00+00:00", by))


def paused(*queues: str) -> dict:
    stamps = tuple((q, OUR_PAUSE) for q in queues)
    return {(FARM, "amount.nuke"): LimitMemory(queues, stamps=stamps)}


WHOLE = {
    "exhausted, paused": (
        {"on_exhausted": "pause"},
        report(total=10, in_use=10),
        limit(5, assoc=[("queue-a", ACTIVE), ("queue-b", ACTIVE), ("queue-c", STOPPED)]),
        {},
        (1, ("queue-a", "queue-b"), (), None),
        "licenses exhausted (raw target 0 < 1): queues paused; decrease 5 → 1 applied at once; "
        "pausing 2 queue association(s)",
    ),
    "licenses back, resumed": (
        {"on_exhausted": "pause"},
        report(total=10, in_use=2),
        replace(limit(1), associations=(assoc("queue-a", PAUSED), assoc("queue-b", STOPPED))),
        paused("queue-a", "queue-b"),
        (8, (), ("queue-a", "queue-b"), None),
        "increase 1 → 8 after 0s wanted; licenses back: resuming 2 queue association(s)",
    ),
    "a queue a person wrote after our pause is theirs": (
        {"on_exhausted": "pause"},
        report(total=10, in_use=2),
        replace(
            limit(1),
            associations=(assoc("queue-a", PAUSED, ANN, "11:30"), assoc("queue-b", PAUSED)),
        ),
        paused("queue-a", "queue-b"),
        (8, (), ("queue-b",), None),
        "increase 1 → 8 after 0s wanted; queue(s) queue-a written by someone else since we "
        "paused them: theirs to reopen; licenses back: resuming 1 queue association(s)",
    ),
    "a rise waits to settle": (
        {"hysteresis": {"settle": 3}},
        report(total=20, in_use=0),
        limit(5),
        {},
        (None, (), (), NOW),
        "increase 5 → 20 waits: wanted 0s of the 120s it settles",
    ),
    "a rise limited by max_step goes on": (
        {"hysteresis": {"settle": 1, "max_step": 4}},
        report(total=20, in_use=0),
        limit(5),
        {},
        (9, (), (), NOW),
        "increase 5 → 20 limited to +4 this cycle: 9",
    ),
    "a whole rise ends the count": (
        {"hysteresis": {"settle": 2}},
        report(total=20, in_use=0),
        limit(5),
        {(FARM, "amount.nuke"): LimitMemory(rising_since=NOW - timedelta(seconds=60))},
        (20, (), (), None),
        "increase 5 → 20 after 60s wanted",
    ),
    "at the target": (
        {},
        report(total=20, in_use=0),
        limit(20),
        {},
        (None, (), (), None),
        "maxCount 20 is already the target",
    ),
    "a small fall is kept": (
        {"hysteresis": {"deadband": 2}},
        report(total=20, in_use=1),
        limit(20),
        {(FARM, "amount.nuke"): LimitMemory(rising_since=NOW)},
        (None, (), (), None),
        "decrease 20 → 19 is within the deadband 2; kept",
    ),
}


@pytest.mark.parametrize("case", WHOLE, ids=list(WHOLE))
def test_each_decision_writes_carries_and_reads_as_a_wrangler_sees_it(case):
    pool_kw, rep, lim, memory, (new, pause, resume, rising), words = WHOLE[case]
    d, p = run(mkpool(**pool_kw), rep, lim, memory)
    assert (d.new, d.pause, d.resume, text(d.why)) == (new, pause, resume, words)
    assert (d.pool, d.farm_id, d.limit_ref, d.limit_id, d.current) == (
        "nuke",
        FARM,
        "amount.nuke",
        LIMIT_ID,
        lim.max_count,
    )
    kept = p.memory[(FARM, "amount.nuke")]
    ours = tuple(sorted({*pause, *resume}))
    assert (kept.rising_since, kept.paused) == (rising, ours)
    assert kept.stamps == tuple(
        s for s in memory.get((FARM, "amount.nuke"), LimitMemory()).stamps if s[0] in ours
    )


FAILED = {
    "down, held": (
        {},
        NOW - timedelta(minutes=2),
        limit(10, current=4),
        (None, 10, "down"),
        "source 's' down: Cannot connect; last good 2m ago: holding maxCount 10 until stale "
        "after 10m",
    ),
    "stale, to the floor": (
        {"floor": 2, "stale_after": "5m"},
        NOW - timedelta(minutes=6),
        limit(10, current=4),
        (2, 2, "stale"),
        "source 's' down: Cannot connect; last good 6m ago, stale after 5m: falling to floor 2",
    ),
    "stale, unlimited to the floor": (
        {"floor": 2},
        None,
        limit(-1, current=4),
        (2, 2, "stale"),
        "source 's' down: Cannot connect; never read, stale after 10m: falling to floor 2",
    ),
    "stale, at the floor already": (
        {"floor": 2, "stale_after": "1m"},
        NOW - timedelta(hours=1),
        limit(2, current=4),
        (None, 2, "stale"),
        "source 's' down: Cannot connect; last good 1h ago: holding maxCount 2 (at or below floor)",
    ),
}


@pytest.mark.parametrize("case", FAILED, ids=list(FAILED))
def test_a_pool_whose_source_failed_holds_or_falls_and_forgets_its_rise(case):
    pool_kw, last_good, lim, (new, target, status), words = FAILED[case]
    memory = {
        (FARM, "amount.nuke"): LimitMemory(
            ("queue-a",), external=5, stamps=(("queue-a", OUR_PAUSE),), rising_since=NOW
        )
    }
    d, p = run(mkpool(**pool_kw), report(up=False), lim, memory, last_good=last_good)
    assert (d.new, d.target, d.status, d.current, d.current_count) == (
        new,
        target,
        status,
        lim.max_count,
        4,
    )
    assert (d.pool, d.farm_id, d.limit_ref, d.limit_id) == ("nuke", FARM, "amount.nuke", LIMIT_ID)
    assert text(d.why) == words
    pp = p.pools["nuke"]
    assert (pp.status, pp.figures, text(pp.failures)) == (
        status,
        None,
        "source 's' down: Cannot connect",
    )
    # the rise and the read of external use are forgotten; the queues we paused are not
    assert p.memory[(FARM, "amount.nuke")] == LimitMemory(
        ("queue-a",), None, (("queue-a", OUR_PAUSE),)
    )


def test_a_limit_not_read_while_its_source_is_down_is_an_error_saying_both():
    missing = {(FARM, "amount.nuke"): None}
    p = plan(mkpolicy(mkpool()), {"s": SourceState(report(up=False), None)}, missing, {}, NOW)
    [d] = p.pools["nuke"].decisions
    assert (d.pool, d.farm_id, d.limit_ref, d.limit_id, d.status, d.new) == (
        "nuke",
        FARM,
        "amount.nuke",
        None,
        "error",
        None,
    )
    assert text(d.why) == (
        "source 's' down: Cannot connect; limit 'amount.nuke' not read; nothing written"
    )


def test_preemption_counts_what_the_selector_sees_and_what_a_lowered_limit_still_lets_run():
    pool = mkpool(
        reserve=4,
        preempt={"enabled": True, "max_per_cycle": 10},
        farm_selector={"hosts": ["^render-"]},
    )
    farm = [checkout(f"render-{i}") for i in range(14)]
    # the selector sees 14 on the farm's hosts while currentCount still says 10
    d, _ = run(pool, report(total=20, in_use=20, queued=2, checkouts=farm), limit(16, current=10))
    assert (d.target, d.preempt) == (10, 4)
    assert text(d.why[-1:]) == (
        "artists refused or about to be (2 queued, 0 free, reserve 4): requeueing the farm's "
        "4 youngest task(s)"
    )
    plain = mkpool(preempt={"enabled": True})
    # the farm holds 10 by currentCount, under a target of 12, but maxCount 16 lets 16 run
    lowered, _ = run(plain, report(total=20, in_use=18, queued=1), limit(16, current=10))
    assert (lowered.target, lowered.preempt) == (12, 1)
    # could the farm hold more than its target? no: at the target exactly, nothing to give
    even, _ = run(plain, report(total=20, in_use=20, queued=1), limit(12, current=12))
    assert (even.target, even.preempt) == (12, 0)
    reserved = mkpool(reserve=4, preempt={"enabled": True, "max_per_cycle": 10})
    unlimited, _ = run(reserved, report(total=20, in_use=20, queued=1), limit(-1, current=14))
    assert (unlimited.target, unlimited.preempt) == (10, 4)
    uncounted, _ = run(plain, report(total=None, in_use=20, queued=1), limit(12, current=12))
    assert uncounted.preempt == 0


def two_limits(total, in_use, a: LimitState | None, b: LimitState | None):
    pool = Pool.model_validate(
        {
            "limits": [{"farm": FARM, "limit": "a", "share": 2}, {"farm": FARM, "limit": "b"}],
            "features": [{"source": "s", "feature": "nuke_r"}],
            "hysteresis": {"settle": 1},
        }
    )
    found = {(FARM, "a"): a or "AccessDenied", (FARM, "b"): b or "AccessDenied"}
    p = plan(mkpolicy(pool), {"s": SourceState(report(total, in_use), NOW)}, found, {}, NOW)
    return p.pools["nuke"]


def test_each_limits_split_is_its_own_use_and_its_share_of_the_rest():
    pp = two_limits(
        30,
        11,
        LimitState(FARM, "limit-a", "A", "a", 30, 4),
        LimitState(FARM, "limit-b", "B", "b", 30, 2),
    )
    assert pp.splits == (Split("a", 4, 13, 2.0), Split("b", 2, 6, 1.0))
    assert pp.raw == (17.0, 8.0)
    # a limit not read uses nothing; a negative currentCount (Deadline's lag) counts as 0
    one = two_limits(30, 11, LimitState(FARM, "limit-a", "A", "a", 30, -2), None)
    assert one.splits == (Split("a", 0, 13, 2.0), Split("b", 0, 6, 1.0))
    assert [d.status for d in one.decisions] == ["ok", "error"]
    # more in use by the farm than is free: nobody's share is below nothing
    over = two_limits(
        10,
        10,
        LimitState(FARM, "limit-a", "A", "a", 30, 6),
        LimitState(FARM, "limit-b", "B", "b", 30, 4),
    )
    assert over.splits == (Split("a", 6, 0, 2.0), Split("b", 4, 0, 1.0))
    uncounted = two_limits(
        None,
        4,
        LimitState(FARM, "limit-a", "A", "a", 30, 2),
        LimitState(FARM, "limit-b", "B", "b", 30, 2),
    )
    assert (uncounted.splits, uncounted.raw) == ((), (math.inf, math.inf))


def test_artists_refused_and_waiting_count_as_external_use_of_their_features_pool():
    pool = mkpool(preempt={"enabled": True, "max_per_cycle": 5})
    state = SourceState(report(total=20, in_use=20), NOW, waiting={"nuke_r": 3, "maya": 9})
    p = plan(mkpolicy(pool), {"s": state}, {(FARM, "amount.nuke"): limit(18, current=18)}, {}, NOW)
    fig = p.pools["nuke"].figures
    assert (fig.external, fig.waiting) == (2 + 3, 3)
    # someone is refused now though nothing is queued: the farm gives back what it holds
    # above its target at once
    [d] = p.pools["nuke"].decisions
    assert (d.target, d.preempt) == (15, 3)
    # a waiting artist of another feature is not this pool's
    other = {"s": SourceState(report(total=20, in_use=20), NOW, waiting={"nuke_i": 3})}
    p2 = plan(mkpolicy(pool), other, {(FARM, "amount.nuke"): limit(18, current=18)}, {}, NOW)
    assert (p2.pools["nuke"].figures.external, p2.pools["nuke"].figures.waiting) == (2, 0)
    assert p2.pools["nuke"].decisions[0].preempt == 0


def test_a_burst_under_an_unlimited_limit_is_never_sure_to_be_artists():
    pool = mkpool()
    _, p1 = run(pool, report(total=20, in_use=2), limit(-1, current=2))
    d, p2 = run(pool, report(total=20, in_use=18), limit(-1, current=2), p1.memory)
    assert text(d.why[:1]) == (
        "external use read 16, counted as 0 until a second read shows it (the farm's use is "
        "currentCount, which Deadline updates late)"
    )
    assert (
        p2.pools["nuke"].figures.external == 0 and p2.memory[(FARM, "amount.nuke")].external == 16
    )


SELECTED = {"farm_selector": {"hosts": ["^render-"]}}


def around(held: int | None, max_count: int = 10, current: int = 2, memory=None):
    farm = [checkout(f"render-{i}") for i in range(5)]
    lim = replace(limit(max_count, current=current), held=held)
    return run(mkpool(**SELECTED), report(total=20, in_use=8, checkouts=farm), lim, memory)


def test_use_around_the_limit_is_the_farm_hosts_use_beyond_its_tasks_taken_on_a_second_read():
    _, p = around(held=2)  # 5 on the farm's hosts, 2 held by the limit's tasks
    fig = p.pools["nuke"].figures
    assert (fig.undeclared_seen, fig.undeclared) == (3, 0)  # one read: seen, not taken
    assert p.memory[(FARM, "amount.nuke")].undeclared == 3
    _, p2 = around(held=2, memory={(FARM, "amount.nuke"): LimitMemory(undeclared=2)})
    fig2 = p2.pools["nuke"].figures
    assert (fig2.undeclared_seen, fig2.undeclared) == (3, 2)  # the lesser of the two reads
    assert p2.pools["nuke"].free == 20 - 3 - 2


def test_without_the_tasks_holdings_only_what_no_limit_could_admit_is_around_it():
    _, p = around(held=None, max_count=3, current=2)  # 5 on the hosts, the limit admits 3
    assert p.pools["nuke"].figures.undeclared_seen == 2
    _, p = around(held=None, max_count=2, current=4)  # currentCount above maxCount: 4
    assert p.pools["nuke"].figures.undeclared_seen == 1
    _, unlimited = around(held=None, max_count=-1, current=2)
    assert unlimited.pools["nuke"].figures.undeclared_seen == 0


def test_without_a_selector_the_tasks_holdings_are_the_farms_use_and_nothing_is_around_it():
    st = replace(limit(10, current=1), held=4)
    _, p = run(mkpool(), report(total=20, in_use=8), st)
    fig = p.pools["nuke"].figures
    assert (fig.farm_use, fig.farm_use_from, fig.undeclared_seen) == (4, "acquiredLimits", 0)


def test_tasks_holding_nothing_hold_nothing_and_a_farm_all_declared_has_nothing_around_it():
    idle = replace(limit(10, current=3), held=0)
    _, p = run(mkpool(), report(total=20, in_use=5), idle)
    assert (p.pools["nuke"].figures.farm_use, p.pools["nuke"].figures.external) == (0, 5)
    _, declared = around(held=5)  # 5 on the farm's hosts, all 5 held by the limit's tasks
    assert declared.pools["nuke"].figures.undeclared_seen == 0


def test_a_limit_not_read_keeps_its_memory_and_an_unconfirmed_rise_its_count():
    missing = {(FARM, "amount.nuke"): "AccessDenied"}
    kept = {(FARM, "amount.nuke"): LimitMemory(("queue-a",), rising_since=NOW)}
    p = plan(mkpolicy(mkpool()), {"s": SourceState(report(), NOW)}, missing, kept, NOW)
    assert p.memory == kept
    fresh = plan(mkpolicy(mkpool()), {"s": SourceState(report(), NOW)}, missing, {}, NOW)
    assert fresh.memory == {(FARM, "amount.nuke"): LimitMemory()}
    # an external rise not yet believed: the rise stays wanted from when it was
    pool = mkpool(hysteresis={"settle": 3})
    since = NOW - timedelta(seconds=300)
    before = {(FARM, "amount.nuke"): LimitMemory(external=2, rising_since=since)}
    d, p2 = run(pool, report(total=20, in_use=9), limit(10, current=2), before)
    assert d.new is None and p2.memory[(FARM, "amount.nuke")].rising_since == since
    # and an unlimited limit is still lowered under it: lowering is always safe
    down, _ = run(pool, report(total=20, in_use=9), limit(-1, current=2), before)
    assert down.new is not None and down.new > 0


def test_a_percentage_reserve_is_of_the_total_rounded_up_and_nothing_of_no_total():
    big, _ = run(mkpool(reserve="50%"), report(total=300, in_use=0), limit(300))
    assert big.target == 150
    uncounted = mkpool(reserve="50%", ceiling=40)
    _, p = run(uncounted, report(total=None, in_use=0), limit(40))
    assert (p.pools["nuke"].figures.reserve, p.pools["nuke"].reserve_from) == (
        0,
        "50% of an unlimited total (default)",
    )


def test_a_whole_is_apportioned_by_largest_remainders_not_largest_parts():
    assert apportion(3, [7.0, 3.0]) == [2, 1]
    assert apportion(5, [1.0, 1.0]) == [3, 2]
