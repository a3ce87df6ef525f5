"""The offline planner: a policy planned against what a history recorded, with no farm
and no license server to ask. Both of its questions go through the service's own
reconcile step, with the memory carried as the service carries it:

- `against`: the farm as the last recorded cycle left it (`plan --against`, `explain
  --against`): the whole observation, every limit, queue and job.
- `replay`: every recorded decision planned again, cycle after cycle (`replay`), the what-if
  a TD runs before merging a policy change. A decision row keeps the pool's figures, not
  the whole observation, so each is planned as that pool alone, fed by one feature with
  the recorded total and use, and the recorded farm use standing in for the selector and
  currentCount. The decisions that differ are listed, compared as data — the target and
  the write — never as the words of their reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sync.law.learn import Profile, learn
from sync.law.reasons import text
from sync.law.reconcile import Plan, reconcile
from sync.law.state import FarmRead, LimitKey, Memory, Observed, SourceState
from sync.licenses import Feature, Report
from sync.policy import FeatureRef, Policy, Pool
from sync.record import observation
from sync.record.observation import kept_clear
from sync.record.redact import MARK, selector_words
from sync.values.domain import Decision, LimitMemory, LimitState


class Against(NamedTuple):
    observed: Observed
    plan: Plan
    recorded_at: datetime  # when the recorded cycle ran
    blind: tuple[str, ...] = ()  # what the record cannot tell this policy (`blind_pools`)


def against(
    policy: Policy,
    recorded: Any,
    memory: Memory,
    at: datetime | None,
    profiles: Callable[[datetime], Mapping[str, Profile]],
) -> Against:
    """`policy` reconciled with the farm as a recorded cycle left it (`observation.dump`)
    and the memory the history keeps; at `at`, or when the next periodic cycle would run:
    an interval after the recorded one (a rise that waits its settle is due then, as in
    the service). `profiles`: the learned reserves at a time. `observation.RecordedError`
    if the record is not one."""
    observed, when, first_look = observation.load(recorded, users=selector_users(policy))
    now = at or when + timedelta(seconds=policy.interval)
    observed = replace(observed, profiles=profiles(now))
    plan = reconcile(policy, observed, replace(memory, first_look=first_look), now)
    return Against(observed, plan, when, blind_pools(policy, observed, kept_clear(recorded)))


def blind_pools(
    policy: Policy, observed: Observed, clear: frozenset[str] | None
) -> tuple[str, ...]:
    """Each pool whose farm_selector the recording did not keep hosts in clear by, and
    whose features it saw checked out on hashed hosts: whether those are the farm's, this
    policy's selector would say, but the history cannot (history.redact)."""
    if clear is None:
        return ()
    out = []
    for name, pool in policy.pools.items():
        sel = pool.farm_selector
        if sel is None or selector_words(sel.hosts, sel.users, sel.workers) <= clear:
            continue
        hashed = sum(
            c.count
            for ref in pool.features
            if ref.source in observed.sources
            for f in observed.sources[ref.source].report.feature(ref.feature, ref.vendor)
            for c in f.checkouts
            if (c.host or "").startswith(MARK)
        )
        if hashed:
            out.append(
                f"pool {name}: its farm_selector is new to this history, whose hosts outside "
                f"the selectors it ran with are hashed (history.redact): {hashed} license(s) "
                "checked out on such hosts count here as artists', whether or not the new "
                "selector would match them; its figures are known once the service runs "
                "this policy"
            )
    return tuple(out)


def selector_users(policy: Policy) -> set[str]:
    """The job creators the policy names (`user:` of `exempt` and `overrides`): a hashed
    creator in a redacted history is matched to them (sync/record/redact.py)."""
    return {
        s.user
        for pool in policy.pools.values()
        for s in (*pool.jobs.exempt, *pool.jobs.overrides)
        if s.user is not None
    }


@dataclass(frozen=True)
class Difference:
    at: str
    pool: str
    limit: str
    was_target: int | None
    was_new: int | None
    now_target: int | None
    now_new: int | None
    reason: str


@dataclass
class ReplayResult:
    decisions: int
    skipped: int
    differences: list[Difference]
    writes_before: int
    writes_after: int


def replay(
    rows: list[dict[str, Any]], policy: Policy, pool_filter: str | None = None
) -> ReplayResult:
    """Plan each recorded decision again under `policy`. Pure: rows in, result out."""
    memory: dict[LimitKey, LimitMemory] = {}
    last_good: dict[str, datetime] = {}
    learned = _Learner()
    diffs: list[Difference] = []
    n = skipped = before = after = 0
    for row in rows:
        pool = policy.pools.get(row["pool"])
        if pool_filter is not None and row["pool"] != pool_filter:
            continue
        if pool is None or row.get("current") is None:
            skipped += 1
            continue
        n += 1
        d = _again(row, policy, pool, memory, last_good, learned.profile(row, pool))
        before += row.get("new") is not None
        after += d.new is not None
        if (d.new, d.target) != (row.get("new"), row.get("target")):
            diffs.append(
                Difference(
                    row["at"],
                    row["pool"],
                    row["limit_ref"],
                    row.get("target"),
                    row.get("new"),
                    d.target,
                    d.new,
                    text(d.why),
                )
            )
    return ReplayResult(n, skipped, diffs, before, after)


def _again(
    row: dict[str, Any],
    policy: Policy,
    pool: Pool,
    memory: dict[LimitKey, LimitMemory],
    last_good: dict[str, datetime],
    profile: Profile | None = None,
) -> Decision:
    """One recorded decision planned again: what the cycle saw, with the new pool."""
    name, now = row["pool"], datetime.fromisoformat(row["at"])
    if row.get("status") == "ok" and row.get("in_use") is not None:
        feature = Feature(None, "replay", None, row["total"], row["in_use"])
        report = Report("replay", True, features=(feature,))
        last_good[name] = now
    else:
        report = Report("replay", False, errors=(f"recorded as {row.get('status')}",))
    # the recorded farm use stands in for the farm selector and currentCount
    # (a recorded farm use of 0 is a use of 0, not a missing one)
    recorded = row.get("farm_use")
    farm_use = int(recorded if recorded is not None else row.get("current_count") or 0)
    alone = pool.model_copy(
        update={
            "farm_selector": None,
            "limit": row["limit_ref"],
            "limits": [],
            "farm": row["farm_id"],
            "features": [FeatureRef(source="replay", feature="replay")],
        }
    )
    key = (row["farm_id"], row["limit_ref"])
    limit = LimitState(
        key[0], row.get("limit_id") or "limit-replay", "", key[1], int(row["current"]), farm_use
    )
    observed = Observed(
        {"replay": SourceState(report, last_good.get(name))},
        {key[0]: FarmRead(key[0], {key[1]: limit})},
        profiles={name: profile} if profile is not None else {},
    )
    # the pool alone, with its limit's memory alone: no other limit reads as departed
    planned = reconcile(
        policy.model_copy(update={"pools": {name: alone}}),
        observed,
        Memory({key: memory[key]} if key in memory else {}),
        now,
    )
    memory.update(planned.memory.limits)
    return planned.decisions[0]


class _Learner:
    """A learned reserve as the service would have had it: learned from the rows before
    each one, again once a replayed day."""

    def __init__(self) -> None:
        self.points: dict[str, list[tuple[datetime, int]]] = {}
        self.learned: dict[str, tuple[str, Profile]] = {}

    def profile(self, row: dict[str, Any], pool: Pool) -> Profile | None:
        name, spec = row["pool"], pool.reserve.learn
        at = datetime.fromisoformat(row["at"])
        day = at.date().isoformat()
        if spec is not None and self.learned.get(name, ("",))[0] != day:
            since = at - timedelta(weeks=spec.weeks)
            seen = [p for p in self.points.get(name, []) if p[0] >= since]
            self.learned[name] = (
                day,
                learn(seen, spec.drain, spec.quantile, spec.samples, pool.reserve.learned_tz),
            )
        if row.get("status") == "ok" and row.get("external") is not None:
            self.points.setdefault(name, []).append((at, int(row["external"])))
        return self.learned[name][1] if spec is not None else None
