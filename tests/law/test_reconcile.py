"""One reconcile step from a hand-built snapshot: limits, queue associations and job caps
decided together, with no I/O, no clock and no client (docs/design.md, "The cycle")."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sync.law import jobplan, reasons
from sync.law.jobplan import PoolJobs
from sync.law.reconcile import Requeue, carry, reconcile
from sync.law.render import jobs_summary
from sync.law.state import FarmRead, Memory, Observed, SourceState
from sync.licenses import Feature, Report
from sync.policy import Policy
from sync.values.domain import (
    ACTIVE,
    PAUSED,
    Association,
    JobInfo,
    JobOriginal,
    JobWrite,
    LimitMemory,
    LimitState,
    StepAmounts,
)

FARM = "farm-" + "a" * 32
LIMIT = "limit-" + "b" * 32
QUEUE = "queue-" + "c" * 32
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

MINUTE = timedelta(seconds=60)  # the policies' interval


def policy(
    jobs: str = "fair",
    on_exhausted: str = "hold_one",
    pools: bool = True,
    respect: bool = True,
    hysteresis: dict | None = None,
) -> Policy:
    pool = {
        "limit": "amount.nuke",
        "features": [{"source": "lic", "feature": "nuke_r"}],
        "hysteresis": hysteresis or {"settle": 1},
        "on_exhausted": on_exhausted,
        "jobs": {"policy": jobs, "respect_manual": respect},
    }
    return Policy.model_validate(
        {
            "farms": [{"id": FARM}],
            "sources": {"lic": {"kind": "static", "features": {}}},
            "pools": {"nuke": pool} if pools else {},
        }
    )


def job(n: int, tasks: int = 10, max_workers: int = -1, status: str = "READY") -> JobInfo:
    return JobInfo(
        QUEUE, f"job-{n:032d}", f"shot{n}", 50, status, "CREATE_COMPLETE",
        {"READY": tasks}, max_workers, NOW - timedelta(hours=n), "ana",
    )  # fmt: skip


def observed(
    in_use: int = 4,
    max_count: int = 10,
    jobs: tuple[JobInfo, ...] | None = (),
    assoc: str = ACTIVE,
    extra_limits: dict | None = None,
) -> Observed:
    report = Report("flexlm", True, features=(Feature("foundry", "nuke_r", None, 20, in_use),))
    limit = LimitState(
        FARM, LIMIT, "Nuke", "amount.nuke", max_count, 0, (Association(QUEUE, assoc),)
    )
    steps = {j.job_id: (StepAmounts("step-1", {"amount.nuke": 1}, 50),) for j in jobs or ()}
    limits = {"amount.nuke": limit, **(extra_limits or {})}
    farm = FarmRead(FARM, limits, jobs=jobs, steps=steps)
    return Observed({"lic": SourceState(report, NOW)}, {FARM: farm})


def test_one_plan_holds_the_limit_and_the_job_caps_it_leaves_room_for():
    two = (job(1, tasks=30), job(2, tasks=30))
    plan = reconcile(policy(), observed(in_use=4, max_count=20, jobs=two), Memory(), NOW)
    [d] = plan.decisions
    assert (d.current, d.new) == (20, 16)  # 20 − 4 artists
    [farm] = plan.farms_jobs
    caps = {w.job_id: w.value for w in farm.writes}
    assert caps == {two[0].job_id: 8, two[1].job_id: 8}  # 16 shared fairly
    # each write has its original on the way to disk first, marked pending
    assert {(r.job_id, r.original, r.pending) for r in farm.records} == {
        (two[0].job_id, -1, 8),
        (two[1].job_id, -1, 8),
    }


def test_reconcile_is_pure_the_same_snapshot_gives_the_same_plan():
    snap = observed(jobs=(job(1),))
    assert reconcile(policy(), snap, Memory(), NOW) == reconcile(policy(), snap, Memory(), NOW)


def test_a_farm_whose_jobs_were_not_read_keeps_its_jobs_as_they_are():
    plan = reconcile(policy(), observed(jobs=None), Memory(), NOW)
    assert plan.farms_jobs == () and plan.pools_jobs == ()
    assert plan.decisions[0].new is not None  # its limits are still planned


def test_a_job_a_person_changed_is_left_alone_and_flagged_once():
    j = job(1, max_workers=3)
    rec = JobOriginal(j.job_id, FARM, QUEUE, "nuke", LIMIT, original=-1, last_written=6)
    plan = reconcile(policy(), observed(jobs=(j,)), Memory(originals={j.job_id: rec}), NOW)
    [farm] = plan.farms_jobs
    assert farm.writes == ()
    assert [r.manual for r in farm.taken_over] == [True]
    assert plan.pools_jobs[0].left_alone == {j.job_id}


def test_with_respect_manual_off_a_job_a_person_changed_is_capped_again():
    j = job(1, max_workers=3)
    rec = JobOriginal(j.job_id, FARM, QUEUE, "nuke", LIMIT, original=-1, last_written=6)
    memory = Memory(originals={j.job_id: rec})
    plan = reconcile(policy(respect=False), observed(jobs=(j,)), memory, NOW)
    [farm] = plan.farms_jobs
    assert [(w.job_id, w.old, w.value) for w in farm.writes] == [
        (j.job_id, 3, 10)
    ]  # its 10 tasks' worth
    assert farm.taken_over == () and plan.pools_jobs[0].left_alone == frozenset()


def test_a_departed_limits_paused_queues_are_remembered_while_its_farm_is_unreadable():
    """A limit the policy no longer names, whose queues we paused: while its farm cannot
    be read, nothing is reopened and its memory is kept (`restore --limits` needs it);
    once the farm reads, the queue is reopened."""
    gone = (FARM, "amount.maya")
    memory = Memory({gone: LimitMemory(("queue-x",))})
    unreadable = Observed(observed().sources, {FARM: FarmRead(FARM, error="AccessDenied")})
    held = reconcile(policy(), unreadable, memory, NOW)
    assert held.reopen == () and held.memory.limits[gone].paused == ("queue-x",)
    maya = LimitState(
        FARM, "limit-maya", "Maya", "amount.maya", 1, 0, (Association("queue-x", PAUSED),)
    )
    read = observed(extra_limits={"amount.maya": maya})
    back = reconcile(policy(), read, memory, NOW)
    assert [(r.limit_ref, r.queues) for r in back.reopen] == [("amount.maya", ("queue-x",))]


def test_a_failed_write_starts_its_settle_count_again():
    """A rise cut short by max_step goes on next cycle without settling again; if its
    write failed, it settles again first (carry(): a failed write is not a change)."""
    pol, key = policy(jobs="none", hysteresis={"settle": 2, "max_step": 1}), (FARM, "amount.nuke")
    at10 = observed(in_use=4, max_count=10)  # target 16
    first = reconcile(pol, at10, Memory(), NOW)
    second = reconcile(pol, at10, carry(first, [], {}), NOW + MINUTE)
    assert (first.decisions[0].new, second.decisions[0].new) == (None, 11)
    at11 = observed(in_use=4, max_count=11)
    landed = reconcile(pol, at11, carry(second, [], {}), NOW + 2 * MINUTE)
    failed = reconcile(pol, at10, carry(second, [key], {}), NOW + 2 * MINUTE)
    assert (landed.decisions[0].new, failed.decisions[0].new) == (12, None)


def test_a_recorded_job_no_pool_caps_any_more_gets_its_original_back():
    j = job(1, max_workers=6)
    rec = JobOriginal(j.job_id, FARM, QUEUE, "nuke", LIMIT, original=-1, last_written=6)
    plan = reconcile(policy(jobs="none"), observed(jobs=(j,)), Memory({}, {j.job_id: rec}), NOW)
    [w] = plan.farms_jobs[0].writes
    assert (w.restore, w.old, w.value) == (True, 6, -1)
    assert [r.kind for r in w.why] == ["job_released"]


def test_first_look_of_a_new_history_leaves_capped_jobs_for_adopt():
    capped = job(1, max_workers=4)
    plan = reconcile(policy(), observed(jobs=(capped,)), Memory(first_look=True), NOW)
    assert plan.memory.unadopted == {capped.job_id}
    assert plan.farms_jobs[0].writes == ()
    assert plan.memory.first_look is False


def test_exhausted_licenses_pause_the_queue_and_remember_it():
    snap = observed(in_use=20, max_count=10)
    plan = reconcile(policy(on_exhausted="pause"), snap, Memory(), NOW)
    [d] = plan.decisions
    assert d.pause == (QUEUE,)
    assert plan.memory.limits[(FARM, "amount.nuke")].paused == (QUEUE,)


def test_queues_paused_for_a_limit_that_left_the_policy_are_reopened():
    gone = LimitState(FARM, LIMIT, "Nuke", "amount.nuke", 1, 0, (Association(QUEUE, "STOPPED"),))
    snap = observed(extra_limits={"amount.old": gone})
    memory = Memory({(FARM, "amount.old"): LimitMemory((QUEUE,))})
    plan = reconcile(policy(), snap, memory, NOW)
    [r] = plan.reopen
    assert (r.limit_ref, r.limit_id, r.queues) == ("amount.old", LIMIT, (QUEUE,))
    # remembered until it reads ACTIVE: a failed resume is tried again
    assert plan.memory.limits[(FARM, "amount.old")].paused == (QUEUE,)
    active = replace(gone, associations=(Association(QUEUE, ACTIVE),))
    back = observed(extra_limits={"amount.old": active})
    assert (FARM, "amount.old") not in reconcile(policy(), back, plan.memory, NOW).memory.limits


def test_a_reason_is_data_and_reads_the_same_everywhere():
    plan = reconcile(policy(), observed(in_use=4, max_count=20), Memory(), NOW)
    [d] = plan.decisions
    [why] = d.why
    assert (why.kind, why["current"], why["target"]) == ("decrease", 20, 16)
    assert reasons.text(d.why) == "decrease 20 → 16 applied at once"
    # stored as data beside the words: the kind and its numbers, as JSON
    assert json.loads(json.dumps(reasons.data(d.why))) == [
        {"kind": "decrease", "current": 20, "target": 16}
    ]


def test_a_pool_without_jobs_says_so_without_an_empty_list():
    pj = PoolJobs("nuke", FARM, LIMIT, 10)
    assert jobs_summary(pj) == "nuke: 0 jobs share 10 (demand 0)"


def _two_pools(first: str) -> Policy:
    """nuke (20 licenses) and maya (uncounted: its limit is unlimited), `first` first."""
    pools = {
        "nuke": {"limit": "amount.nuke", "features": [{"source": "lic", "feature": "nuke_r"}]},
        "maya": {"limit": "amount.maya", "features": [{"source": "lic", "feature": "maya_r"}]},
    }
    order = [first, *(p for p in pools if p != first)]
    return Policy.model_validate(
        {
            "farms": [{"id": FARM}],
            "sources": {"lic": {"kind": "static", "features": {}}},
            "pools": {
                p: {**pools[p], "hysteresis": {"settle": 1}, "jobs": {"policy": "fair"}}
                for p in order
            },
        }
    )


@pytest.mark.parametrize("first", ["nuke", "maya"])
def test_a_job_in_two_pools_takes_the_tighter_cap_and_unlimited_never_hides_one(first):
    """A job whose steps ask for both amounts: the pool that caps it tighter wins, in
    either order of the policy; an unlimited limit's -1 never replaces a real cap."""
    j = job(1, tasks=40)
    report = Report(
        "flexlm",
        True,
        features=(
            Feature("foundry", "nuke_r", None, 20, 4),
            Feature("foundry", "maya_r", None, None, 3),
        ),
    )
    assoc = (Association(QUEUE, ACTIVE),)
    limits = {
        "amount.nuke": LimitState(FARM, LIMIT, "Nuke", "amount.nuke", 16, 0, assoc),
        "amount.maya": LimitState(FARM, "limit-" + "d" * 32, "Maya", "amount.maya", -1, 0, assoc),
    }
    steps = {j.job_id: (StepAmounts("step-1", {"amount.nuke": 1, "amount.maya": 1}, 40),)}
    farm = FarmRead(FARM, limits, jobs=(j,), steps=steps)
    snap = Observed({"lic": SourceState(report, NOW)}, {FARM: farm})
    plan = reconcile(_two_pools(first), snap, Memory(), NOW)
    [w] = plan.farms_jobs[0].writes
    assert (w.job_id, w.value, w.pool) == (j.job_id, 16, "nuke")


def test_a_released_jobs_record_settles_as_the_farm_says():
    """A job no pool caps any more: gone, taken over by a person (or marked so), archived,
    already at its original, or put back to it."""
    rec = JobOriginal("job-1", FARM, QUEUE, "nuke", LIMIT, original=30, last_written=6)

    def live(mwc: int, lifecycle: str = "CREATE_COMPLETE") -> JobInfo:
        return replace(job(1, max_workers=mwc), job_id="job-1", lifecycle_status=lifecycle)

    def kind(r: JobOriginal, j: JobInfo | None) -> tuple[str, int | None]:
        why, write = jobplan.settle(r, j)
        return why[0].kind, None if write is None else write.value

    assert kind(rec, None) == ("job_gone", None)
    assert kind(rec, live(9)) == ("job_taken_over", None)  # 9 is not ours
    assert jobplan.settle(rec, live(9))[0][0]["value"] == 9
    assert kind(replace(rec, manual=True), live(6)) == ("job_taken_over", None)
    assert kind(rec, live(6, "ARCHIVED")) == ("job_archived", None)
    assert kind(replace(rec, last_written=None), live(30)) == ("job_already_original", None)
    assert kind(rec, live(6)) == ("job_released", 30)


def test_a_preemption_names_the_jobs_running_in_the_limits_queues():
    pol = Policy.model_validate(
        {
            "farms": [{"id": FARM}],
            "sources": {"lic": {"kind": "static", "features": {}}},
            "pools": {
                "nuke": {
                    "limit": "amount.nuke",
                    "features": [{"source": "lic", "feature": "nuke_r"}],
                    "reserve": 4,
                    "preempt": {
                        "enabled": True,
                        "max_per_cycle": 2,
                        "younger_than": "5m",
                        "release": "1m",
                    },
                }
            },
        }
    )
    other_queue = "queue-" + "d" * 32
    running, starting, waiting, elsewhere = (
        replace(job(1), counts={"RUNNING": 2}),
        replace(job(2), counts={"STARTING": 1, "READY": 4}),
        replace(job(3), counts={"READY": 9, "RUNNING": 0}),
        replace(job(4), queue_id=other_queue, counts={"RUNNING": 3}),
    )
    report = Report(
        "flexlm", True, features=(Feature("foundry", "nuke_r", None, 20, 20, queued=1),)
    )
    limit = LimitState(FARM, LIMIT, "Nuke", "amount.nuke", 14, 14, (Association(QUEUE, ACTIVE),))
    farm = FarmRead(FARM, {"amount.nuke": limit}, jobs=(running, starting, waiting, elsewhere))
    plan = reconcile(pol, Observed({"lic": SourceState(report, NOW)}, {FARM: farm}), Memory(), NOW)
    [d] = plan.decisions
    assert (d.target, d.preempt) == (10, 2)
    assert plan.preempts == (
        Requeue(
            farm_id=FARM,
            pool="nuke",
            limit_ref="amount.nuke",
            limit_id=LIMIT,
            tasks=2,
            younger_than=300.0,
            jobs=((QUEUE, running.job_id), (QUEUE, starting.job_id)),
            target=10,
            release=60.0,
        ),
    )


def test_the_stamps_our_pauses_left_are_carried_for_the_queues_still_paused():
    key, other = (FARM, "amount.nuke"), (FARM, "amount.maya")
    ours, new, stray = ("t1", "me"), ("t2", "me"), ("t3", "me")
    plan = reconcile(policy(jobs="none"), observed(), Memory(), NOW)
    plan = replace(
        plan,
        memory=Memory({key: LimitMemory(("q1", "q2"), stamps=(("q1", ours), ("q2", ours)))}),
    )
    memory = carry(plan, [other], {}, {key: {"q2": new, "q9": stray}})
    assert memory.limits[key] == LimitMemory(("q1", "q2"), stamps=(("q1", ours), ("q2", new)))
    assert memory.limits[other] == LimitMemory()


def test_a_jobs_demand_is_in_runs_of_its_licensed_steps_beside_its_other_steps():
    j = replace(job(1), counts={"READY": 7, "RUNNING": 2, "SUCCEEDED": 40})
    chunked = StepAmounts("render", {"Amount.Nuke": 1.5}, 20, active=7, chunk=3)
    plain = StepAmounts("comp", {"amount.nuke": 1}, 4, active=2)
    other = StepAmounts("cache", {"amount.worker.vcpu": 4}, 10, active=5, chunk=2)
    [d] = jobplan.JobIndex([j], {j.job_id: (chunked, plain, other)}).demands("amount.nuke", {QUEUE})
    # ceil(7 / 3) + 2 runs, each holding 2 licenses (1.5 rounded up); 3 runs of the other step
    assert (d.tasks, d.units, d.other, d.demand) == (3 + 2, 2, 3, 10)
    assert (d.job_id, d.queue_id, d.name, d.priority, d.created_by) == (
        j.job_id,
        QUEUE,
        "shot1",
        50,
        "ana",
    )
    assert d.created_at == j.created_at and d.max_worker_count == -1
    done = StepAmounts("render", {"amount.nuke": 1}, 20, active=0)
    assert jobplan.JobIndex([j], {j.job_id: (done, other)}).demands("amount.nuke", {QUEUE}) == []


def test_without_step_counts_the_jobs_counts_are_bounded_by_the_licensed_steps():
    j = replace(job(1), counts={"READY": 30, "RUNNING": 5, "SUCCEEDED": 99})
    licensed = StepAmounts("render", {"amount.nuke": 1}, 12, chunk=4)
    other = StepAmounts("cache", {}, 30)
    [d] = jobplan.JobIndex([j], {j.job_id: (licensed, other)}).demands("amount.nuke", {QUEUE})
    assert (d.tasks, d.other) == (3, 0)  # min(35, 12) tasks, 4 a run
    [alone] = jobplan.JobIndex([j], {j.job_id: (licensed,)}).demands("AMOUNT.NUKE", {QUEUE})
    assert alone.tasks == 9  # ceil(35 / 4): every active task is the licensed step's


def shared_cap(other: int, max_workers: int = -1) -> tuple[int | None, str]:
    """The cap a fair pool of 4 free licenses gives one job of 10 licensed runs and
    `other` runs of a step that needs no license."""
    j = job(1, max_workers=max_workers)
    steps = (
        StepAmounts("render", {"amount.nuke": 1}, 50, active=10),
        StepAmounts("cache", {}, 9, active=other),
    )
    snap = observed(in_use=16, max_count=4, jobs=(j,))
    farm = replace(snap.farms[FARM], steps={j.job_id: steps})
    pj = reconcile(policy(), replace(snap, farms={FARM: farm}), Memory(), NOW).pools_jobs[0]
    [a] = pj.allocations
    return a.cap, reasons.text(a.why)


def test_a_cap_leaves_room_for_the_jobs_unlicensed_tasks_and_never_passes_its_own_ceiling():
    share = "fair: 4 of 4 units for demand 10 (10 tasks × 1), weight 1"
    assert shared_cap(0) == (4, share)
    assert shared_cap(3) == (
        7,
        f"{share}; plus 3 active task(s) of steps that need no license of the pool",
    )
    assert shared_cap(3, max_workers=6) == (
        6,
        f"{share}; plus 3 active task(s) of steps that need no license of the pool; "
        "held at the job's own maxWorkerCount 6",
    )
    assert shared_cap(0, max_workers=4) == (4, f"{share}; held at the job's own maxWorkerCount 4")
    assert shared_cap(0, max_workers=5) == (4, share)


def test_only_jobs_read_as_they_are_now_are_written_recorded_taken_over_or_released():
    def rec(n: int, **kw) -> JobOriginal:
        return JobOriginal(f"job-{n}", FARM, QUEUE, "nuke", LIMIT, original=-1, **kw)

    def write(n: int) -> JobWrite:
        return JobWrite(QUEUE, f"job-{n}", 2, -1, "nuke", LIMIT, ())

    fj = jobplan.FarmJobs(
        FARM,
        writes=(write(1), write(2)),
        records=(rec(1), rec(3, manual=True), rec(4, manual=True)),
        taken_over=(rec(3, manual=True), rec(4, manual=True)),
        drops=((("job-5", ()), ("job-6", ()))),
        left_alone=frozenset({"job-3", "job-4", "job-7"}),
    )
    kept, waiting = jobplan.confirmed_only(fj, {"job-1", "job-4", "job-6"})
    assert waiting == ["job-2", "job-3", "job-5"]
    assert kept == jobplan.FarmJobs(
        FARM,
        writes=(write(1),),
        records=(rec(1), rec(4, manual=True)),
        taken_over=(rec(4, manual=True),),
        drops=(("job-6", ()),),
        left_alone=frozenset({"job-4", "job-7"}),  # job-3's take-over waits on its read
    )
    everything = {f"job-{n}" for n in range(1, 8)}
    assert jobplan.confirmed_only(fj, everything) == (fj, [])
