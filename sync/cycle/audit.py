"""Reading each farm's setup for the audit, and reporting what it finds: the command, and
the service at start and after each policy reload (docs/operations.md, "Auditing the
farm's setup")."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sync.edges.deadline import Deadline
from sync.edges.metrics import Metrics
from sync.law.audit import KINDS, FarmSetup, Finding, audit
from sync.policy import Policy
from sync.values.errors import DeadlineError

log = logging.getLogger("license_sync")

# the newest jobs whose steps are read: enough to see which amounts are asked for, bounded
# on a farm of 100,000 jobs
RECENT_JOBS = 500


def read_setup(dl: Deadline) -> FarmSetup:
    """Limits, fleets, queue-fleet associations, and the newest jobs that can still run
    in every queue of the farm with their steps' amounts. Raises DeadlineError."""
    limits = dl.limits()
    queue_fleets = dl.queue_fleets()
    queues = {q for q, _, _ in queue_fleets} | {a.queue_id for x in limits for a in x.associations}
    jobs = dl.search_jobs(sorted(queues)) if queues else []
    jobs = sorted(jobs, key=lambda j: str(j.created_at or ""), reverse=True)[:RECENT_JOBS]
    steps = dl.step_amounts([(j.queue_id, j.job_id) for j in jobs]) if jobs else {}
    return FarmSetup(dl.farm_id, limits, dl.fleets(), queue_fleets, jobs, steps)


def audit_farms(
    policy: Policy, deadline: Callable[[str], Deadline]
) -> tuple[list[Finding], list[str]]:
    """The findings on every farm of the policy, and the farms that could not be read."""
    setups, errors = {}, []
    for farm in policy.farms:
        try:
            setups[farm.id] = read_setup(deadline(farm.id))
        except DeadlineError as e:
            errors.append(f"farm {farm.id}: setup not read: {e}")
    return audit(policy, setups), errors


class SetupWatch:
    """The service's audit: once at start and once after each policy reload, each new
    finding logged once, every kind counted in the metric."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.due = True
        self.said: set[Finding] = set()

    def check(self, policy: Policy, deadline: Callable[[str], Deadline]) -> None:
        if not self.due:
            return
        self.due = False
        found, errors = audit_farms(policy, deadline)
        for e in errors:
            log.warning("%s (audited again at the next reload or restart)", e)
        for f in found:
            if f not in self.said:
                log.warning(
                    "farm setup: %s; fix: %s (license-sync audit)", f.line().split("\n")[0], f.fix
                )
        self.said = set(found)
        for kind in KINDS:
            self.metrics.setup_findings.labels(kind).set(sum(f.kind == kind for f in found))
