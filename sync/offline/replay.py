"""`license-sync replay`: re-plan recorded observations with another policy.

The what-if a TD runs before merging a policy change: every decision in the history is
planned again from what that cycle saw (total, in use, the farm's use, the limit's
maxCount), with the new policy's pool, and the decisions that differ are listed. They
are compared as data — the target and the write — never as the words of their reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sync.domain import Decision, LimitMemory, LimitState
from sync.law.learn import Profile, learn
from sync.law.limits import plan_pool
from sync.law.reasons import text
from sync.law.state import SourceState
from sync.licenses import Feature, Report
from sync.policy import FeatureRef, Policy, Pool


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
    memory: dict[tuple[str, str], LimitMemory] = {}
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
        d = _again(row, pool, memory, last_good, learned.profile(row, pool))
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
    pool: Pool,
    memory: dict[tuple[str, str], LimitMemory],
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
    replay_pool = pool.model_copy(
        update={
            "farm_selector": None,
            "limit": row["limit_ref"],
            "limits": [],
            "farm": row["farm_id"],
            "features": [FeatureRef(source="replay", feature="replay")],
        }
    )
    limit = LimitState(
        row["farm_id"],
        row.get("limit_id") or "limit-replay",
        "",
        row["limit_ref"],
        int(row["current"]),
        farm_use,
    )
    pp, new_memory = plan_pool(
        name,
        replay_pool,
        row["farm_id"],
        {"replay": SourceState(report, last_good.get(name))},
        {(row["farm_id"], row["limit_ref"]): limit},
        memory,
        now,
        profile,
    )
    memory.update(new_memory)
    return pp.decisions[0]


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
