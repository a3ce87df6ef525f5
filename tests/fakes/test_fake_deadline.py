"""The fake Deadline endpoint keeps the service's rules: one test a rule, through boto3 over
HTTP, so any botocore-based client sees the same wire behaviour. The client's own parameter
validation is off: what is rejected here, the fake rejected."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sync.fakes.deadline import FakeDeadline, Faults
from sync.fakes.farm import FakeFarm
from tests.fakes.conftest import T0

NOT_A_FARM = "farm-" + "0" * 32


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    err = e.value.response["Error"]
    return err["Code"], err.get("Message", "")


def ids(farm):
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    return {"farmId": farm.farm_id, "queueId": q, "limitId": lid}


def job_ident(farm, q, job):
    return {"farmId": farm.farm_id, "queueId": q, "jobId": job}


# -- input: maxima, enums, patterns and unions, from the model's shapes ----------------------


def _calls(farm, i, job):
    f = farm.farm_id
    ident = job_ident(farm, i["queueId"], job)
    active = {"stringFilter": {"name": "NAME", "operator": "EQUAL", "value": "x"}}
    return {
        "maxCount above the maximum": ("update_limit", {**_lim(i), "maxCount": 2**31}, "maximum"),
        "priority above 100": ("update_job", {**ident, "priority": 101}, "maximum"),
        "maxResults above 100": ("list_limits", {"farmId": f, "maxResults": 101}, "maximum"),
        "itemOffset above 10000": (
            "search_jobs",
            {"farmId": f, "queueIds": [i["queueId"]], "itemOffset": 10001},
            "maximum",
        ),
        "more than 10 queue ids": (
            "search_jobs",
            {"farmId": f, "queueIds": [i["queueId"]] * 11, "itemOffset": 0},
            "maximum 10",
        ),
        "more than 3 filters": (
            "search_jobs",
            {
                "farmId": f,
                "queueIds": [i["queueId"]],
                "itemOffset": 0,
                "filterExpressions": {"filters": [active] * 4, "operator": "AND"},
            },
            "maximum 3",
        ),
        "more than 100 jobs in a batch": (
            "batch_get_job",
            {"identifiers": [ident] * 101},
            "maximum 100",
        ),
        "STOPPED is no input status": (
            "update_queue_limit_association",
            {**i, "status": "STOPPED"},
            "is not one of",
        ),
        "an id off its pattern": ("list_limits", {"farmId": "farm-1234"}, "does not match"),
        "two members of a union": (
            "search_jobs",
            {
                "farmId": f,
                "queueIds": [i["queueId"]],
                "itemOffset": 0,
                "filterExpressions": {
                    "filters": [{**active, "searchTermFilter": {"searchTerm": "x"}}],
                    "operator": "AND",
                },
            },
            "one of",
        ),
        "maxCount 0": ("update_limit", {**_lim(i), "maxCount": 0}, "not valid"),
        "maxWorkerCount 0": ("update_job", {**ident, "maxWorkerCount": 0}, "not valid"),
    }


def _lim(i):
    return {"farmId": i["farmId"], "limitId": i["limitId"]}


CASES = list(_calls(FakeFarm(), {"farmId": "", "queueId": "", "limitId": ""}, "").keys())


@pytest.mark.parametrize("case", CASES)
def test_the_fake_rejects_what_the_model_rejects(fake, case):
    farm, client, _ = fake
    i = ids(farm)
    job = farm.add_job(i["queueId"], "a", tasks=1, amount="amount.nuke")
    operation, kwargs, words = _calls(farm, i, job)[case]
    code, message = error_of(getattr(client, operation), **kwargs)
    assert code == "ValidationException"
    assert words in message
    assert farm.writes == []  # nothing rejected was half-applied


def test_a_valid_request_at_the_maxima_is_accepted(fake):
    farm, client, _ = fake
    i = ids(farm)
    client.update_limit(**_lim(i), maxCount=2**31 - 1)
    job = farm.add_job(i["queueId"], "a", tasks=1)
    client.update_job(**job_ident(farm, i["queueId"], job), priority=100)
    page = client.search_jobs(farmId=farm.farm_id, queueIds=[i["queueId"]] * 10, itemOffset=10000)
    assert page["jobs"] == [] and page["totalResults"] == 1


# -- associations move as the service documents ----------------------------------------------


def test_a_stopping_association_becomes_stopped_when_its_tasks_are_done(fake):
    farm, client, _ = fake
    i = ids(farm)
    farm.add_job(i["queueId"], "a", tasks=1, amount="amount.nuke", duration=60)
    farm.tick(T0)  # the task runs and holds the limit
    client.update_queue_limit_association(**i, status="STOP_LIMIT_USAGE_AND_COMPLETE_TASKS")
    farm.tick(T0 + timedelta(seconds=30))
    status = client.get_queue_limit_association(**i)["status"]
    assert status == "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"  # the running task goes on
    farm.tick(T0 + timedelta(seconds=61))
    assert client.get_queue_limit_association(**i)["status"] == "STOPPED"


def test_stop_and_cancel_cancels_the_running_tasks(fake):
    farm, client, _ = fake
    i = ids(farm)
    job = farm.add_job(i["queueId"], "a", tasks=2, amount="amount.nuke", duration=600)
    farm.tick(T0)
    client.update_queue_limit_association(**i, status="STOP_LIMIT_USAGE_AND_CANCEL_TASKS")
    farm.tick(T0 + timedelta(seconds=1))
    assert client.get_queue_limit_association(**i)["status"] == "STOPPED"
    got = client.get_job(**job_ident(farm, i["queueId"], job))
    assert got["taskRunStatusCounts"] == {"CANCELED": 2}


def test_an_association_is_deleted_only_from_stopped(fake):
    farm, client, _ = fake
    i = ids(farm)
    code, _ = error_of(client.delete_queue_limit_association, **i)
    assert code == "ConflictException"
    client.update_queue_limit_association(**i, status="STOP_LIMIT_USAGE_AND_COMPLETE_TASKS")
    assert error_of(client.delete_queue_limit_association, **i)[0] == "ConflictException"
    farm.tick(T0)
    client.delete_queue_limit_association(**i)
    assert error_of(client.get_queue_limit_association, **i)[0] == "ResourceNotFoundException"


def test_a_limit_is_deleted_only_after_its_associations(fake):
    farm, client, _ = fake
    i = ids(farm)
    code, message = error_of(client.delete_limit, **_lim(i))
    assert code == "ConflictException" and "associations" in message
    client.update_queue_limit_association(**i, status="STOP_LIMIT_USAGE_AND_COMPLETE_TASKS")
    farm.tick(T0)
    client.delete_queue_limit_association(**i)
    client.delete_limit(**_lim(i))
    assert error_of(client.get_limit, **_lim(i))[0] == "ResourceNotFoundException"


def test_limits_and_associations_are_created(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    made = client.create_limit(
        farmId=farm.farm_id, displayName="Nuke", amountRequirementName="amount.nuke", maxCount=4
    )
    i = {"farmId": farm.farm_id, "queueId": q, "limitId": made["limitId"]}
    client.create_queue_limit_association(**i)
    assert client.get_queue_limit_association(**i)["status"] == "ACTIVE"
    assert error_of(client.create_queue_limit_association, **i)[0] == "ConflictException"
    missing = {**i, "queueId": "queue-" + "f" * 32}
    assert error_of(client.create_queue_limit_association, **missing)[0] == (
        "ResourceNotFoundException"
    )


def test_a_repeated_client_token_is_answered_not_redone(fake):
    farm, client, _ = fake
    kwargs = {
        "farmId": farm.farm_id,
        "displayName": "Nuke",
        "amountRequirementName": "amount.nuke",
        "maxCount": 4,
        "clientToken": "retry-1",
    }
    first = client.create_limit(**kwargs)
    again = client.create_limit(**kwargs)
    assert first["limitId"] == again["limitId"] and len(farm.limits) == 1
    q = farm.add_queue()
    job = farm.add_job(q, "a", tasks=1)
    client.update_job(**job_ident(farm, q, job), maxWorkerCount=3, clientToken="t")
    client.update_job(**job_ident(farm, q, job), maxWorkerCount=5, clientToken="t")
    assert farm.jobs[job].max_worker_count == 3


# -- jobs move: finish, fail, requeue, suspend, archive ----------------------------------------


def test_every_field_an_update_accepts_is_stored(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    job = farm.add_job(q, "a", tasks=1)
    ident = job_ident(farm, q, job)
    client.update_job(
        **ident,
        name="renamed",
        description="why",
        priority=80,
        maxWorkerCount=7,
        maxFailedTasksCount=3,
        maxRetriesPerTask=2,
    )
    got = client.get_job(**ident)
    assert (got["name"], got["description"], got["priority"], got["maxWorkerCount"]) == (
        "renamed",
        "why",
        80,
        7,
    )
    assert (got["maxFailedTasksCount"], got["maxRetriesPerTask"]) == (3, 2)
    i = ids(farm)
    client.update_limit(**_lim(i), description="floating", displayName="N")
    assert client.get_limit(**_lim(i))["description"] == "floating"


def test_a_failed_job_is_requeued_and_runs_again(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    job = farm.add_job(q, "a", tasks=2)
    ident = job_ident(farm, q, job)
    farm.end_job(job, "FAILED")
    assert client.get_job(**ident)["taskRunStatus"] == "FAILED"
    client.update_job(**ident, targetTaskRunStatus="READY")
    got = client.get_job(**ident)
    assert got["taskRunStatus"] == "READY" and got["targetTaskRunStatus"] == "READY"
    farm.tick(T0)
    assert client.get_job(**ident)["taskRunStatus"] == "RUNNING"


def test_steps_carry_their_real_task_run_status(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    job = farm.add_job(q, "a", tasks=1, steps=2)
    farm.jobs[job].steps[0].tasks[0].set_status("SUCCEEDED")
    steps = client.list_steps(**job_ident(farm, q, job))["steps"]
    assert [s["taskRunStatus"] for s in steps] == ["SUCCEEDED", "READY"]


def test_a_suspended_job_does_not_run(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    job = farm.add_job(q, "a", tasks=2)
    client.update_job(**job_ident(farm, q, job), targetTaskRunStatus="SUSPENDED")
    farm.tick(T0)
    assert client.get_job(**job_ident(farm, q, job))["taskRunStatus"] == "SUSPENDED"


def test_an_archived_job_never_runs_and_takes_no_update(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    job = farm.add_job(q, "a", tasks=2)
    ident = job_ident(farm, q, job)
    client.update_job(**ident, lifecycleStatus="ARCHIVED")
    farm.tick(T0)
    got = client.get_job(**ident)
    assert got["lifecycleStatus"] == "ARCHIVED" and got["taskRunStatus"] == "READY"
    assert error_of(client.update_job, **ident, maxWorkerCount=2)[0] == "ConflictException"
    errors = client.batch_update_job(jobs=[{**ident, "maxWorkerCount": 2}])["errors"]
    assert [e["code"] for e in errors] == ["ConflictException"]


def test_a_step_without_its_queue_association_is_not_compatible(fake):
    farm, client, _ = fake
    farm.add_limit("amount.nuke", 5)
    q = farm.add_queue()  # never associated with the nuke limit
    job = farm.add_job(q, "a", tasks=1, amount="amount.nuke")
    farm.tick(T0)
    assert client.get_job(**job_ident(farm, q, job))["taskRunStatus"] == "NOT_COMPATIBLE"


def test_search_jobs_pages_over_a_list_that_changes_between_pages(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    jobs = [farm.add_job(q, f"j{n}", tasks=1) for n in range(150)]
    active = {
        "filters": [
            {
                "stringFilter": {
                    "name": "TASK_RUN_STATUS",
                    "operator": "NOT_EQUAL",
                    "value": "SUCCEEDED",
                }
            }
        ],
        "operator": "AND",
    }
    page = dict(farmId=farm.farm_id, queueIds=[q], filterExpressions=active, pageSize=100)
    first = client.search_jobs(**page, itemOffset=0)
    assert first["totalResults"] == 150 and first["nextItemOffset"] == 100
    farm.end_job(jobs[0])  # finishes between the two pages
    second = client.search_jobs(**page, itemOffset=100)
    seen = {j["jobId"] for j in first["jobs"] + second["jobs"]}
    assert len(seen) == 149 and jobs[100] not in seen  # shifted past: a page missed it


def test_search_jobs_narrows_by_creation_time_and_sorts(fake):
    farm, client, _ = fake
    q = farm.add_queue()
    jobs = [farm.add_job(q, f"j{n}", tasks=1) for n in range(5)]
    cut = farm.jobs[jobs[2]].created_at
    got = client.search_jobs(
        farmId=farm.farm_id,
        queueIds=[q],
        itemOffset=0,
        filterExpressions={
            "filters": [
                {
                    "dateTimeFilter": {
                        "name": "CREATED_AT",
                        "operator": "GREATER_THAN_EQUAL_TO",
                        "dateTime": cut,
                    }
                }
            ],
            "operator": "AND",
        },
        sortExpressions=[{"fieldSort": {"name": "CREATED_AT", "sortOrder": "DESCENDING"}}],
    )
    assert [j["jobId"] for j in got["jobs"]] == [jobs[4], jobs[3], jobs[2]]


def test_injected_faults_answer_once_then_the_call_works(aws_env):
    farm = FakeFarm(count_delay=0)
    farm.add_queue_with_limit("amount.nuke", 3)
    with FakeDeadline(farm, faults=Faults(fail_next={"ListLimits": ["ConflictException"]})) as s:
        client = boto3.session.Session().client(
            "deadline",
            region_name="us-west-2",
            endpoint_url=s.url,
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )
        assert error_of(client.list_limits, farmId=farm.farm_id)[0] == "ConflictException"
        assert len(client.list_limits(farmId=farm.farm_id)["limits"]) == 1


# -- sessions: who holds a limit, and UpdateTask -----------------------------------------------


def test_a_running_task_is_a_session_whose_action_lists_the_limits_it_acquired(fake):
    farm, client, _ = fake
    i = ids(farm)
    job = farm.add_job(i["queueId"], "j", tasks=1, amount="amount.nuke", units=2)
    farm.tick(T0)
    ident = job_ident(farm, i["queueId"], job)
    [session] = client.list_sessions(**ident)["sessions"]
    assert session["lifecycleStatus"] == "STARTED"
    [action] = client.list_session_actions(**ident, sessionId=session["sessionId"])[
        "sessionActions"
    ]
    assert action["status"] == "RUNNING" and "taskId" in action["definition"]["taskRun"]
    got = client.batch_get_session_action(
        identifiers=[{**ident, "sessionActionId": action["sessionActionId"]}]
    )
    [item] = got["sessionActions"]
    assert item["acquiredLimits"] == [{"limitId": i["limitId"], "count": 2}]
    missing = {**ident, "sessionActionId": "sessionaction-" + "0" * 32 + "-0"}
    [err] = client.batch_get_session_action(identifiers=[missing])["errors"]
    assert err["code"] == "ResourceNotFoundException"


def test_update_task_to_ready_requeues_it_and_gives_its_license_back(fake):
    farm, client, _ = fake
    i = ids(farm)
    job = farm.add_job(i["queueId"], "j", tasks=1, amount="amount.nuke", duration=600)
    farm.tick(T0)
    assert farm.in_use(i["limitId"]) == 1
    ident = job_ident(farm, i["queueId"], job)
    [action] = client.list_session_actions(**ident)["sessionActions"]
    run = action["definition"]["taskRun"]
    client.update_task(**ident, stepId=run["stepId"], taskId=run["taskId"], targetRunStatus="READY")
    assert farm.in_use(i["limitId"]) == 0
    [after] = client.list_session_actions(**ident)["sessionActions"]
    assert after["status"] == "INTERRUPTED" and "endedAt" in after
    assert farm.jobs[job].steps[0].tasks[0].status == "READY"
    code, _ = error_of(
        client.update_task, **ident, stepId=run["stepId"], taskId="task-" + "1" * 32 + "-0",
        targetRunStatus="READY",
    )  # fmt: skip
    assert code == "ResourceNotFoundException"
    code, _ = error_of(
        client.update_task, **ident, stepId=run["stepId"], taskId=run["taskId"],
        targetRunStatus="RUNNING",
    )  # fmt: skip
    assert code == "ValidationException"  # not a target status (the model's enum)


def test_the_demo_world_is_as_late_and_unkind_as_deadline():
    from sync.fakes.world import DemoWorld

    farm = DemoWorld().farm
    assert farm.search_lag.total_seconds() > 60  # longer than a demo cycle
    assert farm.count_delay.total_seconds() > 0 and farm.item_error_rate > 0
    assert farm.release_delay.total_seconds() > 0
