"""The control law for limits (docs/design.md, "The control law"). Pure.

Reports + limits as read + policy + memory + `now` → each limit's decision. Nothing here
does I/O, reads a clock or the environment, or writes prose: reasons are data
(`domain.Reason`), the arithmetic is kept as figures for `explain` to render.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from sync.law.learn import Profile, reserve_at
from sync.law.state import LimitKey, LimitMemories, SourceState
from sync.licenses import Feature
from sync.policy import Hysteresis, LimitTarget, Policy, Pool
from sync.values.domain import (
    ACTIVE,
    STOPPED,
    Association,
    Decision,
    Figures,
    Holding,
    LimitMemory,
    LimitState,
    Reason,
    RunningTask,
    Stamp,
    Why,
    short_host,
)

LimitLookup = Mapping[LimitKey, LimitState | str]  # (farm, ref) → state or why not


class PreemptPlan(Protocol):
    """What `requeues` needs of a decision to preempt (`reconcile.Requeue`)."""

    @property
    def target(self) -> int: ...
    @property
    def tasks(self) -> int: ...
    @property
    def younger_than(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Split:
    """One limit's part of a pool shared over several limits."""

    limit_ref: str
    use: int  # its own farm use
    share: int  # its part of what nobody uses
    weight: float


@dataclass(frozen=True, slots=True)
class PoolPlan:
    pool: str
    decisions: tuple[Decision, ...]
    figures: Figures | None  # None: a source failed, nothing computed
    free: float | None = None  # total − external − reserve − headroom (inf: unlimited)
    splits: tuple[Split, ...] = ()
    raw: tuple[float, ...] = ()  # each decision's unclamped target
    reserve_from: str = ""
    failures: Why = ()
    status: str = "ok"


@dataclass(frozen=True)
class LimitPlan:
    pools: dict[str, PoolPlan]
    memory: dict[tuple[str, str], LimitMemory]

    @property
    def decisions(self) -> list[Decision]:
        return [d for p in self.pools.values() for d in p.decisions]


def plan(
    policy: Policy,
    sources: Mapping[str, SourceState],
    limits: LimitLookup,
    memory: LimitMemories,
    now: datetime,
    profiles: Mapping[str, Profile] | None = None,
    workers: Collection[str] = frozenset(),
) -> LimitPlan:
    """Every pool of the policy; memory for limits the policy no longer names is dropped.
    `profiles`: the learned reserve's profile of each pool that learns one."""
    pools: dict[str, PoolPlan] = {}
    new_memory: dict[tuple[str, str], LimitMemory] = {}
    for name, pool in policy.pools.items():
        profile = (profiles or {}).get(name)
        pp, mem = plan_pool(
            name,
            pool,
            policy.default_farm,
            sources,
            limits,
            memory,
            now,
            profile,
            workers,
            policy.interval,
        )
        pools[name] = pp
        new_memory.update(mem)
    return LimitPlan(pools, new_memory)


Target = tuple[LimitTarget, LimitState | None, str | None]  # a limit, as read or why not
Pace = tuple[datetime, float]  # the cycle's time, and the interval of the periodic ones
Rise = tuple[datetime | None, datetime | None]  # a rise wanted since, and its last step
# a periodic cycle comes an interval after the last, give or take the scheduler's delay:
# a tenth of an interval early still counts as one
JITTER = 0.1


def plan_pool(
    name: str,
    pool: Pool,
    default_farm: str | None,
    sources: Mapping[str, SourceState],
    limits: LimitLookup,
    memory: LimitMemories,
    now: datetime,
    profile: Profile | None = None,
    workers: Collection[str] = frozenset(),
    interval: float = 60.0,
) -> tuple[PoolPlan, dict[tuple[str, str], LimitMemory]]:
    """One pool's decisions, and the memory of its limits for the next cycle. `workers`:
    the farms' workers' hosts, for a farm_selector with `workers: true`; `interval`: the
    periodic cycles' (an increase's settle and max_step are times: `_step`)."""
    targets: list[Target] = []
    for t in pool.targets(default_farm):
        found = limits.get(t.key)
        if isinstance(found, LimitState):
            targets.append((t, found, None))
        else:
            targets.append((t, None, found or f"limit {t.limit!r} not read"))
    features, failures, last_good = pool_features(pool, sources, now)
    if failures:
        return _failed(name, pool, targets, failures, last_good, now, memory)
    figures, reserve_from = _figures(pool, features, targets, now, profile, workers)
    around = figures.undeclared
    figures = _with_waiting(_confirmed_around(figures, targets, memory), pool, sources)
    seen = figures.external
    figures, held = _held_external(figures, targets, memory)
    free = (
        math.inf
        if figures.total is None
        else float(
            figures.total - figures.external - figures.undeclared - figures.reserve - pool.headroom
        )
    )
    raw, splits = _split(free, targets)
    decisions, new_memory = [], {}
    for (t, st, err), raw_target in zip(targets, raw, strict=True):
        key = t.key
        if st is None:
            decisions.append(_unreadable(name, t, (_unread(err),)))
            new_memory[key] = memory.get(key, LimitMemory())
            continue
        d, mem = _decide(name, pool, st, t, raw_target, figures.total, memory, (now, interval))
        if held:
            d, mem = _unconfirmed(d, mem, memory.get(key, LimitMemory()), held[0])
        external = seen if figures.farm_use_from == "currentCount" else None
        new_memory[key] = replace(mem, external=external, undeclared=around)
        decisions.append(d)
    decisions = [_preempting(pool, figures, d) for d in decisions]
    status = "error" if any(d.status == "error" for d in decisions) else "ok"
    pp = PoolPlan(name, tuple(decisions), figures, free, splits, tuple(raw), reserve_from)
    return replace(pp, status=status), new_memory


def pool_features(
    pool: Pool, sources: Mapping[str, SourceState], now: datetime
) -> tuple[list[Feature], list[Reason], datetime | None]:
    """The pool's features as read, or why they could not be, and the oldest good read."""
    features: list[Feature] = []
    failures: list[Reason] = []
    oldest_good: datetime | None = now
    for ref in pool.features:
        src = sources.get(ref.source)
        if src is None:
            failures.append(Reason.of("source_not_read", source=ref.source))
            oldest_good = None
            continue
        if not src.report.up:
            why = src.report.errors[0] if src.report.errors else "down"
            down = Reason.of("source_down", source=ref.source, error=why)
            failures += [down] if down not in failures else []  # once for two features
            if src.last_good is None or oldest_good is None:
                oldest_good = None
            else:
                oldest_good = min(oldest_good, src.last_good)
            continue
        matched = src.report.feature(ref.feature, ref.vendor)
        good = [f for f in matched if not f.error]
        if not matched:
            failures.append(Reason.of("feature_missing", feature=ref.feature, source=ref.source))
        elif not good:
            failures.append(Reason.of("feature_error", feature=ref.feature, error=matched[0].error))
        features.extend(good)
        if not good:
            oldest_good = None
    return features, failures, oldest_good


def _figures(
    pool: Pool,
    features: list[Feature],
    targets: list[Target],
    now: datetime,
    profile: Profile | None,
    workers: Collection[str] = frozenset(),
) -> tuple[Figures, str]:
    total = _total(pool, features)
    in_use = sum(f.in_use for f in features)
    farm_use, farm_from, undeclared = _farm_use(pool, features, targets, workers)
    external = max(0, in_use - farm_use)
    reserve, reserve_from = resolve_reserve(pool, total, now, profile)
    queued = sum(f.queued for f in features)
    figures = Figures(
        total,
        in_use,
        farm_use,
        farm_from,
        external,
        reserve,
        pool.headroom,
        queued,
        undeclared=undeclared,
    )
    return figures, reserve_from


def _total(pool: Pool, features: list[Feature]) -> int | None:
    """The licenses the pool's features issue; None when one is uncounted and the policy
    gives no number for it (`uncounted`)."""
    total: int | None = 0
    for f in features:
        ft = f.total if f.total is not None else pool.uncounted
        total = None if ft is None or total is None else total + ft
    return total


def _farm_use(
    pool: Pool, features: list[Feature], targets: list[Target], workers: Collection[str]
) -> tuple[int, str, int]:
    """What the farm holds, where that figure comes from, and its use around the limits."""
    selector = farm_selector(pool, workers)
    if selector is not None:
        farm_use = sum(
            c.count for f in features for c in f.checkouts if selector(c.host or "", c.user or "")
        )
        return farm_use, "selector", _undeclared(farm_use, targets)
    states = [st for _, st, _ in targets if st is not None]
    if all(st.held is not None for st in states):
        # what running tasks hold now: a farm's burst of checkouts is the farm's at once
        return sum(st.held or 0 for st in states), "acquiredLimits", 0
    return sum(max(0, st.current_count) for st in states), "currentCount", 0


def _undeclared(farm_use: int, targets: list[Target]) -> int:
    """What the farm's hosts hold beyond what the pool's limits count (docs/design.md,
    "Use around the limit"): less what their tasks hold now (acquiredLimits) where that
    was read for every limit; else only what no limit could have admitted (beyond
    max(maxCount, currentCount)), so a currentCount that lags a burst never invents it."""
    states = [st for _, st, _ in targets if st is not None]
    if states and all(st.held is not None for st in states):
        return max(0, farm_use - sum(st.held or 0 for st in states))
    if not states or any(st.max_count == -1 for st in states):
        return 0
    return max(0, farm_use - sum(max(st.max_count, st.current_count) for st in states))


def _confirmed_around(figures: Figures, targets: list[Target], memory: LimitMemories) -> Figures:
    """Use around the limits as two reads in a row show it at the least: a run that has
    ended may hold its license a moment longer, and one read would take it from the
    limit; use that stays is taken by the second cycle (docs/design.md, "Use around the
    limit")."""
    last = [memory.get(t.key, LimitMemory()).undeclared for t, _, _ in targets]
    before = min((x or 0 for x in last), default=0)
    seen = figures.undeclared
    return replace(figures, undeclared=min(seen, before), undeclared_seen=seen)


def _with_waiting(figures: Figures, pool: Pool, sources: Mapping[str, SourceState]) -> Figures:
    """Artists the server's log refused lately and has not served since want a license
    as surely as those holding one: they count as external use, and as someone refused
    now (docs/design.md, "Denials in the law")."""
    waiting = sum(
        state.waiting.get(ref.feature, 0)
        for ref in pool.features
        if (state := sources.get(ref.source)) is not None
    )
    if not waiting:
        return figures
    return replace(figures, external=figures.external + waiting, waiting=waiting)


def _held_external(
    figures: Figures, targets: list[Target], memory: LimitMemories
) -> tuple[Figures, tuple[Reason, ...]]:
    """Without a farm_selector the farm's use is currentCount, which Deadline updates
    late: the farm's own burst of checkouts reads as external use for a cycle. So a rise
    of external use above the last read counts only as far as the farm cannot explain it
    (what is in use beyond what its limits let it hold) until a second read shows it, or
    at once when the server queues a checkout. docs/design.md, "The control law"."""
    if figures.farm_use_from != "currentCount" or figures.queued or figures.waiting:
        return figures, ()
    before = [
        m.external
        for t, _, _ in targets
        if (m := memory.get(t.key)) is not None and m.external is not None
    ]
    if not before or figures.external <= min(before):
        return figures, ()
    # what the farm may hold under its limits; one unlimited or unread: anything at all
    caps = [
        max(st.max_count, st.current_count) if st and st.max_count != -1 else -1
        for _, st, _ in targets
    ]
    sure = 0 if -1 in caps else max(0, figures.in_use - sum(caps))
    held = min(figures.external, max(min(before), sure))
    why = Reason.of("external_held", read=figures.external, held=held)
    return replace(figures, external=held), (why,)


def _unconfirmed(
    d: Decision, mem: LimitMemory, before: LimitMemory, why: Reason
) -> tuple[Decision, LimitMemory]:
    """A decision made on an external use not yet confirmed: it may come down, never go
    up or resume a queue, and the rise's settle count stands still."""
    rise = d.new == -1 or (d.new is not None and d.current not in (None, -1) and d.new > d.current)
    if rise:
        d, mem = (
            replace(d, new=None),
            replace(mem, rising_since=before.rising_since, stepped_at=before.stepped_at),
        )
    if d.resume:  # the queues stay in memory as paused until a read shows them ACTIVE
        d = replace(d, resume=())
    return replace(d, why=(why, *d.why)), mem


def resolve_reserve(
    pool: Pool, total: int | None, now: datetime, profile: Profile | None = None
) -> tuple[int, str]:
    """The reserve in force at `now`, and where it came from: the static reserve (or its
    schedule), raised to the learned one where the pool learns and the profile knows."""
    static, source = _static_reserve(pool, total, now)
    learn = pool.reserve.learn
    if learn is None:
        return static, source
    if profile is None:
        return static, f"{source}; learned: no history read yet"
    learned, why = reserve_at(profile, now)
    if learned is None:
        return static, f"{source}; learned: {why}"
    learned = max(learn.min, learned if learn.max is None else min(learned, learn.max))
    if learned <= static:
        return static, f"{source}; learned {learned} ({why})"
    return learned, f"learned: {why}; static {static} ({source})"


def _static_reserve(pool: Pool, total: int | None, now: datetime) -> tuple[int, str]:
    value, source = pool.reserve.default, "default"
    for i, window in enumerate(pool.reserve.schedule):
        if window.active(now):
            value, source = window.value, f"schedule[{i}] {window.days} {window.hours} {window.tz}"
            break
    if isinstance(value, str):  # a percentage of the total
        pct = float(value.rstrip("% "))
        if total is None:
            return 0, f"{value} of an unlimited total ({source})"
        return math.ceil(total * pct / 100), f"{value} of {total} ({source})"
    return value, source


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def farm_selector(
    pool: Pool, workers: Collection[str] = frozenset()
) -> Callable[[str, str], bool] | None:
    """Whether a checkout (host, user) is the farm's, or None: count by currentCount.
    `workers`: the farms' workers' hosts (short names and IPv4 addresses), for a
    selector with `workers: true`."""
    sel = pool.farm_selector
    if sel is None or not (sel.hosts or sel.users or sel.workers):
        return None
    hosts = _compiled(tuple(sel.hosts))
    users = _compiled(tuple(sel.users))
    ours = workers if sel.workers else frozenset()

    def match(host: str, user: str) -> bool:
        return bool(
            (hosts and hosts.match(host))
            or (users and users.match(user))
            or (ours and short_host(host) in ours)
        )

    return match


def apportion(whole: int, weights: Sequence[float]) -> list[int]:
    """`whole` in integer parts by `weights` (each above 0), largest remainders first, so
    the parts still add up to the whole."""
    exact = [whole * w / sum(weights) for w in weights]
    parts = [math.floor(x) for x in exact]
    left = whole - sum(parts)
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - parts[i], reverse=True)[:left]:
        parts[i] += 1
    return parts


def _split(free: float, targets: list[Target]) -> tuple[list[float], tuple[Split, ...]]:
    """Each limit's raw target: its own use plus its share of what nobody uses."""
    if len(targets) == 1:
        return [free], ()
    uses = [max(0, st.current_count) if st is not None else 0 for _, st, _ in targets]
    remainder = free - sum(uses)
    if math.isinf(remainder):
        return [math.inf] * len(targets), ()
    shares = apportion(int(max(0.0, remainder)), [t.share for t, _, _ in targets])
    splits = tuple(
        Split(t.limit, use, share, t.share)
        for (t, _, _), use, share in zip(targets, uses, shares, strict=True)
    )
    return [float(use + share) for use, share in zip(uses, shares, strict=True)], splits


def _upper(pool: Pool, total: int | None) -> int | None:
    """The most a target may be: the ceiling and the pool's total, if either is set."""
    if total is None:
        return pool.ceiling
    return total if pool.ceiling is None else min(pool.ceiling, total)


def clamp(pool: Pool, raw: float, total: int | None) -> int:
    """The raw target within floor, ceiling and the pool's total (-1: unlimited)."""
    upper = _upper(pool, total)
    if math.isinf(raw):
        return upper if upper is not None else -1
    target = max(int(raw) if upper is None else min(int(raw), upper), pool.floor)
    if upper is not None:  # a floor above the pool's total yields to the total
        target = min(target, max(1, upper))
    return target


def _decide(
    name: str,
    pool: Pool,
    st: LimitState,
    t: LimitTarget,
    raw: float,
    total: int | None,
    memory: LimitMemories,
    pace: Pace,
) -> tuple[Decision, LimitMemory]:
    mem = memory.get(t.key, LimitMemory())
    exhausted = raw < 1
    target = clamp(pool, raw, total)
    if exhausted:  # one license's worth (the floor, 1 unless the policy says more)
        upper = _upper(pool, total)
        target = pool.floor if upper is None else max(1, min(pool.floor, upper))
    pause, resume, paused = _queues(pool, st, mem, exhausted)
    new, why, rise = _step(pool, st.max_count, target, mem, exhausted, pace)
    if taken := taken_by_people(mem, st.associations):
        why += (Reason.of("queues_taken", queues=", ".join(taken)),)
    new = None if new == st.max_count else new
    if exhausted:
        why = (Reason.of("exhausted", raw=raw, action=pool.on_exhausted), *why)
    if pause:
        why += (Reason.of("pausing", queues=len(pause)),)
    if resume:
        why += (Reason.of("resuming", queues=len(resume)),)
    d = Decision(
        name,
        t.farm_id,
        t.limit,
        st.limit_id,
        st.max_count,
        target,
        new,
        why,
        "ok",
        pause,
        resume,
        st.current_count,
        exhausted,
    )
    # a rise cut short by max_step goes on without settling again
    still_rising = new is None or (new != target and target > new) or target == -1
    since, stepped = rise if still_rising else (None, None)
    return d, LimitMemory(
        paused, stamps=mem.stamps_of(paused), rising_since=since, stepped_at=stepped
    )


def _preempting(pool: Pool, fig: Figures, d: Decision) -> Decision:
    """With `preempt` on: when artists are refused now (the server queues checkouts) or
    about to be (fewer licenses free than the reserve and the headroom keep: an artist took
    one kept against the race), and the farm may hold more than its
    target, requeue its youngest tasks — licenses otherwise come back only as tasks end.
    How many is an estimate here (currentCount is delayed); the sessions API says what the
    farm really holds when the requeues are chosen (`requeues`)."""
    p = pool.preempt
    if not p.enabled or fig.total is None or d.target is None or d.current_count is None:
        return d  # off, an uncounted pool (its target is unlimited), or a limit not read
    free = fig.total - fig.in_use
    if fig.queued == 0 and fig.waiting == 0 and free >= fig.reserve + pool.headroom:
        return d
    held = max(d.current_count, fig.farm_use if fig.farm_use_from != "currentCount" else 0)
    # a limit lowered under running tasks lets them finish: the farm may hold up to it
    # (an unlimited one, -1, lets it hold what it holds)
    could = max(held, d.current or 0)
    if could <= d.target:
        return d
    n = min(p.max_per_cycle, max(1, held - d.target))
    why = Reason.of("preempting", tasks=n, queued=fig.queued, free=free, reserve=fig.reserve)
    return replace(d, preempt=n, why=(*d.why, why))


def _queues(
    pool: Pool, st: LimitState, mem: LimitMemory, exhausted: bool
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(queues to pause, queues to resume, queues ours after this cycle)."""
    # a queue we stopped stays ours until it reads ACTIVE again, from a STOP status or from
    # STOPPED (the service moves it there), or a person writes it after us
    paused = still_ours(mem, st.associations)
    if exhausted and pool.on_exhausted == "pause":
        pause = tuple(a.queue_id for a in st.associations if a.status == ACTIVE)
        return pause, (), tuple(sorted(set(paused) | set(pause)))
    if not exhausted and paused:
        return (), paused, paused  # licenses are back: reopen only the queues we stopped
    return (), (), paused


def still_ours(mem: LimitMemory, associations: Collection[Association]) -> tuple[str, ...]:
    """The queues we paused that are still stopped and were last written by us: one whose
    association is gone or reads ACTIVE is not ours to reopen, nor one a person wrote
    after our pause (`taken_by_people`)."""
    status = {a.queue_id: a.status for a in associations}
    taken = taken_by_people(mem, associations)
    return tuple(q for q in mem.paused if status.get(q, ACTIVE) != ACTIVE and q not in taken)


def taken_by_people(mem: LimitMemory, associations: Collection[Association]) -> tuple[str, ...]:
    """Queues we paused whose association someone else wrote after us: theirs now. Only
    a caller sets ACTIVE or a STOP status and only the service sets STOPPED, so a stamp
    read on STOPPED is never a person's (docs/design.md, "Paused queues")."""
    ours = dict(mem.stamps)
    return tuple(
        a.queue_id
        for a in associations
        if a.queue_id in ours
        and a.updated is not None
        and a.status != STOPPED
        and taken_over(ours[a.queue_id], a.updated)
    )


def taken_over(ours: Stamp, now: Stamp) -> bool:
    """Someone else wrote after us: updatedBy not ours and updatedAt after our write."""
    return now[1] != ours[1] and datetime.fromisoformat(now[0]) > datetime.fromisoformat(ours[0])


def _step(
    pool: Pool, cur: int, target: int, mem: LimitMemory, exhausted: bool, pace: Pace
) -> tuple[int | None, Why, Rise]:
    """(maxCount to write or None, why, the rise's memory: since when it is wanted and
    when it last stepped). Settle and max_step are times (docs/design.md, "Hysteresis")."""
    hy = pool.hysteresis
    numbers = {"current": cur, "target": target}
    if cur == target:
        return None, (Reason.of("at_target", current=cur),), (None, None)
    if cur == -1 or (target != -1 and target < cur):
        if cur != -1 and cur - target < hy.deadband and not exhausted:
            why = Reason.of("decrease_in_deadband", **numbers, deadband=hy.deadband)
            return None, (why,), (None, None)
        return target, (Reason.of("decrease", **numbers),), (None, None)
    step = target - cur if target != -1 else math.inf
    if step < hy.deadband:
        why = Reason.of("increase_in_deadband", **numbers, deadband=hy.deadband)
        return None, (why,), (None, None)
    return _rise(hy, numbers, step, mem, pace)


def _rise(
    hy: Hysteresis, numbers: dict[str, int], step: float, mem: LimitMemory, pace: Pace
) -> tuple[int | None, Why, Rise]:
    """An increase of `step` past the deadband: it waits its settle, then goes up by at
    most max_step an interval, however many cycles run in it."""
    cur, target = numbers["current"], numbers["target"]
    now, interval = pace
    since = mem.rising_since or now
    wanted, settle = (now - since).total_seconds(), hy.settle_seconds(interval)
    rise = (since, mem.stepped_at)
    early = JITTER * interval if isinstance(hy.settle, int) else 0.0  # counted in cycles
    if wanted < settle - early:
        return None, (Reason.of("increase_waits", **numbers, wanted=wanted, settle=settle),), rise
    if hy.max_step is not None and step > hy.max_step:
        last = mem.stepped_at
        if last is not None and (now - last).total_seconds() < (1 - JITTER) * interval:
            why = Reason.of("increase_paced", **numbers, max_step=hy.max_step, interval=interval)
            return None, (why,), rise
        why = Reason.of("increase_limited", **numbers, max_step=hy.max_step)
        return cur + hy.max_step, (why,), (since, now)
    return target, (Reason.of("increase", **numbers, wanted=wanted),), (since, now)


def _unread(err: str | None) -> Reason:
    return Reason.of("limit_unreadable", error=err or "not read")


def _unreadable(pool: str, t: LimitTarget, why: Why) -> Decision:
    """The decision for a limit that could not be read: an error, nothing written."""
    why = (*why, Reason.of("nothing_written"))
    return Decision(pool, t.farm_id, t.limit, None, None, None, None, why, status="error")


def _failed(
    name: str,
    pool: Pool,
    targets: list[Target],
    failures: list[Reason],
    last_good: datetime | None,
    now: datetime,
    memory: LimitMemories,
) -> tuple[PoolPlan, dict[tuple[str, str], LimitMemory]]:
    """A source failed: hold, or fall to the floor once stale. Never raise."""
    age = (now - last_good).total_seconds() if last_good is not None else None
    stale = pool.on_stale == "floor" or age is None or age >= pool.stale_after
    decisions, new_memory = [], {}
    for t, st, err in targets:
        key = t.key
        new_memory[key] = replace(
            memory.get(key, LimitMemory()), rising_since=None, stepped_at=None, external=None
        )
        if st is None:
            decisions.append(_unreadable(name, t, (*failures, _unread(err))))
            continue
        cur = st.max_count
        if stale and (cur == -1 or cur > pool.floor):
            new: int | None = pool.floor
            hold = Reason.of("to_floor", age=age, stale_after=pool.stale_after, floor=pool.floor)
        else:
            new = None
            hold = Reason.of(
                "holding", age=age, current=cur, stale=stale, stale_after=pool.stale_after
            )
        decisions.append(
            Decision(
                name,
                t.farm_id,
                t.limit,
                st.limit_id,
                cur,
                pool.floor if stale else cur,
                new,
                (*failures, hold),
                "stale" if stale else "down",
                current_count=st.current_count,
            )
        )
    status = "stale" if stale else "down"
    pp = PoolPlan(name, tuple(decisions), None, failures=tuple(failures), status=status)
    return pp, new_memory


def requeues(
    holding: Holding, p: PreemptPlan, releasing: Collection[str], now: datetime
) -> tuple[list[RunningTask], int]:
    """The youngest runs to requeue so that what the farm holds of the limit comes down to
    `p.target` — counted from what running tasks acquired, less the runs already requeued
    and not yet exited (`releasing`, task ids) — at most `p.tasks` of them, none that has
    run `p.younger_than` or longer. And the running chunks passed over (they name no task:
    UpdateTask cannot requeue them)."""
    giving_back = sum(t.units for t in holding.running if t.task_id in releasing)
    over = holding.held - giving_back - p.target
    if over <= 0:
        return [], 0
    young = sorted(
        (
            t
            for t in holding.running
            if t.task_id not in releasing and (now - t.started_at).total_seconds() < p.younger_than
        ),
        key=lambda t: t.started_at,
        reverse=True,
    )
    chosen: list[RunningTask] = []
    for t in young:
        if over <= 0 or len(chosen) >= p.tasks:
            break
        chosen.append(t)
        over -= t.units
    return chosen, holding.chunks
