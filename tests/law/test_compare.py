"""What a policy edit changes, compared as data: a limit or job cap on which the two
plans differ, and nothing both would do. Pure."""

from __future__ import annotations

from dataclasses import replace

from sync.law.compare import EditEffect, JobEffect, LimitEffect, compare
from sync.law.jobplan import FarmJobs
from sync.law.limits import LimitPlan, PoolPlan
from sync.law.reconcile import Plan
from sync.law.state import Memory
from sync.values.domain import Decision, JobWrite, Reason

F1, F2 = "farm-1", "farm-2"
WHY = (Reason.of("nothing_written"),)


def decision(ref="amount.nuke", farm=F1, **kw) -> Decision:
    base = Decision("nuke", farm, ref, "limit-1", 5, 5, None, WHY)
    return replace(base, **kw)


def cap(job="job-1", value=3, restore=False, why=WHY) -> JobWrite:
    return JobWrite("q", job, value, -1, "nuke", "limit-1", why, restore)


def plan(*decisions: Decision, jobs: dict[str, tuple[JobWrite, ...]] | None = None) -> Plan:
    farms = tuple(FarmJobs(f, writes) for f, writes in (jobs or {}).items())
    pools = {d.limit_ref: PoolPlan(d.pool, (d,), None) for d in decisions}
    return Plan(LimitPlan(pools, {}), (), (), farms, Memory(), ())


def test_two_plans_that_do_the_same_differ_in_nothing_even_in_their_words():
    same = plan(decision(), jobs={F1: (cap(),)})
    worded = plan(decision(why=(Reason.of("at_target", current=5),)), jobs={F1: (cap(why=()),)})
    effect = compare(same, worded)
    assert effect == EditEffect((), ()) and not effect.changes_anything


def test_each_part_of_what_a_limit_does_is_a_difference():
    old = decision()
    for new in (
        decision(target=4),
        decision(new=4),
        decision(pause=("q1",)),
        decision(resume=("q1",)),
        decision(preempt=1),
        decision(status="stale"),
    ):
        effect = compare(plan(old), plan(new))
        assert effect.limits == (LimitEffect(F1, "amount.nuke", old, new),), new
        assert effect.changes_anything


def test_a_limit_one_policy_does_not_name_is_a_difference_in_a_stable_order():
    a, b, c = decision("amount.a"), decision("amount.b"), decision("amount.c", F2)
    effect = compare(plan(c, a), plan(b, a))
    assert effect.limits == (
        LimitEffect(F1, "amount.b", None, b),
        LimitEffect(F2, "amount.c", c, None),
    )


def test_a_job_cap_written_otherwise_or_only_by_one_plan_is_a_difference():
    effect = compare(
        plan(jobs={F1: (cap("job-1", 3), cap("job-2", 2)), F2: (cap("job-9", 1),)}),
        plan(jobs={F1: (cap("job-1", 4), cap("job-2", 2), cap("job-3", 1, restore=True))}),
    )
    assert effect.jobs == (
        JobEffect(F1, "job-1", cap("job-1", 3), cap("job-1", 4)),
        JobEffect(F1, "job-3", None, cap("job-3", 1, restore=True)),
        JobEffect(F2, "job-9", cap("job-9", 1), None),
    )
    assert effect.limits == () and effect.changes_anything
    flipped = compare(plan(jobs={F1: (cap(),)}), plan(jobs={F1: (cap(restore=True),)}))
    assert [j.job_id for j in flipped.jobs] == ["job-1"]
