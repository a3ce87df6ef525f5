"""The adapter: botocore's Stubber on a real client, and the simulated endpoint over HTTP."""

from __future__ import annotations

from datetime import UTC

import pytest
from botocore.stub import Stubber

from sync.edges.deadline import Deadline, make_client, resolve_limit
from sync.fakes.deadline import FakeDeadline, Faults
from sync.values.domain import LimitState
from sync.values.errors import DeadlineError

FARM = "farm-0123456789abcdef0123456789abcdef"
LIM = "limit-0123456789abcdef0123456789abcdef"
QUEUE = "queue-0123456789abcdef0123456789abcdef"


@pytest.fixture
def stubbed(aws_env):
    client = make_client("us-west-2")
    calls: list[tuple[str, str]] = []
    with Stubber(client) as stub:
        yield Deadline(client, FARM, on_call=lambda op, o: calls.append((op, o))), stub, calls


def limit_summary(limit_id=LIM, amount="amount.nuke", max_count=10, current=2, name="Nuke"):
    from datetime import datetime

    return {
        "farmId": FARM,
        "limitId": limit_id,
        "displayName": name,
        "amountRequirementName": amount,
        "maxCount": max_count,
        "currentCount": current,
        "createdAt": datetime(2026, 1, 1, tzinfo=UTC),
        "createdBy": "me",
    }


def test_limits_paginate_and_join_associations(stubbed):
    dl, stub, calls = stubbed
    lim2 = "limit-" + "1" * 32
    stub.add_response(
        "list_queue_limit_associations",
        {
            "queueLimitAssociations": [
                {
                    "queueId": QUEUE,
                    "limitId": LIM,
                    "status": "ACTIVE",
                    "createdAt": "2026-01-01T00:00:00Z",
                    "createdBy": "me",
                }
            ],
            "nextToken": "t1",
        },
        {"farmId": FARM, "maxResults": 100},
    )
    stub.add_response(
        "list_queue_limit_associations",
        {"queueLimitAssociations": []},
        {"farmId": FARM, "maxResults": 100, "nextToken": "t1"},
    )
    stub.add_response(
        "list_limits",
        {"limits": [limit_summary()], "nextToken": "p2"},
        {"farmId": FARM, "maxResults": 100},
    )
    stub.add_response(
        "list_limits",
        {"limits": [limit_summary(lim2, "amount.maya", -1, 0)]},
        {"farmId": FARM, "maxResults": 100, "nextToken": "p2"},
    )
    limits = dl.limits()
    stub.assert_no_pending_responses()
    assert [(lim.limit_id, lim.amount, lim.max_count, lim.current_count) for lim in limits] == [
        (LIM, "amount.nuke", 10, 2),
        (lim2, "amount.maya", -1, 0),
    ]
    assert limits[0].associations[0].queue_id == QUEUE
    assert calls == [("ListQueueLimitAssociations", "ok")] * 2 + [("ListLimits", "ok")] * 2


def test_update_limit_request_is_valid_for_the_service_model(stubbed):
    dl, stub, calls = stubbed
    stub.add_response("update_limit", {}, {"farmId": FARM, "limitId": LIM, "maxCount": 7})
    dl.update_limit(LIM, 7)
    stub.assert_no_pending_responses()
    assert calls == [("UpdateLimit", "ok")]


@pytest.mark.parametrize("bad", [0, -2])
def test_update_limit_refuses_values_deadline_rejects(stubbed, bad):
    dl, _, calls = stubbed
    with pytest.raises(DeadlineError, match="refusing"):
        dl.update_limit(LIM, bad)
    assert calls == []


def test_update_association(stubbed):
    dl, stub, _ = stubbed
    stub.add_response(
        "update_queue_limit_association",
        {},
        {
            "farmId": FARM,
            "queueId": QUEUE,
            "limitId": LIM,
            "status": "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS",
        },
    )
    dl.update_association(QUEUE, LIM, "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS")
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "outcome", "words"),
    [
        ("AccessDeniedException", 403, "denied", "grant the IAM action deadline:UpdateLimit"),
        ("ResourceNotFoundException", 404, "not_found", "may have been deleted"),
        ("ValidationException", 400, "invalid", "rejected as invalid"),
        ("ThrottlingException", 429, "throttled", "longer interval"),
    ],
)
def test_errors_are_mapped_and_counted(stubbed, code, status, outcome, words):
    dl, stub, calls = stubbed
    stub.add_client_error(
        "update_limit", service_error_code=code, service_message="nope", http_status_code=status
    )
    with pytest.raises(DeadlineError) as e:
        dl.update_limit(LIM, 3)
    msg = str(e.value)
    assert FARM in msg and LIM in msg and code in msg and words in msg
    assert e.value.code == code
    assert calls == [("UpdateLimit", outcome)]


@pytest.mark.parametrize(("ref", "expected"), [(LIM, LIM), ("amount.nuke", LIM), ("Nuke", LIM)])
def test_resolve_limit_by_id_amount_or_name(ref, expected):
    limits = [
        LimitState(FARM, LIM, "Nuke", "amount.nuke", 5, 0),
        LimitState(FARM, "limit-x", "Maya", "amount.maya", 5, 0),
    ]
    found = resolve_limit(ref, limits)
    assert isinstance(found, LimitState) and found.limit_id == expected


def test_resolve_limit_not_found_lists_the_farms_limits():
    found = resolve_limit("amount.nuk", [LimitState(FARM, LIM, "Nuke", "amount.nuke", 5, 0)])
    assert found == "limit 'amount.nuk' not found in the farm (its limits: amount.nuke)"


def test_resolve_limit_ambiguous_display_name():
    limits = [
        LimitState(FARM, "limit-a", "Nuke", "amount.a", 5, 0),
        LimitState(FARM, "limit-b", "Nuke", "amount.b", 5, 0),
    ]
    assert "matches 2 limits" in resolve_limit("Nuke", limits)


def test_endpoint_env_var_is_honoured_without_host_prefix(sim, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DEADLINE", sim.url)
    lid = sim.farm.add_limit("amount.nuke", 4)
    dl = Deadline(make_client("us-west-2"), sim.farm.farm_id)
    assert [lim.limit_id for lim in dl.limits()] == [lid]


def test_against_the_simulated_endpoint_over_http(sim):
    farm = sim.farm
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    dl = Deadline(make_client("us-west-2", sim.url), farm.farm_id)
    [lim] = dl.limits()
    assert (lim.max_count, lim.associations[0].status) == (10, "ACTIVE")
    dl.update_limit(lid, 4)
    dl.update_association(q, lid, "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS")
    assert farm.limits[lid].max_count == 4
    assert farm.associations[(q, lid)] == "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"


def test_simulated_endpoint_validates_with_the_service_model(sim):
    import json
    import urllib.error
    import urllib.request

    lid = sim.farm.add_limit("amount.nuke", 10)
    # maxCount as a string: botocore would never send it; the service model rejects it
    req = urllib.request.Request(
        f"{sim.url}/2023-10-12/farms/{sim.farm.farm_id}/limits/{lid}",
        method="PATCH",
        data=json.dumps({"maxCount": "7"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    assert e.value.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "maxCount" in e.value.read().decode()
    assert sim.farm.limits[lid].max_count == 10


def test_deleted_limit_is_not_found_over_http(sim):
    dl = Deadline(make_client("us-west-2", sim.url), sim.farm.farm_id)
    with pytest.raises(DeadlineError) as e:
        dl.update_limit("limit-" + "f" * 32, 3)
    assert e.value.code == "ResourceNotFoundException"


def test_throttling_is_retried_adaptively(aws_env, retry_sleeps):
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm()
    farm.add_limit("amount.nuke", 10)
    calls: list[tuple[str, str]] = []
    with FakeDeadline(farm, faults=Faults(throttle_first=2)) as server:
        dl = Deadline(
            make_client("us-west-2", server.url, attempts=6),
            farm.farm_id,
            on_call=lambda op, o: calls.append((op, o)),
        )
        assert len(dl.limits()) == 1
        # the server throttled a burst of two; the client retried them away
        assert server.calls == {"ListQueueLimitAssociations": 3, "ListLimits": 1}
    assert calls == [("ListQueueLimitAssociations", "ok"), ("ListLimits", "ok")]
    assert len(retry_sleeps) == 2  # a back-off before each retry


def test_throttling_beyond_the_retries_is_reported(aws_env, retry_sleeps):
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm()
    calls: list[tuple[str, str]] = []
    with FakeDeadline(farm, faults=Faults(throttle_first=5)) as server:
        dl = Deadline(
            make_client("us-west-2", server.url, attempts=3),
            farm.farm_id,
            on_call=lambda op, o: calls.append((op, o)),
        )
        with pytest.raises(DeadlineError) as e:
            dl.limits()
    assert e.value.code == "ThrottlingException"
    assert calls == [("ListQueueLimitAssociations", "throttled")]


def test_access_denied_over_http(aws_env):
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm()
    with FakeDeadline(farm, faults=Faults(deny=frozenset({"ListLimits"}))) as server:
        dl = Deadline(make_client("us-west-2", server.url), farm.farm_id)
        with pytest.raises(DeadlineError, match="deadline:ListLimits"):
            dl.limits()


def test_unreachable_endpoint_is_a_clear_error(aws_env):
    dl = Deadline(make_client("us-west-2", "http://127.0.0.1:9", attempts=1), FARM)
    with pytest.raises(DeadlineError, match="check the network"):
        dl.limits()


def test_search_jobs_asks_only_for_jobs_that_can_still_run(sim):
    farm = sim.farm
    q = farm.add_queue()
    running = farm.add_job(q, "running", tasks=3, amount="amount.nuke")
    done = farm.add_job(q, "done", tasks=2, amount="amount.nuke")
    for step in farm.jobs[done].steps:
        for t in step.tasks:
            t.status = "SUCCEEDED"
    many = [farm.add_job(q, f"j{i}", tasks=1) for i in range(150)]
    dl = Deadline(make_client("us-west-2", sim.url), farm.farm_id)
    jobs = dl.search_jobs([q])
    ids = [j.job_id for j in jobs]
    assert running in ids and done not in ids
    assert len(ids) == 151 and set(many) <= set(ids)  # two pages
    assert sim.calls["SearchJobs"] == 2


def test_no_credentials_says_how_to_give_them(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    dl = Deadline(make_client("us-west-2", "http://127.0.0.1:9", attempts=1), FARM)
    with pytest.raises(DeadlineError) as e:
        dl.limits()
    assert e.value.code == "NoCredentials"
    assert "give the container a role, or set AWS_PROFILE" in str(e.value)


def test_an_endpoint_in_the_aws_config_services_section_is_used(sim, tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text(
        f"[default]\nservices = fake\n\n[services fake]\ndeadline =\n  endpoint_url = {sim.url}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    lid = sim.farm.add_limit("amount.nuke", 5)
    dl = Deadline(make_client("us-west-2"), sim.farm.farm_id)
    assert [lim.limit_id for lim in dl.limits()] == [lid]


@pytest.mark.parametrize("setting, injected", [("false", True), ("true", False)])
def test_the_users_host_prefix_setting_is_honoured(sim, monkeypatch, setting, injected):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DEADLINE", sim.url)
    monkeypatch.setenv("AWS_DISABLE_HOST_PREFIX_INJECTION", setting)
    assert make_client("us-west-2").meta.config.inject_host_prefix is injected


def test_host_prefixes_stay_on_for_aws_endpoints(aws_env):
    client = make_client("us-west-2")
    assert client.meta.endpoint_url == "https://deadline.us-west-2.amazonaws.com"
    assert client.meta.config.inject_host_prefix is True


def test_what_assigned_and_reclaiming_runs_hold_is_counted(aws_env):
    """An action the scheduler has assigned holds its limit's units before its worker
    starts it; a reclaimed worker's run holds them until the service gives up on it."""
    from datetime import UTC, datetime, timedelta

    from sync.fakes.farm import FakeFarm

    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    farm = FakeFarm(count_delay=0, now=t0, assign_delay=2, release_delay=30)
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    job = farm.add_job(q, "j", tasks=3, amount="amount.nuke", units=2, duration=600)
    farm.tick(t0)
    with FakeDeadline(farm) as server:
        dl = Deadline(make_client("us-west-2", server.url), farm.farm_id)
        assigned = dl.holding([(q, job)], lid)
        assert (assigned.held, assigned.releasing) == (6, 0)
        assert assigned.running == () and assigned.chunks == 0  # nothing begun to requeue
        assert dl.held_by_limit([(q, job)]) == {lid: 6}
        farm.tick(t0 + timedelta(seconds=2))
        farm.lose_worker(farm.jobs[job].sessions[0].worker_id)
        after = dl.holding([(q, job)], lid)
    assert (after.held, after.releasing, len(after.running)) == (4, 2, 2)


def test_what_running_tasks_hold_is_read_worker_by_worker_on_a_farm_of_many_jobs(aws_env):
    """30 jobs that can run, 2 workers busy: the sessions are found through the 2 workers,
    not 30 ListSessions; a role without the fleet reads gets the same answer job by job."""
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm(count_delay=0, workers=2)
    q, lid = farm.add_queue_with_limit("amount.nuke", 10)
    jobs = [farm.add_job(q, f"j{n}", tasks=3, amount="amount.nuke") for n in range(30)]
    farm.tick(farm.now)
    wanted = [(q, j) for j in jobs]
    for deny, expected in (
        (frozenset(), "ListSessionsForWorker"),
        ({"ListWorkers"}, "ListSessions"),
    ):
        with FakeDeadline(farm, faults=Faults(deny=frozenset(deny))) as server:
            dl = Deadline(make_client("us-west-2", server.url), farm.farm_id)
            assert dl.held_by_limit(wanted) == {lid: 2}
            other = {"ListSessionsForWorker", "ListSessions"} - {expected}
            assert server.calls.get(expected, 0) >= 2 and not server.calls.get(other.pop())
