"""The whole farm as a state machine: people, jobs, API faults, cycles and kill -9, with the
invariants that say nothing license-sync changed is ever lost (docs/design.md, "What is
never lost"). The real service and botocore against the fake endpoint over HTTP, with the
fake as unkind as the service (`REALISTIC`: searches that lag the writes, delayed counts,
per-item errors of every code the model lists, answers cut short, chunked steps, amount
names in another case), and the offset maximum and page size scaled down so that a few
jobs cross them.

`LICENSE_SYNC_MACHINE_EXAMPLES` sets the number of examples (200 in CI, 100 elsewhere; the benchmark
`benchmarks/farm_machine.py` runs 5,000).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

import sync.edges.deadline
from sync.cycle.restore import restore
from sync.cycle.service import Service
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.edges.sources import Source
from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import REALISTIC, FakeFarm
from sync.fakes.operations import PERSON
from sync.fakes.oracle import idle_while_capped
from sync.fakes.templates import simple_template
from sync.licenses import Feature, Report
from sync.policy import LoadedPolicy, load_policy
from tests.support.policy import policy as policy_doc
from tests.support.policy import pool, write_policy

FARM = "farm-" + "ab" * 16
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
SHARING = {"policy": "fair", "min_workers": 1, "respect_manual": True}
POOLS = {
    "nuke": pool(on_exhausted="pause", hysteresis={"settle": 1}, jobs=SHARING),
    "maya": pool("amount.maya", "maya", jobs=SHARING),
}
AMOUNTS = ("amount.nuke", "amount.maya")
PEOPLE_VALUES = st.sampled_from([-1, 45, 50, 60])  # never a value license-sync would write
FAULTS = st.sampled_from(
    [
        "ConflictException",
        "ThrottlingException",
        "InternalServerErrorException",
        "AccessDeniedException",
        "ValidationException",
        "CutShort",  # a 200 whose body is cut in half
    ]
)
# scaled down: a page of 3, an offset maximum of 6 and totalResults stopping at 9
PAGE, MAX_OFFSET, MAX_TOTAL = 3, 6, 9
OPERATIONS = st.sampled_from(
    [
        "ListLimits",
        "ListQueueLimitAssociations",
        "SearchJobs",
        "BatchGetJob",
        "ListSteps",
        "BatchGetStep",
        "BatchUpdateJob",
        "UpdateLimit",
        "UpdateQueueLimitAssociation",
    ]
)


# each example's history lives in memory-backed storage where there is some: SQLite's
# fsyncs are most of an example's cost on a disk
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


class Killed(BaseException):
    """kill -9: nothing after it runs, no handler of the service catches it."""


class Licenses(Source):
    """Two features whose artists' use the machine sets."""

    def __init__(self) -> None:
        self.name, self.kind = "lic", "flexlm"
        self.in_use = {"nuke_r": 0, "maya": 0}

    def read(self) -> Report:
        return Report(
            "flexlm",
            True,
            features=tuple(
                Feature("v", name, None, 10, used, expires="2027-01-31")
                for name, used in self.in_use.items()
            ),
        )


@pytest.fixture(scope="module")
def endpoint():
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    server = FakeDeadline(FakeFarm(FARM)).start()
    # no retries and no client-side rate limiting: a fault is seen by the service at once
    client = make_client("us-west-2", server.url, attempts=1, retry_mode="standard")
    policy = Path(tempfile.mkdtemp(prefix="machine-")) / "policy.yaml"
    write_policy(policy, policy_doc(FARM, history=Path("unused.db"), pools=POOLS, interval="60s"))
    yield server, client, load_policy(policy)
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class FarmMachine(RuleBasedStateMachine):
    server: FakeDeadline
    client: object
    loaded: LoadedPolicy  # parsed once: each example has a history of its own
    current: FarmMachine

    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.farm = FakeFarm(FARM, now=T0, **REALISTIC)
        self.farm.search_total_max = MAX_TOTAL
        self.server.farm = self.farm
        self.server.faults.fail_next.clear()
        self.server.faults.cut_short.clear()
        self.now = T0
        self.dir = Path(tempfile.mkdtemp(prefix="machine-", dir=SCRATCH))
        self.queue = self.farm.add_queue()
        self.limits = {a: self.farm.add_limit(a, 8) for a in AMOUNTS}
        for lid in self.limits.values():
            self.farm.associate(self.queue, lid)
        self.people: dict[str, int] = {}  # each job's maxWorkerCount as people left it
        self.first_prior: dict[str, int] = {}  # maxCount before license-sync's first write
        self.stopped_by_us: set[tuple[str, str]] = set()
        # queues a person stopped after our pause, once we held the stamp our pause left
        self.people_stopped: dict[tuple[str, str], str] = {}
        self.reopened_for_people: set[tuple[str, str]] = set()
        self.people_seen: set[tuple[str, str]] = set()  # people's stops a cycle read as such
        self.person_wrote: set[str] = set()  # jobs whose maxWorkerCount a person set
        self.we_wrote: dict[str, set[int]] = {}  # job → caps license-sync wrote to it
        self.restoring = False
        self._watch_writes()
        self.licenses = Licenses()
        self.budget = 500  # new jobs whose steps a cycle reads
        self.idle: list[tuple[str, int, int]] = []  # `idle_while_capped` after clean cycles
        self.svc = self._start()

    def _watch_writes(self) -> None:
        """What license-sync set out to change: the limits it tried to write (the value then
        is their original) and the associations it stopped."""
        farm = self.farm
        real_assoc = farm.op_UpdateQueueLimitAssociation

        def update_association(p):
            key = (p["queueId"], p["limitId"])
            if farm.caller != PERSON and p["status"] != "ACTIVE":
                self.stopped_by_us.add(key)
            if farm.caller != PERSON and p["status"] == "ACTIVE" and key in self.people_stopped:
                self.reopened_for_people.add(key)
            return real_assoc(p)

        farm.op_UpdateQueueLimitAssociation = update_association  # type: ignore[method-assign]
        real_update_jobs = farm.op_BatchUpdateJob

        def update_jobs(p):
            answer = real_update_jobs(p)
            failed = {e["jobId"] for e in answer["errors"]}
            for item in p["jobs"]:
                job = item["jobId"]
                if farm.caller != PERSON and job not in failed and not self.restoring:
                    if item["maxWorkerCount"] != self.people.get(job):
                        self.we_wrote.setdefault(job, set()).add(item["maxWorkerCount"])
            return answer

        farm.op_BatchUpdateJob = update_jobs  # type: ignore[method-assign]
        FarmMachine.current = self

    @staticmethod
    def _limit_write(params: dict, **_: object) -> None:
        machine = FarmMachine.current
        lim = machine.farm.limits.get(params.get("limitId", ""))
        if lim is not None and not machine.restoring:
            machine.first_prior.setdefault(lim.limit_id, lim.max_count)

    def _start(self) -> Service:
        dl = Deadline(self.client, FARM)
        svc = Service(
            self.loaded,
            deadline_factory=lambda f: dl,
            history=History(str(self.dir / "h.db")),
            clock=lambda: self.now,
            source_factory=lambda name, cfg: self.licenses,
            watch_policy=False,
        )
        svc.observer.step_budget = self.budget
        return svc

    @rule(budget=st.sampled_from([1, 2, 500]))
    def step_budget(self, budget):
        """A small budget spreads the reading of new jobs' steps over cycles (and restarts)."""
        self.budget = self.svc.observer.step_budget = budget

    # -- people and jobs ----------------------------------------------------------------------

    @rule(
        target=jobs,
        tasks=st.integers(1, 30),
        amounts=st.sampled_from([("amount.nuke",), ("amount.maya",), AMOUNTS, ("amount.NUKE",)]),
        value=PEOPLE_VALUES,
        chunk=st.sampled_from([1, 1, 3]),
        after=st.booleans(),
    )
    def submit(self, tasks, amounts, value, chunk, after):
        """A job made by CreateJob from an OpenJD template: its step perhaps chunked, its
        amount perhaps named in another case, perhaps after an unlicensed step it depends
        on. Its steps exist `create_delay` later."""
        text = simple_template(
            "job", tasks, amounts[0], chunk=chunk, also=amounts[1:], after_unlicensed=after
        )
        p = {"farmId": self.farm.farm_id, "queueId": self.queue, "priority": 50}
        p.update(template=text, templateType="JSON", maxWorkerCount=value)
        if value == -1:
            del p["maxWorkerCount"]  # unset: the service's -1
        job = self.farm.call("CreateJob", p, caller=PERSON)["jobId"]
        self.people[job] = value
        return job

    @rule(job=jobs, event=st.sampled_from(["SUCCEEDED", "FAILED", "CANCELED", "READY", "ARCHIVED"]))
    def job_event(self, job, event):
        """The job ends, is requeued (READY) or archived, outside license-sync."""
        found = self.farm.jobs.get(job)
        if found is None or found.lifecycle_status == "ARCHIVED":
            return
        if event == "ARCHIVED":
            found.lifecycle_status = "ARCHIVED"
        elif event == "READY":
            self.farm.set_target_status(found, "READY")
        else:
            self.farm.end_job(job, event)

    @rule(job=consumes(jobs))
    def delete(self, job):
        self.farm.remove_job(job)
        self.people.pop(job, None)

    @rule(job=jobs, value=PEOPLE_VALUES)
    def person_sets_max_workers(self, job, value):
        """A wrangler's UpdateJob: the search shows it `search_lag` later."""
        if job in self.farm.jobs and self.farm.jobs[job].lifecycle_status != "ARCHIVED":
            self.farm.person_updates_job(job, maxWorkerCount=value)
            self.people[job] = value
            self.person_wrote.add(job)

    @rule(amount=st.sampled_from(AMOUNTS), value=st.integers(500, 600))
    def person_sets_max_count(self, amount, value):
        if self.limits[amount] in self.farm.limits:
            self.farm.limits[self.limits[amount]].max_count = value

    @rule(
        status=st.sampled_from(
            ["STOP_LIMIT_USAGE_AND_COMPLETE_TASKS", "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"]
        )
    )
    def wrangler_stops_a_queue_we_paused(self, status):
        """A person stops the nuke queue we paused, a second after anything before: it is
        theirs now (docs/design.md, "Paused queues")."""
        key = (self.queue, self.limits["amount.nuke"])
        if key not in self.stopped_by_us or self.farm.associations.get(key, "ACTIVE") == "ACTIVE":
            return
        rows = self.svc.history.get_state("memory", [])
        stamped = any(
            r[1] == "amount.nuke" and len(r) > 5 and any(q == self.queue for q, *_ in r[5])
            for r in rows
        )
        self.now += timedelta(seconds=1)
        self.farm.now = self.now
        self.farm.person_sets_association(*key, status)
        self.stopped_by_us.discard(key)
        if stamped:  # a pause whose stamp was never read back stays ours until ACTIVE
            self.people_stopped[key] = self.farm.associations[key]

    @rule(amount=st.sampled_from(AMOUNTS))
    def td_deletes_the_limit(self, amount):
        """The API's way: stop the association, wait for STOPPED, delete it, then the limit."""
        lid = self.limits[amount]
        ident = {"farmId": FARM, "queueId": self.queue, "limitId": lid}
        if (self.queue, lid) in self.farm.associations:
            status = "STOP_LIMIT_USAGE_AND_CANCEL_TASKS"
            self.farm.associations[(self.queue, lid)] = status
            self.farm.tick(self.now)
            self.farm.call("DeleteQueueLimitAssociation", ident)
        if lid in self.farm.limits:
            self.farm.call("DeleteLimit", {"farmId": FARM, "limitId": lid})

    @rule(amount=st.sampled_from(AMOUNTS))
    def td_creates_the_limit_again(self, amount):
        if self.limits[amount] not in self.farm.limits:
            lid = self.farm.add_limit(amount, 8)
            self.farm.associate(self.queue, lid)
            self.limits[amount] = lid

    @rule(
        nuke=st.integers(0, 10),
        maya=st.integers(0, 10),
        fault=st.none() | st.tuples(OPERATIONS, FAULTS),
    )
    def cycle(self, nuke, maya, fault):
        """Artists' use changes, a cycle runs, perhaps with one API call failing."""
        if fault is not None and fault[1] == "CutShort":
            self.server.faults.cut_short[fault[0]] = 1
        elif fault is not None:
            self.server.faults.fail_next[fault[0]] = [fault[1]]
        self.licenses.in_use = {"nuke_r": nuke, "maya": maya}
        self._run_cycle(watch_idle=fault is None)

    @rule()
    def artists_take_every_nuke_license(self):
        """Two cycles of it: a rise of external use is believed once a second read shows
        it (the pool has no farm_selector), and the exhausted pool pauses its queue."""
        self.licenses.in_use["nuke_r"] = 10
        self._run_cycle()
        self._run_cycle()

    @rule(job=jobs, code=FAULTS, nuke=st.integers(0, 10))
    def cycle_with_a_job_refused(self, job, code, nuke):
        """A cycle in which Deadline refuses this one job's item of a batch."""
        self.farm.item_faults[job] = code
        self.licenses.in_use["nuke_r"] = nuke
        self._run_cycle()

    def _run_cycle(self, watch_idle: bool = False) -> None:
        self.now += timedelta(seconds=60)
        self.farm.tick(self.now)
        self._stops_the_service_moved_first()
        stopping = {k for k in self.people_stopped if self.farm.associations.get(k) != "STOPPED"}
        try:
            r = self.svc.run_cycle()
        finally:
            self.server.faults.fail_next.clear()
            self.server.faults.cut_short.clear()
            self.farm.item_faults.clear()
        if r.ok:
            self.people_seen |= stopping
        # the machine itself: a limit on the farm that the service cannot find means the
        # endpoint serves another farm, and every invariant would hold of nothing
        for amount, lid in self.limits.items():
            missing = f"limit '{amount}' not found in the farm"
            assert lid not in self.farm.limits or not any(missing in e for e in r.errors)
        if watch_idle and r.ok:
            self.idle += idle_while_capped(self.farm, self.queue, self.people)

    def _stops_the_service_moved_first(self) -> None:
        """A person's STOP that reached STOPPED before license-sync read it is not told
        apart from the service's own move to STOPPED: it is taken for our pause, the cost
        docs/design.md ("Paused queues") states. Only a STOP read as such is theirs."""
        for key in list(self.people_stopped):
            if self.farm.associations.get(key) == "STOPPED" and key not in self.people_seen:
                del self.people_stopped[key]

    @rule(
        operation=st.sampled_from(["BatchUpdateJob", "UpdateLimit", "UpdateQueueLimitAssociation"]),
        when=st.sampled_from(["before-send", "after-call"]),
    )
    def killed_at_a_write(self, operation, when):
        """kill -9 as the write leaves (never sent), or once it landed (answer lost)."""
        event = f"{when}.deadline.{operation}"

        def die(**_):
            raise Killed

        self.client.meta.events.register(event, die)  # type: ignore[attr-defined]
        try:
            self._run_cycle()
        except Killed:
            pass
        finally:
            self.client.meta.events.unregister(event, die)  # type: ignore[attr-defined]
        self.restart()

    @rule()
    def restart(self):
        self.svc.history.close()
        self.svc = self._start()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def no_queue_a_person_stopped_is_reopened_by_us(self):
        assert not self.reopened_for_people, self.reopened_for_people

    @invariant()
    def no_job_is_written_above_its_own_cap(self):
        """What a person set a job to is a ceiling license-sync never writes above."""
        for job_id, job in self.farm.jobs.items():
            own = self.people.get(job_id, -1)
            assert own == -1 or job.max_worker_count <= own, (job_id, own)

    @invariant()
    def no_license_idles_while_a_job_we_capped_waits(self):
        assert not self.idle, self.idle

    @invariant()
    def no_zero_is_ever_written(self):
        assert all(lim.max_count != 0 for lim in self.farm.limits.values())
        assert all(job.max_worker_count != 0 for job in self.farm.jobs.values())

    @invariant()
    def every_job_we_changed_has_its_original_on_disk(self):
        with sqlite3.connect(self.dir / "h.db") as db:
            recorded = dict(db.execute("SELECT job_id, original FROM job_originals").fetchall())
        for job_id, job in self.farm.jobs.items():
            if job.max_worker_count != self.people[job_id] and job.lifecycle_status != "ARCHIVED":
                assert recorded.get(job_id) == self.people[job_id], job_id

    @invariant()
    def no_job_is_marked_manual_that_no_person_wrote(self):
        with sqlite3.connect(self.dir / "h.db") as db:
            manual = {j for (j,) in db.execute("SELECT job_id FROM job_originals WHERE manual")}
        assert manual <= self.person_wrote, manual - self.person_wrote

    @invariant()
    def no_original_is_a_value_we_wrote(self):
        with sqlite3.connect(self.dir / "h.db") as db:
            rows = db.execute("SELECT job_id, original FROM job_originals").fetchall()
        for job_id, original in rows:
            assert original not in self.we_wrote.get(job_id, set()), job_id

    def teardown(self) -> None:
        """Stop the service, restore as `license-sync restore --limits` does, and find
        everything put back."""
        self.svc.history.close()
        self.server.faults.fail_next.clear()
        self.server.faults.cut_short.clear()
        self.farm.item_faults.clear()
        self.farm.item_error_rate = 0.0  # the restore is run until it reports no failure
        self.restoring = True
        self._stops_the_service_moved_first()
        svc = self._start()
        done = restore(svc.memory, svc.writer, self.now, limits=True)
        assert not done.failed, done.failed
        svc.history.close()
        for job_id, job in self.farm.jobs.items():
            if job.lifecycle_status != "ARCHIVED":
                assert job.max_worker_count == self.people[job_id], job_id
        for key in self.stopped_by_us & set(self.farm.associations):
            assert self.farm.associations[key] == "ACTIVE", key
        assert not self.reopened_for_people, self.reopened_for_people  # nor by the restore
        for lid, prior in self.first_prior.items():
            if lid in self.farm.limits:
                assert self.farm.limits[lid].max_count == prior, lid
        shutil.rmtree(self.dir, ignore_errors=True)


FarmMachine.TestCase.settings = settings(
    # 200 in CI; 80 elsewhere keeps a local run (and try-fresh) under 90 s on two cores;
    # benchmarks/farm_machine.py runs 5,000
    max_examples=int(
        os.environ.get("LICENSE_SYNC_MACHINE_EXAMPLES", "200" if os.environ.get("CI") else "80")
    ),
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    # LICENSE_SYNC_MACHINE_SHRINK=0 reports a failing example as found, unshrunk (faster)
    phases=[
        p
        for p in Phase
        if p != Phase.shrink or os.environ.get("LICENSE_SYNC_MACHINE_SHRINK") != "0"
    ],
)


@pytest.fixture(autouse=True)
def _bind(endpoint, monkeypatch):
    monkeypatch.setattr(sync.edges.deadline, "PAGE", PAGE)
    monkeypatch.setattr(Deadline, "max_item_offset", MAX_OFFSET)
    FarmMachine.server, FarmMachine.client, FarmMachine.loaded = endpoint
    event = "provide-client-params.deadline.UpdateLimit"
    FarmMachine.client.meta.events.register(event, FarmMachine._limit_write)  # type: ignore[attr-defined]
    yield
    FarmMachine.client.meta.events.unregister(event, FarmMachine._limit_write)  # type: ignore[attr-defined]


TestFarmMachine = FarmMachine.TestCase
