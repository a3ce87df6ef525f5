"""The audit's findings from a farm's setup as read: each mistake that lets licenses be
used around a limit, with its words and its fix. Pure: the setups are built here; the
command against the fake Deadline is tests/commands/test_audit.py."""

from __future__ import annotations

from sync.law.audit import FarmSetup, Finding, audit
from sync.policy import Policy
from sync.values.domain import Association, FleetInfo, JobInfo, LimitState, StepAmounts
from tests.support.policy import policy, pool

FARM = "farm-" + "1" * 32
Q1, Q2 = "queue-" + "1" * 32, "queue-" + "2" * 32
NUKE = "limit-" + "a" * 32


def limit(amount="amount.nuke", limit_id=NUKE, name="Nuke", queues=(Q1,)) -> LimitState:
    return LimitState(
        FARM, limit_id, name, amount, 10, 0, tuple(Association(q, "ACTIVE") for q in queues)
    )


def job(job_id: str, queue: str = Q1, name: str = "") -> JobInfo:
    return JobInfo(queue, job_id, name, 50, "READY", "CREATE_COMPLETE", {}, -1, None, "ann")


def steps(*amounts: str) -> list[StepAmounts]:
    return [StepAmounts("step-1", dict.fromkeys(amounts, 1.0), 4)]


def setup(limits=(), fleets=(), queue_fleets=(), jobs=(), by_job=None) -> dict[str, FarmSetup]:
    return {
        FARM: FarmSetup(
            FARM, list(limits), list(fleets), list(queue_fleets), list(jobs), by_job or {}
        )
    }


def nuke_policy(**pools) -> Policy:
    return Policy.model_validate(policy(FARM, pools=pools or {"nuke": pool()}))


def test_a_farm_set_up_right_has_no_finding():
    farm = setup(
        [limit()], jobs=[job("job-1")], by_job={"job-1": steps("amount.nuke", "amount.worker.vcpu")}
    )
    assert audit(nuke_policy(), farm) == []


def test_a_limit_with_no_queue_says_which_and_how_to_associate_it():
    [found] = audit(nuke_policy(), setup([limit(queues=())]))
    assert found.line() == (
        f"limit_without_queue: pool nuke on {FARM}: limit amount.nuke ({NUKE}) is associated "
        "with no queue: no task ever takes its units\n"
        "  fix: associate it with the queues whose jobs need it (aws deadline "
        f"create-queue-limit-association --limit-id {NUKE} --queue-id QUEUE)"
    )


def test_a_fleet_declaring_the_amount_for_the_limits_queues_bypasses_it():
    own = FleetInfo("fleet-1", "gpu", ("AMOUNT.NUKE", "amount.katana"))
    elsewhere = FleetInfo("fleet-2", "", ("amount.nuke",))  # runs a queue the limit does not govern
    plain = FleetInfo("fleet-3", "cpu")
    links = [(Q1, "fleet-1", "ACTIVE"), (Q2, "fleet-2", "ACTIVE"), (Q1, "fleet-3", "ACTIVE")]
    [found] = audit(nuke_policy(), setup([limit()], [own, elsewhere, plain], links))
    assert found == Finding(
        "fleet_declares_amount",
        FARM,
        "nuke",
        f"fleet gpu (fleet-1) declares amount.nuke in its customAmounts and runs queue(s) {Q1}: "
        "its tasks bypass the limit, so no maxCount license-sync writes holds them",
        "remove amount.nuke from the fleet's customAmounts (aws deadline update-fleet "
        "--fleet-id fleet-1), or let the pool count it by farm_selector alone",
    )
    unnamed = FleetInfo("fleet-4", "", ("amount.nuke",))
    [found] = audit(nuke_policy(), setup([limit()], [unnamed], [(Q1, "fleet-4", "ACTIVE")]))
    assert found.what.startswith("fleet fleet-4 (fleet-4) declares")


def test_a_queue_whose_jobs_need_the_amount_but_not_the_limit_is_named_with_the_command():
    jobs = [job("job-1"), job("job-2", Q2), job("job-3", Q2)]
    by_job = {j: steps("Amount.Nuke") for j in ("job-1", "job-2", "job-3")}
    [found] = audit(nuke_policy(), setup([limit()], jobs=jobs, by_job=by_job))
    assert found.line() == (
        f"queue_not_associated: pool nuke on {FARM}: queue {Q2} has jobs that need amount.nuke "
        "but is not associated with its limit: they take licenses the limit never counts\n"
        f"  fix: aws deadline create-queue-limit-association --limit-id {NUKE} --queue-id {Q2}"
    )


def test_a_limit_no_runnable_job_asks_for_governs_nothing():
    jobs = [job("job-1"), job("job-2")]
    maya = limit("amount.maya", "limit-" + "b" * 32, "Maya")
    farm = setup([limit(), maya], jobs=jobs, by_job={"job-1": steps("amount.maya")})
    [found] = audit(nuke_policy(), farm)
    assert found.kind == "limit_unused"
    assert found.what == (
        "no step of the 2 job(s) that can run asks for amount.nuke: the limit governs nothing now"
    )
    assert found.fix == (
        "declare the amount in the submitters' steps (hostRequirements.amounts); "
        "`license-sync history --undeclared` names the jobs that use it without"
    )
    assert audit(nuke_policy(), setup([limit()])) == []  # no job at all: nothing to say


def test_an_amount_no_limit_has_is_found_for_the_jobs_of_the_limits_queues_only():
    jobs = [job("job-1", name="fx"), job("job-2"), job("job-3", Q2)]
    by_job = {
        "job-1": steps("amount.nuke", "amount.katana", "amount.worker.gpu"),
        "job-2": steps("amount.nuke", "AMOUNT.MAYA"),  # another limit has it
        "job-3": steps("amount.houdini"),  # a queue the limit does not govern
    }
    limits = [limit(), limit("amount.maya", "limit-" + "b" * 32, "Maya", queues=(Q2,))]
    found = [
        f
        for f in audit(nuke_policy(), setup(limits, jobs=jobs, by_job=by_job))
        if f.kind == "amount_without_limit"
    ]
    assert [(f.what, f.fix) for f in found] == [
        (
            f"job fx in queue {Q1} asks for amount.katana, which no limit of the farm has",
            "if amount.katana is a license, create a limit for it (license-sync init "
            "--create-limits); else correct the step's amount name",
        )
    ]
    unnamed = audit(
        nuke_policy(),
        setup([limit()], jobs=[job("job-9")], by_job={"job-9": steps("amount.nuke", "amount.x")}),
    )
    assert [f.what for f in unnamed] == [
        f"job job-9 in queue {Q1} asks for amount.x, which no limit of the farm has"
    ]


def test_findings_come_once_in_the_order_of_their_kinds():
    own = FleetInfo("fleet-1", "gpu", ("amount.nuke",))
    jobs = [job("job-1", Q2), job("job-2")]
    by_job = {
        "job-1": steps("amount.nuke"),
        "job-2": steps("amount.nuke", "amount.zz", "amount.aa"),
    }
    maya = limit("amount.maya", "limit-" + "b" * 32, "Maya", queues=())
    pools = {"nuke": pool(), "maya": pool("amount.maya", "maya"), "again": pool("Nuke")}
    found = audit(
        nuke_policy(**pools),
        setup([limit(), maya], [own], [(Q1, "fleet-1", "ACTIVE")], jobs, by_job),
    )
    assert [(f.kind, f.pool, f.what.split(" asks for ")[-1][:9]) for f in found] == [
        ("fleet_declares_amount", "again", "fleet gpu"),
        ("fleet_declares_amount", "nuke", "fleet gpu"),
        ("limit_without_queue", "maya", "limit amo"),
        ("queue_not_associated", "again", f"queue {Q2[:3]}"),
        ("queue_not_associated", "nuke", f"queue {Q2[:3]}"),
        ("amount_without_limit", "again", "amount.aa"),
        ("amount_without_limit", "again", "amount.zz"),
        ("amount_without_limit", "nuke", "amount.aa"),
        ("amount_without_limit", "nuke", "amount.zz"),
        ("limit_unused", "maya", "amount.ma"),
    ]


def test_a_limit_is_found_by_id_amount_or_name_unless_that_is_ambiguous():
    twin = limit("amount.other", "limit-" + "c" * 32, "Nuke", queues=())
    for ref in (NUKE, "amount.NUKE", "nuke"):
        lone = audit(nuke_policy(nuke=pool(ref)), setup([limit(queues=())]))
        assert [f.kind for f in lone] == ["limit_without_queue"], ref
    # two limits named Nuke: the name finds neither, the amount still finds one
    assert audit(nuke_policy(nuke=pool("Nuke")), setup([limit(queues=()), twin])) == []
    assert [
        f.what[:22] for f in audit(nuke_policy(nuke=pool("amount.other")), setup([limit(), twin]))
    ] == ["limit amount.other (li"]


def test_a_farm_not_read_gives_no_finding():
    other = {"farm-" + "2" * 32: setup([limit(queues=())])[FARM]}
    assert audit(nuke_policy(), other) == []
