"""Naming the use around a limit: once the plan finds a pool's farm hosts holding more than
its limits count, read what runs on those hosts, so the operator is told which job and
step forgot the amount (docs/design.md, "Use around the limit"). Read only then: a farm
that declares everything costs no call."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime

from sync.edges.deadline import Deadline
from sync.law.limits import PoolPlan
from sync.law.render import undeclared_said
from sync.law.state import Observed
from sync.law.undeclared import hosts_to_name, name_undeclared
from sync.policy import Policy
from sync.values.domain import HostRun, Undeclared
from sync.values.errors import DeadlineError

log = logging.getLogger("license_sync")


def named(
    policy: Policy,
    observed: Observed,
    pools: Mapping[str, PoolPlan],
    deadline: Callable[[str], Deadline],
    now: datetime,
) -> Observed:
    """`observed` with each pool's undeclared use named by the runs on its hosts. A read
    that fails leaves the pool's use counted and unnamed, and says so in the log."""
    around = {n: pp for n, pp in pools.items() if pp.figures and pp.figures.undeclared_seen}
    if not around:
        return observed
    hosts = {
        n: hosts_to_name(policy.pools[n], observed.sources, now, observed.worker_hosts)
        for n in around
    }
    runs = _runs_on(around, hosts, deadline)
    out: dict[str, tuple[Undeclared, ...]] = {}
    for n, pp in around.items():
        if not all(d.farm_id in runs for d in pp.decisions):
            continue
        on = [r for d in {d.farm_id for d in pp.decisions} for r in runs[d]]
        ids = [d.limit_id for d in pp.decisions if d.limit_id]
        out[n] = _with_names(name_undeclared(pp, hosts[n], ids, on), pp, deadline)
    return replace(observed, undeclared=out)


def _runs_on(
    around: Mapping[str, PoolPlan],
    hosts: Mapping[str, Collection[str]],
    deadline: Callable[[str], Deadline],
) -> dict[str, list[HostRun]]:
    """Per farm, the runs on the hosts whose use is to be named; a farm whose read fails
    is left out, and said."""
    farms = {d.farm_id for pp in around.values() for d in pp.decisions}
    runs: dict[str, list[HostRun]] = {}
    for farm_id in sorted(farms):
        wanted = {h for n, pp in around.items() for h in hosts[n] if _on(pp, farm_id)}
        try:
            runs[farm_id] = deadline(farm_id).runs_on_hosts(wanted)
        except DeadlineError as e:
            log.warning(
                "farm %s: undeclared use not named (what its hosts run not read): %s", farm_id, e
            )
    return runs


def _on(pp: PoolPlan, farm_id: str) -> bool:
    return any(d.farm_id == farm_id for d in pp.decisions)


def _with_names(
    found: tuple[Undeclared, ...], pp: PoolPlan, deadline: Callable[[str], Deadline]
) -> tuple[Undeclared, ...]:
    """The jobs' and steps' names, read on the pool's one farm (ids stand in elsewhere,
    or when the read fails: the ids still say who)."""
    farms = {d.farm_id for d in pp.decisions}
    steps = {(u.queue_id, u.job_id, u.step_id) for u in found if u.job_id}
    if len(farms) != 1 or not steps:
        return found
    try:
        names = deadline(farms.pop()).names(steps)
    except DeadlineError as e:
        log.warning("pool %s: the names of jobs using licenses around it not read: %s", pp.pool, e)
        return found
    return tuple(
        replace(u, job_name=names.get(u.job_id, ""), step_name=names.get(u.step_id, ""))
        for u in found
    )


def say_changes(observed: Observed, pools: Mapping[str, PoolPlan], said: dict[str, str]) -> None:
    """Log a pool's use around its limits when it starts, changes or ends: every cycle
    would drown the log, never would hide it."""
    for n, pp in pools.items():
        fig = pp.figures
        now = undeclared_said(observed.undeclared.get(n, ()), fig.undeclared) if fig else ""
        if fig is not None and not fig.undeclared:
            now = ""
        if now == said.get(n, ""):
            continue
        if now:
            log.warning(
                "pool %s: farm hosts use licenses around its limits, taken from their "
                "maxCount: undeclared: %s (docs/operations.md, 'Use around the limit')",
                n,
                now,
            )
        else:
            log.info("pool %s: no use around its limits now", n)
        said[n] = now
