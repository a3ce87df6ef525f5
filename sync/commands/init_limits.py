"""`init --create-limits`: the limits a starter policy needs that a farm lacks, and their
queue associations — planned first, made only with `--yes`, and safe to run again (a
limit's clientToken, an association that exists)."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sync.edges.deadline import Deadline
from sync.policy.starter import FarmSeen, SourceSeen, amount_key
from sync.values.errors import SyncError


@dataclass(frozen=True)
class LimitWrite:
    farm_id: str
    amount: str  # amount.NAME
    features: tuple[str, ...]
    limit_id: str | None  # None: to be created
    queues: tuple[str, ...]  # queues to associate with it


@dataclass
class Steps:
    writes: list[LimitWrite] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what is there already, in words

    def lines(self) -> list[str]:
        out = ["init --create-limits: the plan"] + [f"  = {k}" for k in self.kept]
        for w in self.writes:
            if w.limit_id is None:
                out.append(
                    f"  + create limit {w.amount} on {w.farm_id} (maxCount 1 until license-sync "
                    f"sets it), fed by {', '.join(w.features)}"
                )
            out += [f"  + associate queue {q} with {w.amount} on {w.farm_id}" for q in w.queues]
        return out


def token(farm_id: str, amount: str) -> str:
    """The clientToken of a limit init creates: the same farm and amount, the same token."""
    digest = hashlib.sha256(f"{farm_id}/{amount}".encode()).hexdigest()[:40]
    return f"license-sync-init-{digest}"


def plan_limits(
    named: Mapping[str, Sequence[str]],
    sources: Sequence[SourceSeen],
    farms: Sequence[FarmSeen],
    queues: Sequence[str],
) -> Steps:
    """For each `--limit` on each farm: the limit if missing, and each queue (`--queue`,
    or every queue of the farm) not associated with it yet."""
    if not named:
        raise SyncError("--create-limits needs the limits to create: --limit nuke=nuke_r,nuke_i")
    _features_offered(named, sources)
    steps = Steps()
    for farm in farms:
        wanted = list(queues) or sorted(farm.queues)
        if missing := [q for q in wanted if farm.queues and q not in farm.queues]:
            raise SyncError(f"farm {farm.farm_id} has no queue {', '.join(missing)}")
        for key, features in named.items():
            _plan_one(farm, key, features, wanted, steps)
    return steps


def _plan_one(
    farm: FarmSeen, key: str, features: Sequence[str], wanted: list[str], steps: Steps
) -> None:
    """One `--limit` on one farm: created if missing, associated with the queues it is
    not yet; kept as it is when it has them all."""
    amount = f"amount.{key}"
    have = next((x for x in farm.limits if amount_key(x.amount) == key), None)
    linked = {a.queue_id for a in have.associations} if have else set()
    todo = tuple(q for q in wanted if q not in linked)
    if have is not None and not todo:
        steps.kept.append(f"{amount} on {farm.farm_id}: exists, every queue associated")
        return
    limit_id = have.limit_id if have else None
    steps.writes.append(LimitWrite(farm.farm_id, amount, tuple(features), limit_id, todo))


def _features_offered(named: Mapping[str, Sequence[str]], sources: Sequence[SourceSeen]) -> None:
    """A feature named for a limit must be one a source read up offers."""
    offered = {f.feature for s in sources if s.report.up for f in s.report.features}
    if not any(s.report.up for s in sources):
        return  # nothing was read: nothing to check against
    for key, features in named.items():
        for f in features:
            if f not in offered:
                near = difflib.get_close_matches(f, sorted(offered), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise SyncError(f"--limit {key}: no source offers a feature {f!r}{hint}")


def apply(steps: Steps, deadline_for: Callable[[str], Deadline]) -> None:
    """Make the plan's writes, each limit before its associations."""
    for w in steps.writes:
        dl = deadline_for(w.farm_id)
        limit_id = w.limit_id
        if limit_id is None:
            name = w.amount.removeprefix("amount.")
            limit_id = dl.create_limit(w.amount, name, 1, token(w.farm_id, w.amount))
        for q in w.queues:
            dl.associate(q, limit_id)
