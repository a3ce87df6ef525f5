"""The fake's fleets, workers and sessions, as AWS's clients read them through boto3 over
HTTP: queue–fleet associations, workers with host names, sessions that keep their worker
for several runs, amounts a fleet declares (past every limit), and runs assigned before
they begin."""

from __future__ import annotations

from datetime import timedelta

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.fleets import SERVICE_MANAGED
from sync.fakes.license import FakeFeature, FakeLicenseServer
from tests.fakes.conftest import T0, client_of


def job_ident(farm, q, job):
    return {"farmId": farm.farm_id, "queueId": q, "jobId": job}


def test_every_queue_runs_on_the_default_fleet_whose_workers_have_host_names(fake):
    farm, client, _ = fake
    q, _ = farm.add_queue_with_limit("amount.nuke", 10)
    job = farm.add_job(q, "j", tasks=2, amount="amount.nuke", duration=600)
    farm.tick(T0)
    [fleet] = client.list_fleets(farmId=farm.farm_id)["fleets"]
    assert SERVICE_MANAGED in fleet["configuration"] and fleet["workerCount"] == 2
    [link] = client.list_queue_fleet_associations(farmId=farm.farm_id, queueId=q)[
        "queueFleetAssociations"
    ]
    assert (link["fleetId"], link["status"]) == (fleet["fleetId"], "ACTIVE")
    workers = client.list_workers(farmId=farm.farm_id, fleetId=fleet["fleetId"])["workers"]
    assert {w["status"] for w in workers} == {"RUNNING"}
    hosts = {w["hostProperties"]["hostName"] for w in workers}
    assert len(hosts) == 2
    w = workers[0]
    [s] = client.list_sessions_for_worker(
        farmId=farm.farm_id, fleetId=fleet["fleetId"], workerId=w["workerId"]
    )["sessions"]
    assert (s["jobId"], s["queueId"], s["lifecycleStatus"]) == (job, q, "STARTED")
    got = client.get_worker(farmId=farm.farm_id, fleetId=fleet["fleetId"], workerId=w["workerId"])
    assert got["hostProperties"]["ipAddresses"]["ipV4Addresses"]


def test_a_worker_keeps_its_session_for_the_runs_of_one_job_and_the_actions_page(aws_env):
    farm = FakeFarm(count_delay=0, now=T0, workers=1)
    q, _ = farm.add_queue_with_limit("amount.nuke", 10)
    job = farm.add_job(q, "j", tasks=3, amount="amount.nuke", duration=10)
    for s in range(0, 40, 10):
        farm.tick(T0 + timedelta(seconds=s))
    with FakeDeadline(farm) as server:
        client = client_of(server)
        ident = job_ident(farm, q, job)
        [session] = client.list_sessions(**ident)["sessions"]
        assert session["lifecycleStatus"] == "ENDED"  # the job has no work left for it
        first = client.list_session_actions(**ident, sessionId=session["sessionId"], maxResults=2)
        rest = client.list_session_actions(
            **ident, sessionId=session["sessionId"], nextToken=first["nextToken"]
        )
    actions = first["sessionActions"] + rest["sessionActions"]
    assert [a["status"] for a in actions] == ["SUCCEEDED"] * 3
    assert [a["sessionActionId"].rsplit("-", 1)[1] for a in actions] == ["0", "1", "2"]


def test_a_fleet_that_declares_the_amount_runs_past_the_limit_and_the_server_sees_it(fake):
    farm, client, _ = fake
    q, lid = farm.add_queue_with_limit("amount.nuke", 1)
    farm.link_fleet(q, farm.default_fleet, "STOPPED")
    own = farm.add_fleet("nukefarm", 4, amounts=(("amount.nuke", 1, 1),))
    farm.link_fleet(q, own)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20, "amount.nuke")])
    job = farm.add_job(q, "j", tasks=4, amount="amount.nuke", duration=600)
    farm.tick(T0)
    assert farm.in_use(lid) == 0  # the limit never counted them
    ident = job_ident(farm, q, job)
    actions = client.list_session_actions(**ident)["sessionActions"]
    assert [a["status"] for a in actions] == ["RUNNING"] * 4
    [one] = client.batch_get_session_action(
        identifiers=[{**ident, "sessionActionId": actions[0]["sessionActionId"]}]
    )["sessionActions"]
    assert "acquiredLimits" not in one  # "not returned" when none was acquired
    assert "Total of 4 licenses in use" in lic.lmstat()
    assert "nukefarm-001" in lic.lmstat()
    fleet = client.get_fleet(farmId=farm.farm_id, fleetId=own)
    assert fleet["capabilities"]["amounts"] == [{"name": "amount.nuke", "min": 1.0, "max": 1.0}]


def test_a_step_no_fleet_can_meet_is_not_compatible(fake):
    farm, _, _ = fake
    q = farm.add_queue()
    ungoverned = farm.add_job(q, "j", tasks=1, amount="amount.houdini")
    farm.add_limit("amount.maya", 5)  # a limit the queue is not associated with
    unassociated = farm.add_job(q, "k", tasks=1, amount="amount.maya")
    plain = farm.add_job(q, "l", tasks=1)
    farm.tick(T0)
    statuses = {j: farm.jobs[j].steps[0].tasks[0].status for j in (ungoverned, unassociated, plain)}
    assert statuses == {
        ungoverned: "NOT_COMPATIBLE",
        unassociated: "NOT_COMPATIBLE",
        plain: "RUNNING",
    }


def test_a_queue_whose_fleet_association_is_stopped_runs_nothing(fake):
    farm, _, _ = fake
    q, _ = farm.add_queue_with_limit("amount.nuke", 10)
    farm.link_fleet(q, farm.default_fleet, "STOP_SCHEDULING_AND_COMPLETE_TASKS")
    job = farm.add_job(q, "j", tasks=2, amount="amount.nuke")
    farm.tick(T0)
    assert {t.status for t in farm.jobs[job].tasks()} == {"READY"}


def test_an_assigned_run_holds_the_limit_before_its_process_checks_a_license_out(aws_env):
    farm = FakeFarm(count_delay=0, now=T0, assign_delay=2)
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20, "amount.nuke")])
    job = farm.add_job(q, "j", tasks=3, amount="amount.nuke", duration=600)
    farm.tick(T0)
    assert farm.in_use(lid) == 3 and "Total of 0 licenses in use" in lic.lmstat()
    with FakeDeadline(farm) as server:
        actions = client_of(server).list_session_actions(**job_ident(farm, q, job))
    assert {a["status"] for a in actions["sessionActions"]} == {"ASSIGNED"}
    assert all("startedAt" not in a for a in actions["sessionActions"])
    assert {t.status for t in farm.jobs[job].tasks()} == {"ASSIGNED"}
    farm.tick(T0 + timedelta(seconds=2))
    assert "Total of 3 licenses in use" in lic.lmstat()
    assert {t.status for t in farm.jobs[job].tasks()} == {"RUNNING"}


def test_a_lost_worker_is_reclaimed_and_its_task_runs_again(aws_env):
    farm = FakeFarm(count_delay=0, now=T0, release_delay=5)
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    job = farm.add_job(q, "j", tasks=1, amount="amount.nuke", duration=600)
    farm.tick(T0)
    [worker] = [w for f in farm.fleets.values() for w in f.workers]
    farm.lose_worker(worker.worker_id)
    [run] = farm.jobs[job].sessions[0].runs
    assert run.action_status == "RECLAIMING" and farm.in_use(lid) == 1
    assert farm.jobs[job].tasks()[0].status == "INTERRUPTING"
    farm.tick(T0 + timedelta(seconds=5))
    assert run.action_status == "RECLAIMED"
    task = farm.jobs[job].tasks()[0]
    assert task.status == "RUNNING" and task.run is not None and task.run is not run
    assert worker.status == "NOT_RESPONDING"
