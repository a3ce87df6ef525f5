"""Use around the limit, named: which farm hosts hold a pool's licenses beyond what their
task runs acquired, which runs are there, and how the pool's limits bear it. Pure; the
whole loop through the real process is tests/cycle/test_undeclared.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sync.law.limits import PoolPlan, Split
from sync.law.render import decision_line, plan_lines
from sync.law.state import SourceState
from sync.law.undeclared import MOST_NAMED, by_limit, farm_checkouts, hosts_to_name, name_undeclared
from sync.licenses import Feature, Report
from sync.policy import Pool
from sync.values.domain import Decision, Figures, HostRun, Undeclared
from tests.support.fakes import checkout

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


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


def nuke(**kw) -> Pool:
    return Pool.model_validate(
        {"limit": "amount.nuke", "features": [{"source": "s", "feature": "nuke_r"}], **kw}
    )


FEATURE = Feature(
    "foundry",
    "nuke_r",
    None,
    20,
    7,
    checkouts=(
        checkout("render-001.farm.local", count=2),
        checkout("render-001"),
        checkout("render-002", user="svc"),
        checkout("ws-1"),
        checkout("ws-2", user="render"),
        checkout(None, user=None),
    ),
)


def test_the_farm_hosts_checkouts_are_counted_by_short_name_under_the_selector():
    held = farm_checkouts(nuke(farm_selector={"hosts": ["^render-"]}), [FEATURE])
    assert held == {"render-001": 3, "render-002": 1}
    by_user = farm_checkouts(nuke(farm_selector={"users": ["^svc$"]}), [FEATURE])
    assert by_user == {"render-002": 1}
    workers = farm_checkouts(nuke(farm_selector={"workers": True}), [FEATURE], frozenset({"ws-1"}))
    assert workers == {"ws-1": 1}
    assert farm_checkouts(nuke(), [FEATURE]) == {}


def test_hosts_are_read_only_when_every_feature_of_the_pool_was_read():
    up = {"s": SourceState(Report("flexlm", True, features=(FEATURE,)), NOW)}
    down = {"s": SourceState(Report("flexlm", False, errors=("Cannot connect",)), None)}
    pool = nuke(farm_selector={"hosts": ["^render-"]})
    assert hosts_to_name(pool, up, NOW) == {"render-001": 3, "render-002": 1}
    assert hosts_to_name(pool, down, NOW) == {}
    workers = nuke(farm_selector={"workers": True})
    assert hosts_to_name(workers, up, NOW, frozenset({"ws-1"})) == {"ws-1": 1}


def test_extra_licenses_are_shared_one_a_run_the_last_run_taking_the_rest():
    runs = [HostRun("render-001", f"w{i}", "q", f"job-{i}", "s", {}) for i in range(3)]
    two = name_undeclared(_plan(3), {"render-001": 2}, ["limit-amount.nuke"], runs)
    assert [(u.job_id, u.count) for u in two] == [("job-0", 1), ("job-1", 1)]
    found = name_undeclared(_plan(5), {"render-001": 5}, ["limit-amount.nuke"], runs[:2])
    assert [(u.pool, u.job_id, u.worker_id, u.queue_id, u.step_id, u.count) for u in found] == [
        ("nuke", "job-0", "w0", "q", "s", 1),
        ("nuke", "job-1", "w1", "q", "s", 4),
    ]
    [alone] = name_undeclared(_plan(2), {"render-009": 2}, ["limit-amount.nuke"], runs)
    assert (alone.pool, alone.host, alone.count, alone.job_id) == ("nuke", "render-009", 2, "")


def test_no_more_than_a_handful_of_hosts_are_named_a_cycle():
    held = {f"render-{i:03}": 1 for i in range(MOST_NAMED + 5)}
    found = name_undeclared(_plan(25), held, ["limit-amount.nuke"], [])
    assert len(found) == MOST_NAMED and found[0].host == "render-000"
    assert name_undeclared(replace(_plan(3), figures=None), held, [], []) == ()


def test_without_figures_or_splits_the_limits_bear_nothing_or_alike():
    assert by_limit(replace(_plan(4, ("a", "b")), figures=None)) == {"a": 0, "b": 0}
    assert by_limit(_plan(5, ("a", "b"))) == {"a": 3, "b": 2}
