"""Sharing a pool between jobs, against the simulated endpoint over HTTP."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from sync.cycle.service import Service
from sync.cycle.writes import WRITES, Write
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.fakes.model import Task
from sync.fakes.operations import PERSON, FakeError
from tests.support.clirun import run_cli
from tests.support.jobs import cycle, jobs_policy, jobs_world, mwc
from tests.support.paths import BIN
from tests.support.policy import edit_policy, edit_pool, pool


@pytest.fixture
def world(sim, tmp_path):
    return jobs_world(sim, tmp_path)


def calls(w):
    return {op: n for (op, outcome), n in _counts(w.metrics).items() if outcome == "ok"}


def _counts(metrics):
    out = {}
    for metric in metrics.api_calls.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                out[(s.labels["operation"], s.labels["outcome"])] = int(s.value)
    return out


def test_fair_caps_are_written_and_a_steady_cycle_reads_no_steps(world):
    w = world
    big = w.farm.add_job(w.queue, "big", tasks=40, amount="amount.nuke", max_worker_count=-1)
    small = w.farm.add_job(w.queue, "small", tasks=2, amount="amount.nuke")
    other = w.farm.add_job(w.queue, "no-license", tasks=40)  # needs no amount
    elsewhere = w.farm.add_job(w.other_queue, "elsewhere", tasks=5, amount="amount.nuke")
    r = cycle(w)
    assert r.ok, r.errors
    assert (mwc(w, big), mwc(w, small)) == (8, 2)
    assert mwc(w, other) == -1 and mwc(w, elsewhere) == -1
    first = calls(w)
    assert first["BatchUpdateJob"] == 1 and first["BatchGetStep"] == 1
    # steady: nothing changed, so no write and no step read
    r = cycle(w)
    after = calls(w)
    assert after["BatchUpdateJob"] == 1 and after["BatchGetStep"] == 1
    assert after.get("ListSteps") == first.get("ListSteps")
    assert after["SearchJobs"] == first["SearchJobs"] + 1
    text = w.metrics.exposition().decode()
    assert 'license_sync_pool_jobs{pool="nuke"} 2.0' in text
    assert 'license_sync_pool_demand{pool="nuke"} 42.0' in text
    assert 'license_sync_changes_total{kind="max_worker_count"} 2.0' in text


def test_caps_follow_the_limit(world):
    w = world
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    cycle(w)
    assert (mwc(w, a), mwc(w, b)) == (5, 5)
    w.src.artists = 4  # the limit drops to 6
    cycle(w)
    assert w.farm.limits[w.limit].max_count == 6
    assert (mwc(w, a), mwc(w, b)) == (3, 3)


def test_with_slack_a_cap_moves_only_when_the_share_leaves_its_band(world):
    w = world
    jobs_policy(w.policy, w.farm.farm_id, w.db, slack=2)
    w.svc = w.make()
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    cycle(w)
    assert (mwc(w, a), mwc(w, b)) == (6, 6)  # shares 5 and 5, each cap mid-band
    writes = calls(w)["BatchUpdateJob"]
    w.src.artists = 1  # the limit drops to 9: shares 5 and 4, both caps still in band
    cycle(w)
    assert w.farm.limits[w.limit].max_count == 9
    assert (mwc(w, a), mwc(w, b)) == (6, 6) and calls(w)["BatchUpdateJob"] == writes
    w.src.artists = 4  # the limit drops to 6: shares 3 and 3, caps past the band
    cycle(w)
    assert w.farm.limits[w.limit].max_count == 6
    assert (mwc(w, a), mwc(w, b)) == (4, 4)


def test_weighted_by_priority(world):
    w = world
    edit_jobs(w.policy, policy="weighted")
    hi = w.farm.add_job(w.queue, "hi", tasks=40, amount="amount.nuke", priority=80)
    lo = w.farm.add_job(w.queue, "lo", tasks=40, amount="amount.nuke", priority=20)
    cycle(w)
    assert (mwc(w, hi), mwc(w, lo)) == (8, 2)


def test_many_jobs_batch_updates_in_hundreds(world):
    w = world
    w.farm.limits[w.limit].max_count = 500
    w.src.total = 500
    jobs = [w.farm.add_job(w.queue, f"j{i}", tasks=3, amount="amount.nuke") for i in range(250)]
    w.svc.observer.step_budget = 250  # every job's steps read before planning
    r = cycle(w)
    assert r.ok, r.errors
    assert all(mwc(w, j) == 2 for j in jobs)  # 500 units / 250 jobs
    assert calls(w)["BatchUpdateJob"] == 3  # ⌈250/100⌉
    assert calls(w)["SearchJobs"] == 3


def test_original_is_recorded_before_the_write_and_restored_when_done(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    assert mwc(w, j) == 10
    rec = w.svc.history.job_originals()[j]
    assert (rec["original"], rec["last_written"], rec["pending"]) == (30, 10, None)
    # the job stops needing the pool: the policy switches to none
    edit_jobs(w.policy, policy="none")
    cycle(w)
    assert mwc(w, j) == 30
    assert w.svc.history.job_originals() == {}
    kinds = [r["kind"] for r in w.svc.history.query("job_changes")]
    assert kinds == ["cap", "restore"]


def test_manual_override_is_left_alone(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    cycle(w)
    assert mwc(w, j) == 10
    w.farm.jobs[j].max_worker_count = 25  # a wrangler raises it by hand
    w.src.artists = 5
    cycle(w)
    assert mwc(w, j) == 25
    assert w.svc.history.job_originals()[j]["manual"] == 1
    assert 'license_sync_pool_job_overrides{pool="nuke"} 1.0' in w.metrics.exposition().decode()
    assert [r["kind"] for r in w.svc.history.query("job_changes")] == ["cap", "manual"]
    cycle(w)
    assert mwc(w, j) == 25


def test_job_finishing_mid_cycle_is_not_an_error(world):
    w = world
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    orig = w.farm.op_BatchUpdateJob

    def finishing(p):  # job a is deleted between the search and the write
        w.farm.jobs.pop(a, None)
        return orig(p)

    w.farm.op_BatchUpdateJob = finishing
    r = cycle(w)
    assert r.ok, r.errors
    assert mwc(w, b) == 5
    assert a not in w.svc.history.job_originals()


def test_failed_history_write_touches_no_job(world, monkeypatch):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    from sync.values.errors import HistoryError

    def disk_full(*a, **k):
        raise HistoryError("database or disk is full")

    monkeypatch.setattr(w.svc.history, "save_job_originals", disk_full)
    r = cycle(w)
    assert mwc(w, j) == 30  # no original on disk: not touched
    assert any("job caps not written" in e for e in r.errors)


def test_crash_between_recording_and_write_then_restore(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    w.sim.faults.deny = frozenset({"BatchUpdateJob"})  # the write never lands
    r = cycle(w)
    assert mwc(w, j) == 30 and not r.ok
    rec = w.svc.history.job_originals()[j]
    assert (rec["original"], rec["pending"], rec["last_written"]) == (30, 10, None)
    # as if the process died after the write landed but before recording it
    w.farm.jobs[j].max_worker_count = 10
    w.sim.faults.deny = frozenset()
    restarted = w.make()  # a new process reads the originals back
    w.clock.advance(60)
    restarted.run_cycle()
    assert mwc(w, j) == 10  # our pending value is recognised as ours, not a manual one
    assert restarted.history.job_originals()[j]["manual"] == 0


def run_restore(w, *args):
    env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": w.sim.url}
    return run_cli("restore", "--config", str(w.policy), *args, env=env)


def test_restore_cli_is_idempotent_and_restores_limits(world):
    w = world
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    w.src.artists = 3
    cycle(w)
    # the odd unit goes to b, which can use more: a's own cap of 30 bounds what it wants
    assert (mwc(w, a), mwc(w, b), w.farm.limits[w.limit].max_count) == (3, 4, 7)
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert (mwc(w, a), mwc(w, b), w.farm.limits[w.limit].max_count) == (30, -1, 10)
    assert f"job {a}: maxWorkerCount restored to 30" in p.stdout
    assert "maxCount 7 → 10 (restored)" in p.stdout
    again = run_restore(w, "--limits")
    assert again.returncode == 0
    assert "0 job(s) checked" in again.stdout
    assert (mwc(w, a), mwc(w, b)) == (30, -1)


def test_explain_lists_the_jobs(world):
    w = world
    w.farm.add_job(w.queue, "big", tasks=40, amount="amount.nuke")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DEADLINE": w.sim.url,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LM_OUTPUT": str(w.db.parent / "lm.txt"),
    }
    from sync.fakes.license import FakeFeature, FakeLicenseServer

    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 10)])
    (w.db.parent / "lm.txt").write_text(lic.lmstat())
    p = run_cli("explain", "--config", str(w.policy), "nuke", env=env)
    assert p.returncode == 0, p.stderr
    assert "jobs sharing 10 units: 1 jobs, demand 40" in p.stdout
    assert "'big': demand 40 (40 tasks × 1), weight 1, cap 10, now -1" in p.stdout


def test_pool_leaving_the_policy_restores_its_jobs(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=12)
    cycle(w)
    assert mwc(w, j) == 10
    edit_pool(w.policy, limit="amount.other")
    w.farm.add_limit("amount.other", 5)
    cycle(w)
    assert mwc(w, j) == 12
    assert w.svc.history.job_originals() == {}


def test_no_region_is_a_clear_error(aws_env, monkeypatch):
    from sync.values.errors import DeadlineError

    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(DeadlineError, match="no AWS region: set the farm's `region:`"):
        make_client(None)


def test_archived_and_finished_jobs_are_not_capped(world):
    w = world
    live = w.farm.add_job(w.queue, "live", tasks=40, amount="amount.nuke")
    archived = w.farm.add_job(w.queue, "archived", tasks=40, amount="amount.nuke")
    w.farm.jobs[archived].lifecycle_status = "ARCHIVED"
    suspended = w.farm.add_job(w.queue, "suspended", tasks=40, amount="amount.nuke")
    for step in w.farm.jobs[suspended].steps:
        for t in step.tasks:
            t.status = "SUSPENDED"
    cycle(w)
    assert mwc(w, live) == 10
    assert mwc(w, archived) == -1 and mwc(w, suspended) == -1


def add_maya_pool(w, max_count: int, jobs: dict, ceiling: int | None = None) -> None:
    """A second limit on the world's queue, and a pool for it fed by the same feature."""
    w.farm.associate(w.queue, w.farm.add_limit("amount.maya", max_count))
    maya = pool("amount.maya", jobs=jobs, **({"ceiling": ceiling} if ceiling is not None else {}))
    edit_policy(w.policy, lambda doc: doc["pools"].update(maya=maya))


def test_writes_are_counted_once_per_pool(world):
    w = world
    add_maya_pool(w, 10, {"policy": "fair"})
    w.farm.add_job(w.queue, "n", tasks=40, amount="amount.nuke")
    w.farm.add_job(w.queue, "m", tasks=40, amount="amount.maya")
    cycle(w)
    text = w.metrics.exposition().decode()
    assert 'license_sync_changes_total{kind="max_worker_count"} 2.0' in text


def test_a_finished_job_gets_its_original_back_then_is_forgotten(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=12)
    cycle(w)
    assert j in w.svc.history.job_originals() and mwc(w, j) == 10
    w.farm.end_job(j)  # the search no longer returns it; BatchGetJob still does
    cycle(w)
    assert mwc(w, j) == 12
    assert w.svc.history.job_originals() == {}


def render_then_comp(w, comp=10, render=30, max_worker_count=-1):
    """A job whose comp step needs a nuke license and whose render step needs none."""
    j = w.farm.add_job(
        w.queue, "shot", tasks=comp, amount="amount.nuke", steps=2,
        max_worker_count=max_worker_count,
    )  # fmt: skip
    comp_step, render_step = w.farm.jobs[j].steps
    render_step.amounts = []
    render_step.tasks = [Task() for _ in range(render)]
    return j, comp_step, render_step


def test_a_job_keeps_workers_for_its_steps_that_need_no_license(world):
    w = world
    j, _, _ = render_then_comp(w, comp=4, render=30)
    cycle(w)  # comp has 4 active tasks: its share is 4; the 30 render tasks need none
    assert mwc(w, j) == 4 + 30


def test_a_job_whose_licensed_step_is_done_is_not_capped_and_gets_its_original_back(world):
    w = world
    j, comp, _ = render_then_comp(w, comp=20, render=5, max_worker_count=50)
    cycle(w)
    assert mwc(w, j) == 10 + 5  # the limit's 10 for comp, plus render's 5
    for t in comp.tasks:
        t.status = "SUCCEEDED"  # comp is done; render still runs
    cycle(w)
    assert mwc(w, j) == 50  # no share drawn: the original is back
    assert w.svc.history.job_originals() == {}


def test_a_job_whose_licensed_step_waits_on_a_dependency_draws_no_share(world):
    w = world
    j, comp, _ = render_then_comp(w, comp=20, render=5)
    for t in comp.tasks:
        t.status = "PENDING"  # comp waits for render to finish
    other = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    cycle(w)
    assert mwc(w, j) == -1  # not capped
    assert mwc(w, other) == 10  # the whole limit goes to the job that can use it


def test_restore_reaches_a_farm_the_policy_no_longer_names(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    w.src.artists = 3
    cycle(w)
    assert (mwc(w, j), w.farm.limits[w.limit].max_count) == (7, 7)
    w.svc.history.close()
    # the farm moves to another policy; this one now names another farm only
    jobs_policy(w.policy, "farm-" + "0" * 32, w.db)
    edit_policy(w.policy, lambda doc: doc["farms"][0].update(region="eu-west-1"))
    env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": w.sim.url}
    env.pop("AWS_DEFAULT_REGION", None)  # the region is the one the history kept
    p = run_cli("restore", "--config", str(w.policy), "--limits", env=env)
    assert p.returncode == 0, p.stderr
    assert (mwc(w, j), w.farm.limits[w.limit].max_count) == (30, 10)


def test_restore_limits_resumes_the_queues_we_paused(world):
    w = world
    edit_pool(w.policy, on_exhausted="pause", hysteresis={"settle": 1})
    other_q = w.farm.add_queue()
    w.farm.associate(other_q, w.limit, "STOPPED")  # stopped by a human: not ours to resume
    w.svc = w.make()
    w.src.artists = 10  # every license taken: the pool is exhausted
    cycle(w)
    assert w.farm.associations[(w.queue, w.limit)] == "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"
    w.svc.history.close()
    p = run_restore(w, "--limits")  # the service is stopped while the queue is paused
    assert p.returncode == 0, p.stderr
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"
    assert w.farm.associations[(other_q, w.limit)] == "STOPPED"
    assert f"queue {w.queue} resumed" in p.stdout
    again = run_restore(w, "--limits")
    assert again.returncode == 0 and "resumed" not in again.stdout


# -- what the strict fake showed: caps and stopped queues are never left behind ---------------


def pausing(w):
    """The world's pool stops its queues when exhausted (and settles at once)."""
    edit_pool(w.policy, on_exhausted="pause", hysteresis={"settle": 1})
    w.svc = w.make()


def pause_the_queue(w):
    """Every license taken by artists: the pausing pool stops its queue."""
    pausing(w)
    w.src.artists = 10
    cycle(w)


def test_a_paused_queue_is_resumed_from_stopped(world):
    w = world
    pause_the_queue(w)
    assert w.farm.associations[(w.queue, w.limit)] == "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"
    paused = {"pool": "nuke", "limit": "amount.nuke"}
    gauge = w.metrics.registry.get_sample_value
    assert gauge("license_sync_limit_queues_paused", paused) == 1  # what the alert watches
    w.farm.tick(w.clock.t)  # no task holds the limit: the service moves it to STOPPED
    assert w.farm.associations[(w.queue, w.limit)] == "STOPPED"
    w.src.artists = 0
    cycle(w)
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"
    assert gauge("license_sync_limit_queues_paused", paused) == 0


def test_a_paused_queue_is_remembered_until_it_reads_active(world):
    w = world
    pause_the_queue(w)
    w.src.artists = 0
    w.sim.faults.fail_next["UpdateQueueLimitAssociation"] = ["AccessDeniedException"]
    r = cycle(w)
    assert not r.ok and w.farm.associations[(w.queue, w.limit)] != "ACTIVE"
    cycle(w)  # the resume that failed is written again
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"


def test_restore_limits_resumes_a_queue_that_reached_stopped(world):
    w = world
    pause_the_queue(w)
    w.farm.tick(w.clock.t)
    assert w.farm.associations[(w.queue, w.limit)] == "STOPPED"
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"
    assert "(was STOPPED)" in p.stdout


def a_person_stops_the_queue_after_our_pause(w):
    """We pause the queue; later a wrangler stops it themselves (the queue is theirs)."""
    w.farm.now = w.clock.t
    pause_the_queue(w)
    w.farm.now = w.clock.t + timedelta(seconds=5)
    w.farm.person_sets_association(w.queue, w.limit, "STOP_LIMIT_USAGE_AND_CANCEL_TASKS")


def test_a_queue_a_person_stopped_after_our_pause_is_never_reopened(world):
    w = world
    a_person_stops_the_queue_after_our_pause(w)
    w.src.artists = 0  # licenses back: our own pause would be lifted now
    for _ in range(3):
        tick(w)
    assert w.farm.associations[(w.queue, w.limit)] == "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"
    gauge = w.metrics.registry.get_sample_value
    assert gauge("license_sync_limit_queues_paused", {"pool": "nuke", "limit": "amount.nuke"}) == 0
    w.svc.history.close()
    p = run_restore(w, "--limits")  # nor by restore: it is the person's to reopen
    assert p.returncode == 0, p.stderr
    assert w.farm.associations[(w.queue, w.limit)] == "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"


def test_a_queue_a_person_stopped_is_left_to_them_by_restore_and_a_restart(world):
    w = world
    a_person_stops_the_queue_after_our_pause(w)
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert f"queue {w.queue} was stopped by a person: left to them" in p.stdout
    assert w.farm.associations[(w.queue, w.limit)] == "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"


# the model does not say whether the service's own move to STOPPED stamps the association:
# with its own identity, or leaving the last caller's stamp; safe either way
SERVICE_STAMPS = [None, "deadline.amazonaws.com"]


def our_pause_reaches_stopped(w, stopped_by):
    """We pause the queue; the service, not a person, moves it to STOPPED."""
    w.farm.stopped_by = stopped_by
    w.farm.now = w.clock.t
    pause_the_queue(w)
    w.clock.advance(30)
    w.farm.tick(w.clock.t)
    assert w.farm.associations[(w.queue, w.limit)] == "STOPPED"


@pytest.mark.parametrize("stopped_by", SERVICE_STAMPS)
def test_our_own_pause_is_still_reopened_once_the_service_moved_it_to_stopped(world, stopped_by):
    w = world
    our_pause_reaches_stopped(w, stopped_by)
    w.svc.history.close()
    w.svc = w.make()  # the stamp of our pause outlives a restart
    w.src.artists = 0
    tick(w)
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"


@pytest.mark.parametrize("stopped_by", SERVICE_STAMPS)
def test_restore_reopens_our_pause_the_service_moved_to_stopped(world, stopped_by):
    w = world
    our_pause_reaches_stopped(w, stopped_by)
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"


def test_a_job_whose_queue_association_is_deleted_gets_its_original_back(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    assert mwc(w, j) == 10
    w.farm.associate(w.queue, w.limit, "STOPPED")
    del w.farm.associations[(w.queue, w.limit)]
    cycle(w)
    assert mwc(w, j) == 30
    assert w.svc.history.job_originals() == {}


def test_a_job_shifted_past_a_search_page_stays_capped_with_its_original(world):
    w = world
    w.src.total = 1000
    w.farm.limits[w.limit].max_count = 1000
    jobs = [w.farm.add_job(w.queue, f"j{n}", tasks=40, amount="amount.nuke") for n in range(150)]
    w.svc.observer.step_budget = 150  # every job's steps read before planning
    cycle(w)
    assert mwc(w, jobs[100]) != -1
    searches = []

    def finish_one_between_pages(op):
        if op == "SearchJobs":
            searches.append(op)
            if len(searches) == 2:  # between the first and the second page
                w.farm.end_job(jobs[0])

    w.sim.before_op = finish_one_between_pages
    w.src.artists = 100  # the caps change: every job is written again
    cycle(w)
    cap = mwc(w, jobs[101])
    assert mwc(w, jobs[100]) == cap  # missed by the search, confirmed, still capped
    assert w.svc.history.job_originals()[jobs[100]]["original"] == -1
    w.sim.before_op = None
    cycle(w)
    assert mwc(w, jobs[0]) == -1  # finished (its first page said running): original back


def test_a_failed_job_is_restored_and_capped_again_when_requeued(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    w.farm.end_job(j, "FAILED")
    cycle(w)
    assert mwc(w, j) == 30
    w.farm.set_target_status(w.farm.jobs[j], "READY")
    cycle(w)
    assert mwc(w, j) == 10
    assert w.svc.history.job_originals()[j]["original"] == 30


@pytest.mark.parametrize(
    "code",
    ["ConflictException", "ValidationException", "AccessDeniedException", "ThrottlingException"],
)
def test_an_error_on_a_job_is_never_taken_for_a_job_gone(world, code):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    w.farm.item_faults[j] = code
    w.src.artists = 5
    r = cycle(w)
    assert not r.ok and mwc(w, j) == 10
    assert w.svc.history.job_originals()[j]["original"] == 30
    del w.farm.item_faults[j]
    cycle(w)  # retried
    assert mwc(w, j) == 5
    assert w.svc.history.job_originals()[j]["original"] == 30


def test_a_job_needing_two_pools_has_one_cap_and_no_manual_flag(world):
    w = world
    add_maya_pool(w, 3, {"policy": "fair", "min_workers": 1, "respect_manual": True}, ceiling=3)
    w.svc = w.make()
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    w.farm.jobs[j].steps[0].amounts.append(("amount.maya", 1))
    for _ in range(3):
        r = cycle(w)
        assert r.ok, r.errors
        assert mwc(w, j) == 3  # the smaller of the two pools' caps, every cycle
    rec = w.svc.history.job_originals()[j]
    assert (rec["original"], rec["manual"]) == (-1, 0)
    assert [c["kind"] for c in w.svc.history.query("job_changes")] == ["cap"]


def test_a_partial_step_answer_is_not_cached(world):
    w = world
    for n in range(99):  # so the next job's steps straddle two BatchGetStep calls
        w.farm.add_job(w.queue, f"f{n}", tasks=1)
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", steps=2)
    w.farm.jobs[j].steps[1].amounts.clear()
    w.farm.item_faults[w.farm.jobs[j].steps[0].step_id] = "InternalServerErrorException"
    cycle(w)
    assert mwc(w, j) == -1  # its amount step was not read: not known yet
    w.farm.item_faults.clear()
    cycle(w)
    assert mwc(w, j) == 10 + 40  # the limit's 10, and workers for the step needing none


def test_a_limit_deleted_the_way_the_api_allows_leaves_nothing_behind(world):
    w = world
    pausing(w)
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    assert mwc(w, j) == 10
    ident = {"farmId": w.farm.farm_id, "queueId": w.queue, "limitId": w.limit}
    w.farm.call(
        "UpdateQueueLimitAssociation", {**ident, "status": "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"}
    )
    w.farm.tick(w.clock.t)
    w.farm.call("DeleteQueueLimitAssociation", ident)
    w.farm.call("DeleteLimit", {"farmId": w.farm.farm_id, "limitId": w.limit})
    cycle(w)
    assert mwc(w, j) == 30
    assert w.svc.history.job_originals() == {}
    assert all(status == "ACTIVE" for status in w.farm.associations.values())


@pytest.mark.parametrize(
    "code, times",
    [("AccessDeniedException", 1), ("ThrottlingException", 7), ("InternalServerErrorException", 7)],
)
def test_a_farm_that_cannot_be_read_keeps_its_jobs_capped(world, retry_sleeps, code, times):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    w.sim.faults.fail_next["ListLimits"] = [code] * times  # past botocore's retries
    r = cycle(w)
    assert not r.ok
    assert mwc(w, j) == 10 and j in w.svc.history.job_originals()


def test_search_past_the_offset_maximum_narrows_instead_of_failing(world, monkeypatch):
    import botocore.session

    model = botocore.session.get_session().get_service_model("deadline")
    offset = model.operation_model("SearchJobs").input_shape.members["itemOffset"]
    assert Deadline.max_item_offset == offset.metadata["max"]
    monkeypatch.setattr(Deadline, "max_item_offset", 200)  # the fake's own limit, scaled down
    w = world
    w.farm.search_total_max = 200  # and totalResults stops there, as at 10,000
    w.src.total = 1000
    w.farm.limits[w.limit].max_count = 1000
    jobs = [w.farm.add_job(w.queue, f"j{n}", tasks=2, amount="amount.nuke") for n in range(450)]
    offsets = []
    w.sim.before_op = lambda op: None
    real = w.farm.op_SearchJobs
    w.farm.op_SearchJobs = lambda p: offsets.append(p["itemOffset"]) or real(p)
    w.svc.observer.step_budget = 450  # every job's steps read before planning
    r = cycle(w)
    assert r.ok, r.errors
    assert max(offsets) <= 200
    assert all(mwc(w, j) == 2 for j in jobs)


def test_a_pool_removed_from_the_policy_reopens_the_queues_it_paused(world):
    w = world
    pause_the_queue(w)
    assert w.farm.associations[(w.queue, w.limit)] != "ACTIVE"
    edit_pool(w.policy, limit="amount.maya")
    w.farm.add_queue_with_limit("amount.maya", 3)
    cycle(w)  # the reload drops the nuke pool
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"


def test_restore_finds_the_queues_of_a_removed_pool_in_the_history(world):
    w = world
    pause_the_queue(w)
    edit_pool(w.policy, limit="amount.maya")
    w.farm.add_queue_with_limit("amount.maya", 3)
    w.src.artists = 0
    w.sim.faults.fail_next["UpdateQueueLimitAssociation"] = ["AccessDeniedException"]
    r = cycle(w)  # the reopening fails: remembered
    assert any("not reopened yet" in e for e in r.errors)
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"


def test_a_write_whose_answer_was_lost_is_still_ours(world):
    w = world
    w.client_options = {"attempts": 1}  # the lost answer is not retried away
    w.svc = w.make()
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    cycle(w)
    assert mwc(w, j) == 10
    w.sim.faults.drop_answer["BatchUpdateJob"] = 1
    w.src.artists = 6
    r = cycle(w)
    assert not r.ok and mwc(w, j) == 4  # it landed; the answer did not
    w.farm.item_faults[j] = "ConflictException"
    w.src.artists = 7
    cycle(w)  # the next write (3) fails
    assert mwc(w, j) == 4
    w.farm.item_faults.clear()
    cycle(w)
    assert mwc(w, j) == 3  # 4 was recognised as ours, not a person's edit
    assert w.svc.history.job_originals()[j]["manual"] == 0
    w.svc.history.close()
    assert run_restore(w).returncode == 0
    assert mwc(w, j) == -1


def test_a_deleted_history_stops_job_caps_and_says_so(world):
    w = world
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    cycle(w)
    assert mwc(w, a) == 10 and w.svc.ready()[0]
    w.db.unlink()  # someone cleans up the volume while the service runs
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    r = cycle(w)
    assert mwc(w, a) == 10 and mwc(w, b) == -1  # no cap whose original would be lost
    assert "history removed or replaced: job caps not written" in r.errors
    assert w.svc.ready() == (False, "the history file was removed or replaced: restart the service")
    assert "license_sync_history_lost 1.0" in w.metrics.exposition().decode()


def test_a_deleted_wal_is_made_anew_and_the_originals_survive_it(world):
    """A cleanup script or a restored volume takes the -wal away: what the WAL held (our
    connection still has it open) is checkpointed into the main file, SQLite makes a new
    one, and job caps go on with their originals on disk."""
    w = world
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=25)
    cycle(w)
    assert mwc(w, a) == 10
    Path(f"{w.db}-wal").unlink()
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke", max_worker_count=30)
    r = cycle(w)
    assert r.ok, r.errors
    assert mwc(w, b) not in (-1, 30) and Path(f"{w.db}-wal").exists()
    assert w.svc.ready()[0] is True
    assert "license_sync_history_lost 0.0" in w.metrics.exposition().decode()
    w.svc.history.close()
    p = run_restore(w)  # both originals are in the file a new process reads
    assert p.returncode == 0, p.stderr
    assert (mwc(w, a), mwc(w, b)) == (25, 30)


def corrupt_table(db: Path, table: str) -> None:
    """Garbage over the table's root page, as a torn write or a bad sector leaves it."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", [table]
        ).fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * size)
        fh.write(b"\xde\xad" * (size // 2))


def test_memory_that_cannot_be_read_writes_no_cap_and_says_so(world):
    w = world
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=25)
    cycle(w)
    assert mwc(w, a) == 10
    w.svc.history.close()
    corrupt_table(w.db, "state")
    w.svc = w.make()  # the restart finds its memory unreadable
    w.src.artists = 5
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke")
    r = cycle(w)
    assert w.farm.limits[w.limit].max_count == 5  # limits go on syncing
    assert (mwc(w, a), mwc(w, b)) == (10, -1)  # no job write: our 10 is no "original"
    assert "history removed or replaced: job caps not written" in r.errors
    ok, why = w.svc.ready()
    assert not ok and "cannot be read" in why
    assert "license_sync_history_lost 1.0" in w.metrics.exposition().decode()


def test_a_new_history_does_not_take_caps_that_may_be_ours_for_originals(world):
    w = world
    jobs = [w.farm.add_job(w.queue, f"j{n}", tasks=40, amount="amount.nuke") for n in range(3)]
    cycle(w)
    assert {mwc(w, j) for j in jobs} == {3, 4}  # 10 shared three ways
    w.svc.history.close()
    w.db.unlink()  # the history is lost; the service starts again with a new one
    w.svc = w.make()
    fresh = w.farm.add_job(w.queue, "new", tasks=40, amount="amount.nuke")
    cycle(w)
    assert {mwc(w, j) for j in jobs} == {3, 4}  # left alone: these may be our caps
    assert set(w.svc.history.job_originals()) == {fresh}
    assert "license_sync_jobs_unadopted 3.0" in w.metrics.exposition().decode()
    w.svc.history.close()
    w.svc = w.make()  # a restart does not forget which jobs wait for --adopt
    cycle(w)
    assert set(w.svc.history.job_originals()) == {fresh}


def test_a_new_history_knows_a_cap_above_the_limit_by_its_slack_may_be_ours(world):
    w = world
    jobs_policy(w.policy, w.farm.farm_id, w.db, slack=2)
    w.svc = w.make()
    alone = w.farm.add_job(w.queue, "alone", tasks=40, amount="amount.nuke")
    cycle(w)
    assert mwc(w, alone) == 11  # its share, the whole limit of 10, and half the slack
    w.svc.history.close()
    w.db.unlink()  # the history is lost
    w.svc = w.make()
    w.src.artists = 4  # the limit drops to 6: a cap of ours would move to 7
    cycle(w)
    # 11 may be our cap, not the job's own: it is not taken for the original
    assert mwc(w, alone) == 11 and alone not in w.svc.history.job_originals()
    assert "license_sync_jobs_unadopted 1.0" in w.metrics.exposition().decode()


def test_adopt_takes_the_caps_jobs_carry_as_their_originals(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=7)
    w.svc = Service(
        w.svc.loaded,
        deadline_factory=w.svc.deadline_factory,
        metrics=w.metrics,
        history=History(str(w.db)),
        clock=w.clock,
        source_factory=lambda name, cfg: w.src,
        adopt=True,
    )
    w.src.artists = 5
    cycle(w)
    assert mwc(w, j) == 5
    assert w.svc.history.job_originals()[j]["original"] == 7


class Killed(BaseException):
    """kill -9: no handler of the service catches it."""


def test_a_pause_that_landed_just_before_a_kill_is_reopened_by_restore(world):
    w = world
    pausing(w)
    w.src.artists = 10
    client = w.svc.deadline(w.farm.farm_id).client

    def die(**_):
        raise Killed

    client.meta.events.register("after-call.deadline.UpdateQueueLimitAssociation", die)
    with pytest.raises(Killed):  # the queue is stopped; the process dies before the cycle ends
        cycle(w)
    assert w.farm.associations[(w.queue, w.limit)] == "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"


def test_a_job_write_refused_is_logged_not_only_recorded(world, caplog):
    w = world
    w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke")
    w.sim.faults.deny = frozenset({"BatchUpdateJob"})
    with caplog.at_level("ERROR", logger="license_sync"):
        r = cycle(w)
    assert not r.ok
    assert any(
        "BatchUpdateJob failed" in rec.getMessage() and "AccessDenied" in rec.getMessage()
        for rec in caplog.records
    )


def test_a_cold_start_on_many_jobs_reads_their_steps_over_several_cycles(world):
    w = world
    w.svc.observer.step_budget = 2  # new jobs whose steps one cycle reads before planning
    w.svc.observer.catch_up = 0  # and after its writes
    jobs = [w.farm.add_job(w.queue, f"j{i}", tasks=20, amount="amount.nuke") for i in range(5)]
    w.src.artists = 3
    unread = w.metrics.registry.get_sample_value
    r = cycle(w)
    assert r.ok and w.farm.limits[w.limit].max_count == 7  # the limit at once
    assert [mwc(w, j) != -1 for j in jobs] == [True, True, False, False, False]  # oldest first
    assert unread("license_sync_jobs_unread") == 3
    cycle(w)
    assert unread("license_sync_jobs_unread") == 1
    cycle(w)
    assert all(mwc(w, j) != -1 for j in jobs) and unread("license_sync_jobs_unread") == 0


def test_a_cold_start_writes_its_limits_first_and_catches_up_at_once(world):
    """The steps a cold start lacks are read after the limits are written, and `run`
    starts the next cycle at once while there are more (docs/design.md, "Reading jobs")."""
    w = world
    w.svc.observer.step_budget = 1  # before planning
    w.svc.observer.catch_up = 2  # after the writes
    jobs = [w.farm.add_job(w.queue, f"j{i}", tasks=20, amount="amount.nuke") for i in range(5)]
    w.src.artists = 3
    order = []
    w.sim.before_op = order.append
    r = cycle(w)
    assert r.ok and w.farm.limits[w.limit].max_count == 7
    assert order.index("UpdateLimit") < order.index("BatchGetStep", order.index("UpdateLimit"))
    assert [mwc(w, j) != -1 for j in jobs] == [True, False, False, False, False]
    assert w.svc.catching_up  # two more read for the next cycle
    cycle(w)
    assert [mwc(w, j) != -1 for j in jobs] == [True, True, True, True, False]
    assert w.svc.catching_up  # the last one read too: one more cycle caps it
    cycle(w)
    assert all(mwc(w, j) != -1 for j in jobs)
    assert not w.svc.catching_up  # nothing left to read: back to the interval


def test_a_stopping_service_reads_no_more_steps_after_its_writes(world):
    w = world
    w.svc.observer.step_budget, w.svc.observer.catch_up = 1, 2
    for i in range(5):
        w.farm.add_job(w.queue, f"j{i}", tasks=20, amount="amount.nuke")
    w.svc.stopping = True  # SIGTERM came: the next cycle is another process's
    before = calls(w).get("ListSteps", 0)
    cycle(w)
    assert calls(w).get("ListSteps", 0) - before == 1  # the one read before planning
    assert not w.svc.catching_up


def test_run_catches_up_without_waiting_for_the_interval(world):
    from sync.cycle.serve import serve

    w = world
    assert w.svc.policy.interval == 60
    w.svc.observer.step_budget, w.svc.observer.catch_up = 1, 2
    jobs = [w.farm.add_job(w.queue, f"j{i}", tasks=20, amount="amount.nuke") for i in range(5)]
    t0 = time.monotonic()
    serve(w.svc, "127.0.0.1:0", max_cycles=3)
    assert time.monotonic() - t0 < 30  # three cycles back to back, not three minutes
    assert all(mwc(w, j) != -1 for j in jobs)


def test_after_a_restart_a_capped_job_whose_steps_wait_is_held_not_restored(world):
    w = world
    jobs = [w.farm.add_job(w.queue, f"j{i}", tasks=20, amount="amount.nuke") for i in range(4)]
    w.src.artists = 2
    cycle(w)
    caps = [mwc(w, j) for j in jobs]
    assert all(c != -1 for c in caps)
    w.svc.history.close()
    w.svc = w.make()  # a restart: no step is known any more
    w.svc.observer.step_budget = 1
    writes = len(w.farm.writes)
    cycle(w)
    # the three jobs whose steps are not read again keep our caps: nothing restored
    # (the one read shares the pool alone until the others are read: the limit still
    # holds the licenses; only the split between jobs waits a cycle or two)
    assert [mwc(w, j) for j in jobs[1:]] == caps[1:]
    written = [job for op, p in w.farm.writes[writes:] if op == "BatchUpdateJob"
               for job in p["jobs"]]  # fmt: skip
    assert [j["jobId"] for j in written] == [jobs[0]]
    assert w.metrics.registry.get_sample_value("license_sync_jobs_unread") == 3


def test_a_new_history_keeps_its_first_look_until_every_job_is_read(world):
    w = world
    jobs = [w.farm.add_job(w.queue, f"j{n}", tasks=40, amount="amount.nuke") for n in range(3)]
    cycle(w)
    w.svc.history.close()
    w.db.unlink()  # the history is lost, and the new service reads one job's steps a cycle
    w.svc = w.make()
    w.svc.observer.step_budget = 1
    for _ in range(4):
        cycle(w)
    # none of the three caps that may be ours became an "original"
    assert w.svc.history.job_originals() == {}
    assert w.svc.memory.unadopted == set(jobs)


# -- reads that lag, fail per item or are cut short (docs/design.md, "Trust no single read")


def tick(w, seconds=60):
    """The farm's clock and the service's, on together (no task runs: the farm's use
    stays 0, as the source reports it)."""
    w.clock.advance(seconds)
    w.farm.now = w.clock.t
    return w.svc.run_cycle()


def test_a_search_that_lags_our_write_is_never_taken_for_a_persons_edit(world):
    w = world
    w.farm.search_lag = timedelta(seconds=90)  # longer than a cycle, as Deadline's
    w.farm.now = w.clock.t
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    tick(w, 100)  # the search finds the job once it is older than the lag
    assert mwc(w, j) == 10
    w.src.artists = 5
    tick(w)  # the limit comes down to 5, and so does the cap
    assert mwc(w, j) == 5
    r = tick(w)  # the search still shows 10: only BatchGetJob shows our 5
    assert r.ok, r.errors
    rec = w.svc.history.job_originals()[j]
    assert (rec["original"], rec["manual"]) == (30, 0)
    w.src.artists = 2
    tick(w)
    tick(w)
    assert mwc(w, j) == 8  # still ours to move


def test_our_own_cap_is_never_recorded_as_an_original(world):
    w = world
    w.farm.search_lag = timedelta(seconds=90)
    w.farm.now = w.clock.t
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    tick(w, 100)
    assert mwc(w, j) == 10
    edit_jobs(w.policy, policy="none")
    tick(w)  # no longer shared: the original goes back, the record with it
    assert mwc(w, j) == 30 and j not in w.svc.history.job_originals()
    edit_jobs(w.policy, policy="fair")
    w.src.artists = 5
    tick(w)  # shared again, at 5, while the search still shows our old cap of 10
    assert w.svc.history.job_originals()[j]["original"] == 30
    assert mwc(w, j) == 5


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServerErrorException"])
def test_a_job_batch_get_job_cannot_read_is_held_never_gone(world, code):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    w.farm.end_job(j)  # finished: the search no longer returns it, BatchGetJob is asked
    w.farm.item_faults[j] = code  # inside an HTTP 200: botocore retries nothing
    r = cycle(w)
    assert not r.ok and w.svc.history.job_originals()[j]["original"] == 30
    del w.farm.item_faults[j]
    cycle(w)
    assert mwc(w, j) == 30 and j not in w.svc.history.job_originals()


def test_a_job_the_answer_does_not_mention_is_held(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    w.farm.end_job(j)
    real = w.farm.op_BatchGetJob
    w.farm.op_BatchGetJob = lambda p: {**real(p), "jobs": []}  # neither found nor an error
    r = cycle(w)
    assert not r.ok and j in w.svc.history.job_originals()


@pytest.mark.parametrize(
    "operation", ["BatchGetJob", "SearchJobs", "ListQueueLimitAssociations", "BatchUpdateJob"]
)
def test_an_answer_cut_short_is_an_error_never_an_empty_list(world, operation):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    cycle(w)
    if operation == "BatchGetJob":
        w.farm.end_job(j)
    else:
        w.src.artists = 4  # a cap to write
    w.sim.faults.cut_short[operation] = 1
    r = cycle(w)
    assert not r.ok and any("lacks" in e for e in r.errors), r.errors
    assert w.svc.history.job_originals()[j]["original"] == 30  # no job taken for gone
    cycle(w)
    assert mwc(w, j) == (30 if operation == "BatchGetJob" else 6)


def test_a_batch_update_chunk_that_fails_keeps_what_the_other_chunks_landed(world):
    w = world
    w.src.total = w.farm.limits[w.limit].max_count = 1000
    jobs = [w.farm.add_job(w.queue, f"j{n}", tasks=2, amount="amount.nuke") for n in range(150)]
    calls = []

    def second_fails(op):
        if op == "BatchUpdateJob":
            calls.append(op)
            if len(calls) == 2:
                raise FakeError("InternalServerErrorException", "the second chunk", 500)

    w.sim.before_op = second_fails
    w.client_options = {"attempts": 1}
    w.svc = w.make()
    w.svc.observer.step_budget = 150  # every job's steps read before planning
    r = cycle(w)
    assert any("BatchUpdateJob failed" in e for e in r.errors)
    recs = w.svc.history.job_originals()
    landed = [j for j in jobs if recs[j]["last_written"] == 2 and recs[j]["pending"] is None]
    waiting = [j for j in jobs if recs[j]["pending"] == 2 and recs[j]["last_written"] is None]
    assert len(landed) == 100 and len(waiting) == 50  # item by item, not the whole batch


def test_amount_names_match_whatever_their_case(world):
    w = world
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.NUKE")  # OpenJD: one amount
    r = cycle(w)
    assert r.ok and mwc(w, j) == 10
    edit_pool(w.policy, limit="Amount.Nuke")
    assert cycle(w).ok


def test_an_unlimited_cap_of_one_pool_never_hides_the_real_cap_of_another(world):
    w = world
    add_maya_pool(w, -1, {"policy": "fair", "min_workers": 1})  # an unlimited limit: caps of -1
    w.svc = w.make()
    j = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.maya")
    w.farm.jobs[j].steps[0].amounts.append(("amount.nuke", 1))
    w.src.artists = 6
    cycle(w)
    assert mwc(w, j) == 4  # the nuke pool's cap: the smallest real one


def test_a_chunked_step_is_shared_in_runs_not_frames(world):
    """A run of a chunked step holds one license for its whole chunk: 30 frames in chunks
    of 10 can hold 3 licenses, so the other job gets the other 7 and none idles."""
    w = world
    chunked = w.farm.add_job(w.queue, "chunked", tasks=30, amount="amount.nuke", chunk=10)
    single = w.farm.add_job(w.queue, "single", tasks=40, amount="amount.nuke")
    r = cycle(w)
    assert r.ok, r.errors
    assert (mwc(w, chunked), mwc(w, single)) == (3, 7)
    w.farm.tick(w.clock())
    assert w.farm.in_use(w.limit) == 10  # every license the limit allows is held
    text = w.metrics.exposition().decode()
    assert 'license_sync_pool_demand{pool="nuke"} 43.0' in text  # 3 chunks + 40 tasks


def test_a_jobs_own_max_worker_count_is_a_ceiling(world):
    """A person who capped a job meant it: with licenses plentiful, a job submitted with
    20 is never written above 20, and what it cannot use goes to the others."""
    w = world
    w.src.total = 70
    cycle(w)  # the service runs before the jobs come: their caps are the people's
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=20)
    b = w.farm.add_job(w.queue, "b", tasks=40, amount="amount.nuke", max_worker_count=21)
    c = w.farm.add_job(w.queue, "c", tasks=40, amount="amount.nuke")
    for _ in range(3):
        r = cycle(w)
        assert r.ok, r.errors
        assert mwc(w, a) <= 20 and mwc(w, b) <= 21
    assert (mwc(w, a), mwc(w, b), mwc(w, c)) == (20, 21, 29)
    updates = [j for op, p in w.farm.writes if op == "BatchUpdateJob" for j in p["jobs"]]
    written = [j["maxWorkerCount"] for j in updates if j["jobId"] in (a, b)]
    assert written == []  # at its own value already: nothing to write
    w.src.artists = 60  # the limit drops to 10: the caps come down, then go back to theirs
    cycle(w)
    assert (mwc(w, a), mwc(w, b)) == (3, 3)
    w.src.artists = 0
    for _ in range(3):
        cycle(w)
    assert (mwc(w, a), mwc(w, b)) == (20, 21)


def test_a_job_read_while_it_is_being_created_is_shared_once_its_steps_exist(world):
    """CreateJob is asynchronous: a job read in CREATE_IN_PROGRESS has no steps yet, and
    must not be taken for a job that needs no license for the rest of its life."""
    w = world
    early = w.farm.add_job(w.queue, "early", tasks=40, amount="amount.nuke")
    w.farm.create_delay = timedelta(seconds=90)
    late = w.farm.add_job(w.queue, "late", tasks=40, amount="amount.nuke")
    assert w.farm.jobs[late].lifecycle_status == "CREATE_IN_PROGRESS"
    r = cycle(w)
    assert r.ok, r.errors
    assert (mwc(w, early), mwc(w, late)) == (10, -1)  # the only job known to need the limit
    cycle(w)  # 60 s on: still being created
    assert mwc(w, late) == -1
    w.farm.tick(w.farm.now + timedelta(seconds=91))
    assert w.farm.jobs[late].lifecycle_status == "CREATE_COMPLETE"
    cycle(w)
    assert (mwc(w, early), mwc(w, late)) == (5, 5)


def test_without_a_farm_selector_a_farm_burst_never_cuts_the_limit(world):
    """A pool without a farm_selector reads what the farm holds from what its running
    tasks acquired, not from currentCount, which lags: 15 tasks starting at once are the
    farm's at once, not 15 artists."""
    w = world
    edit_policy(w.policy, lambda doc: doc["pools"]["nuke"].pop("farm_selector"))
    w.svc = w.make()
    w.farm.count_delay = timedelta(seconds=150)  # currentCount a few cycles behind
    w.src.total, w.src.artists = 20, 1
    w.farm.limits[w.limit].max_count = 19
    w.farm.tick(w.farm.now)  # nothing runs: currentCount 0 from here
    cycle(w)
    assert w.farm.limits[w.limit].max_count == 19
    w.farm.add_job(w.queue, "burst", tasks=15, amount="amount.nuke")
    w.farm.tick(w.farm.now)
    assert w.farm.in_use(w.limit) == 15 and w.farm.reported_count(w.farm.limits[w.limit]) == 0
    w.src.farm = 15  # the license server shows the farm's checkouts at once
    seen = []
    for _ in range(4):
        r = cycle(w)
        assert r.ok, r.errors
        seen.append(w.farm.limits[w.limit].max_count)
    assert seen == [19, 19, 19, 19]
    assert r.plan.pools["nuke"].figures.farm_use_from == "acquiredLimits"


def test_a_step_a_person_runs_again_is_shared_again(world):
    """UpdateStep requeues a finished step: the step reads UPDATE_IN_PROGRESS, then
    UPDATE_SUCCEEDED, and its frames are demand again, shared with the others."""
    w = world
    redo = w.farm.add_job(w.queue, "redo", tasks=10, amount="amount.nuke")
    w.farm.end_job(redo)
    other = w.farm.add_job(w.queue, "other", tasks=40, amount="amount.nuke")
    cycle(w)
    assert mwc(w, other) == 10
    step = w.farm.jobs[redo].steps[0]
    ident = {"farmId": w.farm.farm_id, "queueId": w.queue, "jobId": redo, "stepId": step.step_id}
    w.farm.call("UpdateStep", {**ident, "targetTaskRunStatus": "READY"}, caller=PERSON)
    assert w.farm.call("GetStep", ident)["lifecycleStatus"] == "UPDATE_IN_PROGRESS"
    r = cycle(w)
    assert r.ok, r.errors
    assert (mwc(w, redo), mwc(w, other)) == (5, 5)
    w.farm.tick(w.farm.now + timedelta(seconds=1))
    got = w.farm.call("GetStep", ident)
    assert (got["lifecycleStatus"], got["updatedBy"]) == ("UPDATE_SUCCEEDED", PERSON)


def test_every_kind_of_write_is_made_and_restore_puts_back_what_it_overwrote(world):
    """Every write license-sync can make (`WRITES`) is made here, through the fake farm:
    a limit's maxCount and job caps, then on exhaustion a queue paused and the youngest
    task requeued; `restore --limits` puts back each value they overwrote (the limit,
    the job's cap, the queue), and a second run makes the resume. Each write says what
    it overwrites (`original()`); those that keep nothing say why. A kind added to
    `WRITES` without a place here fails this test."""
    w = world
    edit_pool(w.policy, on_exhausted="pause", preempt={"enabled": True, "max_per_cycle": 1})
    a = w.farm.add_job(w.queue, "a", tasks=40, amount="amount.nuke", max_worker_count=30)
    w.src.artists = 3
    cycle(w)
    assert (mwc(w, a), w.farm.limits[w.limit].max_count) == (7, 7)
    w.farm.tick(w.clock.t)  # its tasks start: 7 licenses the farm holds
    w.src.farm, w.src.artists, w.src.queued = 6, 4, 1  # an artist more, another waiting
    w.svc.run_cycle()  # one requeued: its license back for the artist
    w.src.farm, w.src.artists, w.src.queued = 0, 10, 1  # the artists take every license
    r = cycle(w)
    assert r.plan.decisions[0].exhausted and w.farm.associations[(w.queue, w.limit)] != "ACTIVE"
    w.svc.history.close()
    p = run_restore(w, "--limits")
    assert p.returncode == 0, p.stderr
    assert (mwc(w, a), w.farm.limits[w.limit].max_count) == (30, 10)
    assert w.farm.associations[(w.queue, w.limit)] == "ACTIVE"
    # a second run pauses again, and resumes once the artists are gone
    w.svc = w.make()
    cycle(w)
    w.src.farm, w.src.artists, w.src.queued = 0, 0, 0
    cycle(w)
    made = {
        s.labels["kind"]: s.value
        for m in w.metrics.changes.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert all(made[k.kind] >= 1 for k in WRITES), made


def test_a_write_that_does_not_say_what_it_overwrites_cannot_be_made():
    class Priority(Write):  # a new write that forgot original()
        kind = "priority"

        def send(self, dl):
            return None

        def words(self):
            return "priority"

    with pytest.raises(TypeError, match="original"):
        Priority()  # type: ignore[abstract]
    kept = {k.kind: k.original for k in WRITES}
    assert set(kept) == {"max_count", "pause", "resume", "preempt", "max_worker_count"}
    assert "original" in Write.__abstractmethods__


def edit_jobs(path, **sharing):
    edit_policy(path, lambda doc: doc["pools"]["nuke"]["jobs"].update(sharing))
