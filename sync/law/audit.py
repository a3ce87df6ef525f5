"""The farm's setup against the policy: the mistakes that let licenses be used around a
limit, found before they hurt (docs/operations.md, "Auditing the farm's setup"). Pure:
each farm comes read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sync.policy import LimitTarget, Policy
from sync.values.domain import FleetInfo, JobInfo, LimitState, StepAmounts

# the kinds a finding can be, in the order they are reported (the metric's label)
KINDS = (
    "fleet_declares_amount",
    "limit_without_queue",
    "queue_not_associated",
    "amount_without_limit",
    "limit_unused",
)


# OpenJD's standard amounts: a worker's own resources, never a license
WORKER_AMOUNTS = "amount.worker."


@dataclass(frozen=True)
class FarmSetup:
    """What one farm's setup is made of, as read."""

    farm_id: str
    limits: Sequence[LimitState]
    fleets: Sequence[FleetInfo]
    queue_fleets: Sequence[tuple[str, str, str]]  # (queue, fleet, status)
    jobs: Sequence[JobInfo]  # jobs that can still run, in every queue of the farm
    steps: Mapping[str, Sequence[StepAmounts]] = field(default_factory=dict)  # by job id


@dataclass(frozen=True, order=True)
class Finding:
    kind: str
    farm_id: str
    pool: str
    what: str
    fix: str

    def line(self) -> str:
        return f"{self.kind}: pool {self.pool} on {self.farm_id}: {self.what}\n  fix: {self.fix}"


def audit(policy: Policy, setups: Mapping[str, FarmSetup]) -> list[Finding]:
    """Every finding for the pools of `policy`, on the farms read."""
    out: list[Finding] = []
    for name, pool in policy.pools.items():
        for t in pool.targets(policy.default_farm):
            setup = setups.get(t.farm_id)
            if setup is None:
                continue
            limit = _find(t.limit, setup.limits)
            if limit is not None:
                out += _of_limit(name, limit, setup)
        out += _amounts_without_limit(name, pool.targets(policy.default_farm), setups)
    return sorted(set(out), key=lambda f: (KINDS.index(f.kind), f.farm_id, f.pool, f.what))


def _find(ref: str, limits: Sequence[LimitState]) -> LimitState | None:
    for attr in ("limit_id", "amount", "display_name"):
        found = [x for x in limits if str(getattr(x, attr)).casefold() == ref.casefold()]
        if len(found) == 1:
            return found[0]
    return None


def _of_limit(pool: str, limit: LimitState, setup: FarmSetup) -> list[Finding]:
    amount = limit.amount.casefold()
    queues = {a.queue_id for a in limit.associations}
    out = []
    if not queues:
        out.append(
            _finding(
                "limit_without_queue",
                setup,
                pool,
                f"limit {limit.amount} ({limit.limit_id}) is associated with no queue: no task "
                "ever takes its units",
                f"associate it with the queues whose jobs need it (aws deadline "
                f"create-queue-limit-association --limit-id {limit.limit_id} --queue-id QUEUE)",
            )
        )
    out += _fleets_declaring(pool, limit, queues, setup)
    wanting = _queues_wanting(amount, setup)
    for q in sorted(wanting - queues):
        out.append(
            _finding(
                "queue_not_associated",
                setup,
                pool,
                f"queue {q} has jobs that need {limit.amount} but is not associated with its "
                "limit: they take licenses the limit never counts",
                f"aws deadline create-queue-limit-association --limit-id {limit.limit_id} "
                f"--queue-id {q}",
            )
        )
    if setup.jobs and not wanting:
        out.append(
            _finding(
                "limit_unused",
                setup,
                pool,
                f"no step of the {len(setup.jobs)} job(s) that can run asks for {limit.amount}: "
                "the limit governs nothing now",
                "declare the amount in the submitters' steps (hostRequirements.amounts); "
                "`license-sync history --undeclared` names the jobs that use it without",
            )
        )
    return out


def _fleets_declaring(
    pool: str, limit: LimitState, queues: set[str], setup: FarmSetup
) -> list[Finding]:
    """Fleets running the limit's queues that declare its amount as their own: a task
    there takes no unit of the limit (AWS's license_limits sample: it "bypasses the
    queue-level limit entirely")."""
    amount = limit.amount.casefold()
    out = []
    for fleet in setup.fleets:
        linked = sorted({q for q, f, _ in setup.queue_fleets if f == fleet.fleet_id} & queues)
        if linked and amount in (a.casefold() for a in fleet.custom_amounts):
            out.append(
                _finding(
                    "fleet_declares_amount",
                    setup,
                    pool,
                    f"fleet {fleet.name or fleet.fleet_id} ({fleet.fleet_id}) declares "
                    f"{limit.amount} in its customAmounts and runs queue(s) {', '.join(linked)}: "
                    "its tasks bypass the limit, so no maxCount license-sync writes holds them",
                    f"remove {limit.amount} from the fleet's customAmounts (aws deadline "
                    f"update-fleet --fleet-id {fleet.fleet_id}), or let the pool count it by "
                    "farm_selector alone",
                )
            )
    return out


def _queues_wanting(amount: str, setup: FarmSetup) -> set[str]:
    return {
        j.queue_id
        for j in setup.jobs
        for st in setup.steps.get(j.job_id, ())
        if amount in (a.casefold() for a in st.amounts)
    }


def _amounts_without_limit(
    pool: str, targets: Sequence[LimitTarget], setups: Mapping[str, FarmSetup]
) -> list[Finding]:
    """Jobs in the pool's queues asking for an amount no limit of their farm has: no limit
    holds them back. (Where no fleet offers it either, Deadline makes the job
    NOT_COMPATIBLE, and the search for jobs that can run does not see it.)"""
    out = []
    for t in targets:
        setup = setups.get(t.farm_id)
        limit = _find(t.limit, setup.limits) if setup else None
        if setup is None or limit is None:
            continue
        have = {x.amount.casefold() for x in setup.limits}
        queues = {a.queue_id for a in limit.associations}
        for j in (j for j in setup.jobs if j.queue_id in queues):
            for a in sorted(x for x in _asked(setup, j.job_id) if x.casefold() not in have):
                out.append(
                    _finding(
                        "amount_without_limit",
                        setup,
                        pool,
                        f"job {j.name or j.job_id} in queue {j.queue_id} asks for {a}, which no "
                        "limit of the farm has",
                        f"if {a} is a license, create a limit for it (license-sync init "
                        "--create-limits); else correct the step's amount name",
                    )
                )
    return out


def _asked(setup: FarmSetup, job_id: str) -> set[str]:
    """The amounts a job's steps ask for, less the worker's own (amount.worker.*)."""
    return {
        a
        for st in setup.steps.get(job_id, ())
        for a in st.amounts
        if not a.casefold().startswith(WORKER_AMOUNTS)
    }


def _finding(kind: str, setup: FarmSetup, pool: str, what: str, fix: str) -> Finding:
    return Finding(kind, setup.farm_id, pool, what, fix)
