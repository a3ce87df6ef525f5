"""The control law (docs/design.md). Pure: reports + farm state + policy + memory + `now` → plan.

Nothing here does I/O, reads a clock or the environment; `service.py` hands it all in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from sync.policy import LimitTarget, Policy, Pool, format_duration
from sync.report import Feature, Report

ACTIVE = "ACTIVE"
PAUSED = "STOP_LIMIT_USAGE_AND_COMPLETE_TASKS"


@dataclass(frozen=True, slots=True)
class Association:
    queue_id: str
    status: str


@dataclass(frozen=True, slots=True)
class LimitState:
    """A Deadline limit as last read, with its queue associations."""

    farm_id: str
    limit_id: str
    display_name: str
    amount: str
    max_count: int  # -1 = unlimited
    current_count: int
    associations: tuple[Association, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the service knows of a source this cycle."""

    report: Report  # this cycle's read (may be down)
    last_good: datetime | None  # when it was last read up
    last_good_report: Report | None = None


@dataclass(frozen=True, slots=True)
class LimitMemory:
    """What the planner carries from one cycle to the next for one limit."""

    rising: int = 0  # consecutive cycles the target stayed above maxCount
    paused: tuple[str, ...] = ()  # queues whose association we stopped


@dataclass(frozen=True, slots=True)
class Figures:
    total: int | None  # None: unlimited (uncounted)
    in_use: int
    farm_use: int
    farm_use_from: str  # "selector" | "currentCount"
    external: int
    reserve: int
    headroom: int


@dataclass(frozen=True, slots=True)
class Decision:
    pool: str
    farm_id: str
    limit_ref: str
    limit_id: str | None
    current: int | None  # maxCount now
    target: int | None  # what the law asks for
    new: int | None  # what to write; None = no write
    reason: str
    status: str = "ok"  # ok | stale | down | error
    pause: tuple[str, ...] = ()  # queue ids to set to STOP_LIMIT_USAGE_AND_COMPLETE_TASKS
    resume: tuple[str, ...] = ()  # queue ids to set back to ACTIVE
    current_count: int | None = None
    exhausted: bool = False  # the raw target was below 1: no license free for the farm

    @property
    def changes(self) -> bool:
        return self.new is not None or bool(self.pause) or bool(self.resume)


@dataclass(frozen=True, slots=True)
class PoolPlan:
    pool: str
    decisions: tuple[Decision, ...]
    figures: Figures | None
    lines: tuple[str, ...]  # the arithmetic, for `explain`
    status: str = "ok"


@dataclass(frozen=True)
class Plan:
    pools: dict[str, PoolPlan]
    memory: dict[tuple[str, str], LimitMemory] = field(default_factory=dict)

    @property
    def decisions(self) -> list[Decision]:
        return [d for p in self.pools.values() for d in p.decisions]

    @property
    def changes(self) -> list[Decision]:
        return [d for d in self.decisions if d.changes]


LimitLookup = Mapping[tuple[str, str], LimitState | str]  # (farm, ref) → state or error


def plan(
    policy: Policy,
    sources: Mapping[str, SourceState],
    limits: LimitLookup,
    memory: Mapping[tuple[str, str], LimitMemory],
    now: datetime,
) -> Plan:
    """Plan every pool of the policy."""
    pools: dict[str, PoolPlan] = {}
    new_memory: dict[tuple[str, str], LimitMemory] = {}
    for name, pool in policy.pools.items():
        pools[name] = plan_pool(
            name, pool, policy.default_farm, sources, limits, memory, now, new_memory
        )
    return Plan(pools, new_memory)


def _matching(report: Report, feature: str, vendor: str | None) -> list[Feature]:
    return [
        f
        for f in report.features
        if f.feature == feature and (vendor is None or f.vendor == vendor)
    ]


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def resolve_reserve(pool: Pool, total: int | None, now: datetime) -> tuple[int, str]:
    """The reserve in force at `now`, and where it came from."""
    value, source = pool.reserve.default, "default"
    for i, window in enumerate(pool.reserve.schedule):
        if window.active(now):
            value, source = (
                window.value,
                (f"schedule[{i}] {window.days} {window.hours} {window.tz}"),
            )
            break
    if isinstance(value, str):  # a percentage of the total
        pct = float(value.rstrip("% "))
        if total is None:
            return 0, f"{value} of an unlimited total ({source})"
        return math.ceil(total * pct / 100), f"{value} of {total} ({source})"
    return value, source


def plan_pool(
    name: str,
    pool: Pool,
    default_farm: str | None,
    sources: Mapping[str, SourceState],
    limits: LimitLookup,
    memory: Mapping[tuple[str, str], LimitMemory],
    now: datetime,
    new_memory: dict[tuple[str, str], LimitMemory],
) -> PoolPlan:
    targets = pool.targets(default_farm)
    lines: list[str] = [f"pool {name}"]

    # -- the limits ---------------------------------------------------------------------
    states: list[tuple[LimitTarget, LimitState | None, str | None]] = []
    for t in targets:
        assert t.farm is not None
        found = limits.get((t.farm, t.limit))
        if isinstance(found, LimitState):
            states.append((t, found, None))
        else:
            states.append((t, None, found or f"limit {t.limit!r} not read"))
    for t, _, _ in states:
        key = (t.farm or "", t.limit)
        new_memory[key] = memory.get(key, LimitMemory())

    # -- the sources --------------------------------------------------------------------
    features: list[Feature] = []
    failures: list[str] = []
    oldest_good: datetime | None = now
    for ref in pool.features:
        src = sources.get(ref.source)
        if src is None:
            failures.append(f"source {ref.source!r} was not read")
            oldest_good = None
            continue
        if not src.report.up:
            why = src.report.errors[0] if src.report.errors else "down"
            failures.append(f"source {ref.source!r} down: {why}")
            if src.last_good is None:
                oldest_good = None
            elif oldest_good is not None:
                oldest_good = min(oldest_good, src.last_good)
            continue
        matched = _matching(src.report, ref.feature, ref.vendor)
        if not matched:
            failures.append(f"feature {ref.feature!r} not in source {ref.source!r}")
            oldest_good = None
            continue
        errs = [f.error for f in matched if f.error]
        if errs and all(f.error for f in matched):
            failures.append(f"feature {ref.feature!r}: {errs[0]}")
            oldest_good = None
            continue
        features.extend(f for f in matched if not f.error)

    if failures:
        return _failed(name, pool, states, failures, oldest_good, now, lines, new_memory)

    # -- the arithmetic -----------------------------------------------------------------
    total: int | None = 0
    for f in features:
        ft = f.total if f.total is not None else pool.uncounted
        if ft is None or total is None:
            total = None
        else:
            total += ft
    in_use = sum(f.in_use for f in features)
    good = [s for _, s, _ in states if s is not None]
    selector = _selector(pool)
    if selector is not None:
        farm_use = sum(
            c.count for f in features for c in f.checkouts if selector(c.host or "", c.user or "")
        )
        farm_from = "selector"
    else:
        farm_use = sum(max(0, s.current_count) for s in good)
        farm_from = "currentCount"
    external = max(0, in_use - farm_use)
    reserve, reserve_from = resolve_reserve(pool, total, now)
    figures = Figures(total, in_use, farm_use, farm_from, external, reserve, pool.headroom)

    total_txt = "unlimited (uncounted)" if total is None else str(total)
    lines.append(
        f"  total     = {total_txt}"
        + (f"  (Σ {len(features)} features)" if len(features) > 1 else "")
    )
    lines.append(f"  in_use    = {in_use}")
    lines.append(f"  farm_use  = {farm_use}  (from {farm_from})")
    lines.append(f"  external  = max(0, {in_use} − {farm_use}) = {external}")
    lines.append(f"  reserve   = {reserve}  ({reserve_from})")
    lines.append(f"  headroom  = {pool.headroom}")

    if total is None:
        free: float = math.inf
        lines.append("  free      = unlimited")
    else:
        free = total - external - reserve - pool.headroom
        lines.append(f"  free      = {total} − {external} − {reserve} − {pool.headroom} = {free:g}")

    raw = _split(free, states, lines)
    decisions = []
    for (t, st, err), raw_target in zip(states, raw, strict=True):
        key = (t.farm or "", t.limit)
        if st is None:
            decisions.append(_unreadable(name, t, f"{err}; nothing written"))
            lines.append(f"  {t.limit}: {err}")
            continue
        d, mem = _decide(
            name, pool, t, st, raw_target, total, memory.get(key, LimitMemory()), lines
        )
        new_memory[key] = mem
        decisions.append(d)
    status = "error" if any(d.status == "error" for d in decisions) else "ok"
    return PoolPlan(name, tuple(decisions), figures, tuple(lines), status)


def _selector(pool: Pool):  # type: ignore[no-untyped-def]
    sel = pool.farm_selector
    if sel is None or not (sel.hosts or sel.users):
        return None
    hosts = _compiled(tuple(sel.hosts))
    users = _compiled(tuple(sel.users))

    def match(host: str, user: str) -> bool:
        return bool((hosts and hosts.match(host)) or (users and users.match(user)))

    return match


def _split(
    free: float, states: list[tuple[LimitTarget, LimitState | None, str | None]], lines: list[str]
) -> list[float]:
    """Each limit's raw target: its own use plus its share of what nobody uses."""
    if len(states) == 1:
        return [free]
    uses = [max(0, s.current_count) if s is not None else 0 for _, s, _ in states]
    remainder = free - sum(uses)
    lines.append(
        f"  remainder = {free:g} − Σ farm uses {sum(uses)} = {remainder:g}, split by share"
    )
    if math.isinf(remainder):
        return [math.inf] * len(states)
    remainder = max(0.0, remainder)
    weights = [t.share for t, _, _ in states]
    exact = [remainder * w / sum(weights) for w in weights]
    shares = [math.floor(x) for x in exact]
    # largest remainders first, so the integers still add up to the whole
    left = int(remainder) - sum(shares)
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)[:left]:
        shares[i] += 1
    for (t, _, _), use, share in zip(states, uses, shares, strict=True):
        lines.append(f"  {t.limit}: own use {use} + share {share} (weight {t.share:g})")
    return [use + share for use, share in zip(uses, shares, strict=True)]


def _decide(
    name: str,
    pool: Pool,
    t: LimitTarget,
    st: LimitState,
    raw: float,
    total: int | None,
    mem: LimitMemory,
    lines: list[str],
) -> tuple[Decision, LimitMemory]:
    cur = st.max_count
    exhausted = raw < 1
    upper = pool.ceiling if pool.ceiling is not None else None
    if total is not None:
        upper = total if upper is None else min(upper, total)
    if math.isinf(raw):
        target = upper if upper is not None else -1
    else:
        target = int(raw)
        if upper is not None:
            target = min(target, upper)
        target = max(target, pool.floor)
        if upper is not None:  # a floor above the pool's total yields to the total
            target = min(target, max(1, upper))
    clamp = (
        f"clamp({'∞' if math.isinf(raw) else f'{raw:g}'}, floor {pool.floor}, "
        f"ceiling {pool.ceiling if pool.ceiling is not None else '—'}"
        f"{f', total {total}' if total is not None else ''}) = "
        f"{'unlimited' if target == -1 else target}"
    )
    lines.append(f"  {t.limit}: target = {clamp}")

    pause: tuple[str, ...] = ()
    resume: tuple[str, ...] = ()
    status = {a.queue_id: a.status for a in st.associations}
    # a queue we stopped stays ours until it reads ACTIVE again, from a STOP status or from
    # STOPPED (the service moves it there); one whose association was deleted is gone
    paused = tuple(q for q in mem.paused if status.get(q, ACTIVE) != ACTIVE)
    if exhausted:
        if pool.on_exhausted == "pause":
            pause = tuple(a.queue_id for a in st.associations if a.status == ACTIVE)
            paused = tuple(sorted(set(paused) | set(pause)))
            target = pool.floor if upper is None else max(1, min(pool.floor, upper))
        else:  # hold_one: one license's worth (the floor, 1 unless the policy says more)
            target = pool.floor if upper is None else max(1, min(pool.floor, upper))
    elif paused:
        resume = paused  # licenses are back: reopen only the queues we stopped ourselves

    new: int | None
    rising = 0
    if cur == target:
        new, why = None, f"maxCount {_fmt(cur)} is already the target"
    elif cur == -1 or (target != -1 and target < cur):
        if cur != -1 and cur - target < pool.hysteresis.deadband and not exhausted:
            new, why = (
                None,
                (
                    f"decrease {cur} → {target} is within the deadband "
                    f"{pool.hysteresis.deadband}; kept"
                ),
            )
        else:
            new, why = target, f"decrease {_fmt(cur)} → {_fmt(target)} applied at once"
    else:  # an increase (target may be -1: unlimited)
        step = target - cur if target != -1 else math.inf
        rising = mem.rising + 1
        if step < pool.hysteresis.deadband:
            new, why, rising = (
                None,
                (
                    f"increase {cur} → {target} is within the deadband "
                    f"{pool.hysteresis.deadband}; kept"
                ),
                0,
            )
        elif rising < pool.hysteresis.settle:
            new, why = (
                None,
                (
                    f"increase {cur} → {_fmt(target)} waits: held "
                    f"{rising}/{pool.hysteresis.settle} cycles"
                ),
            )
        else:
            max_step = pool.hysteresis.max_step
            if max_step is not None and step > max_step:
                new, why = (
                    cur + max_step,
                    (
                        f"increase {cur} → {_fmt(target)} limited to "
                        f"+{max_step} this cycle: {cur + max_step}"
                    ),
                )
            else:
                new, why = target, f"increase {cur} → {_fmt(target)} after {rising} cycles"
    if exhausted:
        what = "queues paused" if pool.on_exhausted == "pause" else "held at 1"
        why = f"licenses exhausted (raw target {raw:g} < 1): {what}; " + why
        if pause:
            why += f"; pausing {len(pause)} queue association(s)"
    if resume:
        why += f"; licenses back: resuming {len(resume)} queue association(s)"
    if new is not None and new == cur:
        new = None
    lines.append(
        f"  {t.limit}: maxCount {_fmt(cur)} → "
        f"{_fmt(new) if new is not None else 'unchanged'}: {why}"
    )
    d = Decision(
        name,
        t.farm or "",
        t.limit,
        st.limit_id,
        cur,
        target,
        new,
        why,
        "ok",
        pause,
        resume,
        st.current_count,
        exhausted,
    )
    # a rise cut short by max_step goes on next cycle without settling again
    still_rising = new is None or (new != target and target > (new or 0)) or target == -1
    return d, LimitMemory(rising=rising if still_rising else 0, paused=paused)


def _unreadable(pool: str, t: LimitTarget, why: str) -> Decision:
    """The decision for a limit that could not be read: an error, nothing written."""
    return Decision(pool, t.farm or "", t.limit, None, None, None, None, why, status="error")


def _fmt(v: int | None) -> str:
    return "unlimited" if v == -1 else str(v)


def _failed(
    name: str,
    pool: Pool,
    states: list[tuple[LimitTarget, LimitState | None, str | None]],
    failures: list[str],
    last_good: datetime | None,
    now: datetime,
    lines: list[str],
    new_memory: dict[tuple[str, str], LimitMemory],
) -> PoolPlan:
    """A source failed: hold, or fall to the floor once stale. Never raise."""
    age = (now - last_good).total_seconds() if last_good is not None else math.inf
    stale = pool.on_stale == "floor" or age >= pool.stale_after
    since = "never read" if last_good is None else f"last good {format_duration(int(age))} ago"
    lines.extend(f"  {f}" for f in failures)
    decisions = []
    for t, st, err in states:
        key = (t.farm or "", t.limit)
        new_memory[key] = replace(new_memory.get(key, LimitMemory()), rising=0)
        if st is None:
            decisions.append(_unreadable(name, t, f"{'; '.join(failures)}; {err}"))
            continue
        cur = st.max_count
        if stale and (cur == -1 or cur > pool.floor):
            new: int | None = pool.floor
            why = (
                f"{'; '.join(failures)} ({since}, stale after "
                f"{format_duration(pool.stale_after)}): falling to floor {pool.floor}"
            )
        else:
            new = None
            why = f"{'; '.join(failures)} ({since}): holding maxCount {_fmt(cur)}" + (
                f" until stale after {format_duration(pool.stale_after)}"
                if not stale
                else " (at or below floor)"
            )
        lines.append(f"  {t.limit}: {why}")
        decisions.append(
            Decision(
                name,
                t.farm or "",
                t.limit,
                st.limit_id,
                cur,
                pool.floor if stale else cur,
                new,
                why,
                "stale" if stale else "down",
                current_count=st.current_count,
            )
        )
    return PoolPlan(name, tuple(decisions), None, tuple(lines), "stale" if stale else "down")
