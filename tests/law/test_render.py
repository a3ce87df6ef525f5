"""Plans into the text people read: `plan`, `explain`, `run --once`, the demo and the
edit's effect. The layouts are what docs/operations.md shows and wranglers grep, so each
is pinned line by line. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sync.law.compare import EditEffect, JobEffect, LimitEffect
from sync.law.jobplan import PoolJobs
from sync.law.limits import PoolPlan, Split
from sync.law.render import (
    column_widths,
    decision_line,
    effect_lines,
    explain_lines,
    job_lines,
    job_write_lines,
    jobs_summary,
    plan_lines,
    table,
    undeclared_said,
)
from sync.policy import Pool
from sync.values.domain import (
    Allocation,
    Decision,
    Figures,
    JobDemand,
    JobWrite,
    Reason,
    Undeclared,
)

R = Reason.of
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FIG = Figures(20, 9, 4, "selector", 5, 2, 1)
KEPT = (R("at_target", current=12),)
RISE = (R("increase", current=8, target=12, wanted=60.0),)


def decision(
    ref="amount.nuke", farm="farm-1", current=8, target=12, new=12, why=RISE, **kw
) -> Decision:
    return Decision("nuke", farm, ref, "limit-1", current, target, new, why, **kw)


def nuke(features: int = 1, **kw) -> Pool:
    feats = [{"source": "s", "feature": f"f{i}"} for i in range(features)]
    return Pool.model_validate({"limit": "amount.nuke", "features": feats, **kw})


def test_a_table_pads_columns_to_their_widest_cell_cut_at_widest():
    rows = [["render-001", "12"], ["ws", "3"]]
    assert table(["host", "n"], rows) == "host        n\nrender-001  12\nws          3"
    assert table(["h", "n"], [["abcdefgh", "1"]], widest=4) == "h     n\nabcd  1"
    assert table(["h", "n"], [["abc", "1"]], widths=[5, 2]) == "abc    1"
    assert column_widths(["host", "n"], rows) == [10, 2]
    assert column_widths(["host", "n"], rows, widest=3) == [3, 2]
    assert table(["h"], [["x" * 61]]) == "h\n" + "x" * 60  # cut at 60 by default


def test_the_cycles_line_says_the_figures_the_write_and_why():
    assert decision_line(decision(), FIG) == (
        "nuke/amount.nuke: total=20 external=5 farm=4 reserve=2 target=12 maxCount=12 — "
        "increase 8 → 12 after 60s wanted"
    )
    waiting = replace(FIG, total=None, waiting=3)
    kept = decision(current=12, new=None, why=KEPT)
    assert decision_line(kept, waiting, name="nuke/amount.nuke on farm-1") == (
        "nuke/amount.nuke on farm-1: total=∞ external=5 (3 refused, waiting) farm=4 reserve=2 "
        "target=12 maxCount=12 (kept) — maxCount 12 is already the target"
    )
    down = decision(current=-1, target=None, new=None, why=(R("source_not_read", source="s"),))
    assert decision_line(down, None) == (
        "nuke/amount.nuke: source down target=— maxCount=unlimited (kept) — source 's' was not read"
    )


def test_plan_lists_each_limits_change_why_and_the_figures_it_came_from():
    acting = decision(pause=("queue-1",), resume=("queue-2",), preempt=2)
    pp = PoolPlan("nuke", (acting, decision("amount.nuke2", new=None, why=KEPT)), FIG)
    assert plan_lines(pp) == [
        "  ~ nuke/amount.nuke: maxCount 8 → 12, pause queue queue-1, resume queue queue-2, "
        "requeue the 2 youngest task(s)",
        "      why: increase 8 → 12 after 60s wanted",
        "      from: total 20, external 5, farm 4 (selector), reserve 2, headroom 1",
        "    nuke/amount.nuke2: no change (maxCount 8)",
        "      why: maxCount 12 is already the target",
        "      from: total 20, external 5, farm 4 (selector), reserve 2, headroom 1",
    ]
    paused_only = PoolPlan("nuke", (decision(new=None, pause=("q",)),), None)
    assert plan_lines(paused_only) == [
        "  ~ nuke/amount.nuke: pause queue q",
        "      why: increase 8 → 12 after 60s wanted",
    ]
    on_two = PoolPlan(
        "nuke", (decision(), decision(farm="farm-2", new=None)), replace(FIG, total=None)
    )
    assert plan_lines(on_two)[0] == "  ~ nuke/amount.nuke on farm-1: maxCount 8 → 12"
    assert plan_lines(on_two)[2] == (
        "      from: total ∞, external 5, farm 4 (selector), reserve 2, headroom 1"
    )
    assert plan_lines(on_two)[3] == "    nuke/amount.nuke on farm-2: no change (maxCount 8)"


def test_use_around_the_limit_is_named_where_the_plan_shows_the_figures():
    fig = replace(FIG, undeclared=3, undeclared_seen=3)
    named = [
        Undeclared("nuke", "render-004", 2, "w", "q", "job-1", "step-1", "comp", "Nuke"),
        Undeclared("nuke", "render-005", 1, "w", "q", "job-2", "step-2"),
        Undeclared("nuke", "ws-9", 1),
    ]
    said = (
        "3 (job comp step Nuke on render-004 ×2, job job-2 step step-2 on render-005, "
        "on ws-9, no task found)"
    )
    assert undeclared_said(named, 3) == said
    assert undeclared_said([], 3) == "3"
    lines = plan_lines(PoolPlan("nuke", (decision(),), fig), {"nuke": named})
    assert lines[-1] == f"      around the limit: undeclared: {said}"
    assert decision_line(decision(), fig, undeclared=named).startswith(
        f"nuke/amount.nuke: total=20 external=5 farm=4 (undeclared: {said}) reserve=2"
    )
    seen = replace(FIG, undeclared_seen=2)
    assert plan_lines(PoolPlan("nuke", (decision(),), seen))[-1] == (
        "      around the limit: undeclared: 2 seen in this read, taken when the next read "
        "shows it too"
    )


def test_explain_shows_the_control_laws_arithmetic_line_by_line():
    fig = replace(FIG, waiting=2, undeclared=1)
    pp = PoolPlan("nuke", (decision(),), fig, free=11.0, raw=(11.5,), reserve_from="static")
    assert explain_lines(pp, nuke(2, ceiling=30)) == [
        "pool nuke",
        "  total     = 20  (Σ 2 features)",
        "  in_use    = 9",
        "  farm_use  = 4  (from selector)",
        "  external  = max(0, 9 − 4) + 2 refused, waiting = 5",
        "  reserve   = 2  (static)",
        "  headroom  = 1",
        "  undeclared: 1  (farm hosts' use beyond what the limits' tasks hold)",
        "  free      = 20 − 5 − 1 − 2 − 1 = 11",
        "  amount.nuke: target = clamp(11.5, floor 1, ceiling 30, total 20) = 12",
        "  amount.nuke: maxCount 8 → 12: increase 8 → 12 after 60s wanted",
    ]


def test_explain_splits_a_pool_over_its_limits_and_says_unlimited_and_unchanged():
    splits = (Split("amount.a", 3, 2, 1.0), Split("amount.b", 1, 1, 0.5))
    pp = PoolPlan(
        "nuke",
        (decision("amount.a", new=None, why=KEPT), decision("amount.b", target=-1)),
        FIG,
        free=7.0,
        splits=splits,
        raw=(5.0, float("inf")),
    )
    lines = explain_lines(pp, nuke())
    assert lines[7:] == [
        "  free      = 20 − 5 − 2 − 1 = 7",
        "  remainder = 7 − Σ farm uses 4 = 3, split by share",
        "  amount.a: own use 3 + share 2 (weight 1)",
        "  amount.b: own use 1 + share 1 (weight 0.5)",
        "  amount.a: target = clamp(5, floor 1, ceiling —, total 20) = 12",
        "  amount.a: maxCount 8 → unchanged: maxCount 12 is already the target",
        "  amount.b: target = clamp(∞, floor 1, ceiling —, total 20) = unlimited",
        "  amount.b: maxCount 8 → 12: increase 8 → 12 after 60s wanted",
    ]
    uncounted = replace(pp, figures=replace(FIG, total=None), free=float("inf"), splits=())
    lines = explain_lines(uncounted, nuke())
    assert lines[1] == "  total     = unlimited (uncounted)"
    assert lines[7] == "  free      = unlimited"
    assert lines[8] == "  amount.a: target = clamp(5, floor 1, ceiling —) = 12"


def test_explain_of_a_pool_whose_source_failed_says_why_for_each_limit():
    failed = PoolPlan(
        "nuke",
        (decision(current=6, target=None, new=None, why=(R("nothing_written"),)),),
        None,
        failures=(R("source_down", source="s", error="timed out"),),
    )
    assert explain_lines(failed, nuke()) == [
        "pool nuke",
        "  source 's' down: timed out",
        "  amount.nuke: nothing written",
    ]


def job(
    job_id: str, name: str, tasks: int, units: int = 1, now: int = -1, minute: int = 0
) -> JobDemand:
    return JobDemand(job_id, "q", name, "ann", AT.replace(minute=minute), 50, units, tasks, now)


def test_how_a_pool_is_shared_between_its_jobs_oldest_first():
    jobs = (
        job("job-2", "fx", 3, minute=5),
        job("job-1", "comp", 4, 2, now=3),
        job("job-3", "lgt", 1),
    )
    allocs = (Allocation("job-1", 3, 2.0, ()), Allocation("job-2", None, 1.0, ()))
    pj = PoolJobs("nuke", "farm-1", "limit-1", 10, jobs, allocs, frozenset({"job-2"}))
    assert job_lines(pj) == [
        "  jobs sharing 10 units: 3 jobs, demand 12",
        "    job-1 'comp': demand 8 (4 tasks × 2), weight 2, cap 3, now 3",
        "    job-3 'lgt': demand 1 (1 tasks × 1), weight 0, cap exempt, now -1",
        "    job-2 'fx': demand 3 (3 tasks × 1), weight 1, cap exempt, now -1 "
        "(manual override: left alone)",
    ]
    assert (
        jobs_summary(pj) == "nuke: 3 jobs share 10 (demand 12): maxWorkerCount fx=—, comp=3, lgt=—"
    )
    assert (
        jobs_summary(pj, shown=1)
        == "nuke: 3 jobs share 10 (demand 12): maxWorkerCount fx=— (+2 more)"
    )
    assert (
        jobs_summary(PoolJobs("nuke", "farm-1", "limit-1", -1))
        == "nuke: 0 jobs share unlimited (demand 0)"
    )


def test_plan_lists_the_first_job_writes_and_counts_the_rest():
    why = (R("fixed_cap", cap=2),)
    writes = [
        JobWrite("q", "job-1", 2, -1, "nuke", "limit-1", why),
        JobWrite("q", "job-2", -1, 2, "nuke", "limit-1", (R("job_released"),), restore=True),
        JobWrite("q", "job-3", 2, 5, "nuke", "limit-1", why),
    ]
    assert job_write_lines(writes, shown=2) == [
        "  ~ job job-1 (nuke): cap maxWorkerCount unlimited → 2: fixed cap 2",
        "  ~ job job-2 (nuke): put back maxWorkerCount 2 → unlimited: no longer needs the pool",
        "  … and 1 more job(s)",
    ]
    assert len(job_write_lines(writes)) == 3
    many = [replace(writes[0], job_id=f"job-{i}") for i in range(21)]
    assert job_write_lines(many)[-1] == "  … and 1 more job(s)"  # 20 shown by default
    assert len(job_write_lines(many[:20])) == 20


def test_an_edits_effect_is_said_a_line_a_limit_or_job_naming_farms_only_when_several():
    assert effect_lines(EditEffect((), ()), "main") == [
        "Against the baseline main: the edit changes nothing."
    ]
    busy = decision(status="stale", pause=("q1", "q2"), resume=("q3", "q4"), preempt=2)
    failed = decision(status="error", why=(R("limit_unreadable", error="AccessDenied"),))
    cap = JobWrite("q", "job-1", 2, 5, "nuke", "limit-1", ())
    back = JobWrite("q", "job-1", 5, 2, "nuke", "limit-1", (), restore=True)
    effect = EditEffect(
        (
            LimitEffect("farm-1", "amount.a", None, busy),
            LimitEffect("farm-1", "amount.b", decision(new=None, why=KEPT), failed),
        ),
        (JobEffect("farm-1", "job-1", cap, back), JobEffect("farm-1", "job-2", None, cap)),
    )
    assert effect_lines(effect, "main") == [
        "Against the baseline main, the edit changes:",
        "  limit amount.a: baseline does not name it; edit target 12 (stale), maxCount 8 → 12, "
        "pause q1, q2, resume q3, q4, requeue 2",
        "  limit amount.b: baseline target 12, maxCount 8 kept; edit error: AccessDenied",
        "  job job-1: baseline cap maxWorkerCount 5 → 2; edit restore maxWorkerCount 2 → 5",
        "  job job-2: baseline no write; edit cap maxWorkerCount 5 → 2",
    ]
    two = EditEffect(
        (LimitEffect("farm-2", "amount.a", None, None),),
        (JobEffect("farm-1", "job-1", None, None),),
    )
    assert effect_lines(two, "main")[1:] == [
        "  limit amount.a on farm-2: baseline does not name it; edit does not name it",
        "  job job-1 on farm-1: baseline no write; edit no write",
    ]
