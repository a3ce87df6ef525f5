"""Plans and rows into text, for people: `run --once`, `plan`, `explain`, `history`, the
demo and `simulate` print through here (reasons themselves through `reasons.py`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sync.law.compare import EditEffect
from sync.law.jobplan import PoolJobs
from sync.law.limits import PoolPlan
from sync.law.reasons import count, text
from sync.policy import Pool
from sync.values.domain import Decision, Figures, JobWrite, Undeclared


def table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    widest: int = 60,
    widths: Sequence[int] | None = None,
) -> str:
    """Columns padded to their widest cell (cut at `widest`), two spaces apart; with
    `widths`, to those (and no header: the rows go on a table already begun)."""
    lines = []
    if widths is None:
        widths = column_widths(head, rows, widest)
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    lines += ["  ".join(c[:w].ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def column_widths(
    head: Sequence[str], rows: Sequence[Sequence[str]], widest: int = 60
) -> list[int]:
    return [min(widest, max(len(h), *(len(r[i]) for r in rows))) for i, h in enumerate(head)]


def limit_name(d: Decision, pp: PoolPlan) -> str:
    """`pool/limit`, and its farm when the pool spans farms (two `amount.nuke` told apart)."""
    farms = len({x.farm_id for x in pp.decisions}) > 1
    return f"{d.pool}/{d.limit_ref}" + (f" on {d.farm_id}" if farms else "")


def decision_line(
    d: Decision,
    fig: Figures | None,
    name: str | None = None,
    undeclared: Sequence[Undeclared] = (),
) -> str:
    """One line a limit: total, external, farm (and its use around the limit, named),
    target, what was written, and why."""
    if fig is not None:
        total = "∞" if fig.total is None else fig.total
        external = f"{fig.external}" + (f" ({fig.waiting} refused, waiting)" if fig.waiting else "")
        around = around_said(fig, undeclared)
        farm = f"{fig.farm_use}" + (f" ({around})" if around else "")
        nums = f"total={total} external={external} farm={farm} reserve={fig.reserve}"
    else:
        nums = "source down"
    applied = count(d.new) if d.new is not None else f"{count(d.current)} (kept)"
    return (
        f"{name or f'{d.pool}/{d.limit_ref}'}: {nums} target={count(d.target)} "
        f"maxCount={applied} — {text(d.why)}"
    )


def plan_lines(
    pp: PoolPlan, undeclared: Mapping[str, Sequence[Undeclared]] | None = None
) -> list[str]:
    """`plan`: each limit's change (or none), why, and the figures it came from. A pool
    over several farms names each limit's farm: two farms' `amount.nuke` are told apart."""
    out = []
    undeclared = undeclared or {}
    for d in pp.decisions:
        name = limit_name(d, pp)
        if d.changes_anything:
            what = [f"maxCount {count(d.current)} → {count(d.new)}"] if d.new is not None else []
            what += [f"pause queue {q}" for q in d.pause]
            what += [f"resume queue {q}" for q in d.resume]
            what += [f"requeue the {d.preempt} youngest task(s)"] if d.preempt else []
            out.append(f"  ~ {name}: {', '.join(what)}")
        else:
            out.append(f"    {name}: no change (maxCount {count(d.current)})")
        out.append(f"      why: {text(d.why)}")
        if pp.figures is not None:
            f = pp.figures
            total = "∞" if f.total is None else f.total
            out.append(
                f"      from: total {total}, external {f.external}, farm {f.farm_use} "
                f"({f.farm_use_from}), reserve {f.reserve}, headroom {f.headroom}"
            )
            if around := around_said(f, undeclared.get(pp.pool, ())):
                out.append(f"      around the limit: {around}")
    return out


def explain_lines(pp: PoolPlan, pool: Pool, undeclared: Sequence[Undeclared] = ()) -> list[str]:
    """`explain`: the control law's arithmetic for one pool, line by line."""
    out = [f"pool {pp.pool}"]
    if pp.figures is None:
        out += [f"  {text((f,))}" for f in pp.failures]
        out += [f"  {d.limit_ref}: {text(d.why)}" for d in pp.decisions]
        return out
    f = pp.figures
    several = f"  (Σ {len(pool.features)} features)" if len(pool.features) > 1 else ""
    out += [
        f"  total     = {'unlimited (uncounted)' if f.total is None else f.total}{several}",
        f"  in_use    = {f.in_use}",
        f"  farm_use  = {f.farm_use}  (from {f.farm_use_from})",
        f"  external  = max(0, {f.in_use} − {f.farm_use})"
        + (f" + {f.waiting} refused, waiting" if f.waiting else "")
        + f" = {f.external}",
        f"  reserve   = {f.reserve}  ({pp.reserve_from})",
        f"  headroom  = {f.headroom}",
    ]
    if around := around_said(f, undeclared):
        out.append(f"  {around}  (farm hosts' use beyond what the limits' tasks hold)")
    out += _free_lines(pp)
    for d, raw in zip(pp.decisions, pp.raw, strict=False):
        out.append(f"  {d.limit_ref}: target = {_clamp(pool, raw, f.total, d.target)}")
        new = count(d.new) if d.new is not None else "unchanged"
        out.append(f"  {d.limit_ref}: maxCount {count(d.current)} → {new}: {text(d.why)}")
    return out


def _free_lines(pp: PoolPlan) -> list[str]:
    """What is free for the farm, and how a pool over several limits splits it."""
    f = pp.figures
    assert f is not None
    around = f" − {f.undeclared}" if f.undeclared else ""
    if pp.free is None or math.isinf(pp.free):
        out = ["  free      = unlimited"]
    else:
        out = [
            f"  free      = {f.total} − {f.external}{around} − {f.reserve} − {f.headroom} "
            f"= {pp.free:g}"
        ]
    if pp.splits:
        used = sum(s.use for s in pp.splits)
        out.append(
            f"  remainder = {pp.free:g} − Σ farm uses {used} = {(pp.free or 0) - used:g}, "
            "split by share"
        )
        out += [
            f"  {s.limit_ref}: own use {s.use} + share {s.share} (weight {s.weight:g})"
            for s in pp.splits
        ]
    return out


def _clamp(pool: Pool, raw: float, total: int | None, target: int | None) -> str:
    return (
        f"clamp({'∞' if math.isinf(raw) else f'{raw:g}'}, floor {pool.floor}, "
        f"ceiling {pool.ceiling if pool.ceiling is not None else '—'}"
        f"{f', total {total}' if total is not None else ''}) = {count(target)}"
    )


def job_lines(pj: PoolJobs) -> list[str]:
    """`explain`: how a pool's limit is shared between its jobs."""
    out = [f"  jobs sharing {count(pj.capacity)} units: {len(pj.jobs)} jobs, demand {pj.demand}"]
    caps = {a.job_id: a for a in pj.allocations}
    for j in sorted(pj.jobs, key=lambda j: (j.created_at, j.job_id)):
        a = caps.get(j.job_id)
        cap = "exempt" if a is None or a.cap is None else str(a.cap)
        mark = " (manual override: left alone)" if j.job_id in pj.left_alone else ""
        out.append(
            f"    {j.job_id} {j.name!r}: demand {j.demand} ({j.tasks} tasks × {j.units}), "
            f"weight {a.weight if a else 0:g}, cap {cap}, now {j.max_worker_count}{mark}"
        )
    return out


def job_write_lines(writes: Sequence[JobWrite], shown: int = 20) -> list[str]:
    """`plan`: the maxWorkerCount writes of a cycle, the first `shown` of them."""
    out = []
    for w in writes[:shown]:
        verb = "put back" if w.restore else "cap"
        out.append(
            f"  ~ job {w.job_id} ({w.pool}): {verb} maxWorkerCount {count(w.old)} → "
            f"{count(w.value)}: {text(w.why)}"
        )
    if len(writes) > shown:
        out.append(f"  … and {len(writes) - shown} more job(s)")
    return out


def jobs_summary(pj: PoolJobs, shown: int = 6) -> str:
    """The demo's line a pool: how many jobs share how much, and their caps."""
    head = f"{pj.pool}: {len(pj.jobs)} jobs share {count(pj.capacity)} (demand {pj.demand})"
    if not pj.jobs:
        return head
    caps = ", ".join(f"{j.name}={count(pj.cap(j.job_id))}" for j in pj.jobs[:shown])
    more = f" (+{len(pj.jobs) - shown} more)" if len(pj.jobs) > shown else ""
    return f"{head}: maxWorkerCount {caps}{more}"


def effect_lines(effect: EditEffect, baseline: str) -> list[str]:
    """What the edit changes against the baseline policy, a line a limit or job cap."""
    if not effect.changes_anything:
        return [f"Against the baseline {baseline}: the edit changes nothing."]
    farms = {e.farm_id for e in effect.limits} | {j.farm_id for j in effect.jobs}

    def on(farm_id: str) -> str:  # a farm named only where there are several
        return f" on {farm_id}" if len(farms) > 1 else ""

    lines = [f"Against the baseline {baseline}, the edit changes:"]
    for e in effect.limits:
        lines.append(
            f"  limit {e.limit_ref}{on(e.farm_id)}: baseline {_decided(e.baseline)}; "
            f"edit {_decided(e.edit)}"
        )
    for j in effect.jobs:
        lines.append(
            f"  job {j.job_id}{on(j.farm_id)}: baseline {_job_written(j.baseline)}; "
            f"edit {_job_written(j.edit)}"
        )
    return lines


def _decided(d: Decision | None) -> str:
    if d is None:
        return "does not name it"
    if d.status == "error":
        return f"error: {text(d.why)}"
    write = (
        f"maxCount {count(d.current)} → {count(d.new)}"
        if d.new is not None
        else f"maxCount {count(d.current)} kept"
    )
    extra = [f"pause {', '.join(d.pause)}"] if d.pause else []
    extra += [f"resume {', '.join(d.resume)}"] if d.resume else []
    extra += [f"requeue {d.preempt}"] if d.preempt else []
    status = "" if d.status == "ok" else f" ({d.status})"
    return ", ".join([f"target {count(d.target)}{status}", write, *extra])


def _job_written(w: JobWrite | None) -> str:
    if w is None:
        return "no write"
    what = "restore" if w.restore else "cap"
    return f"{what} maxWorkerCount {count(w.old)} → {count(w.value)}"


def undeclared_said(found: Sequence[Undeclared], total: int) -> str:
    """`4 (job comp step Nuke on render-012, …)`: for the cycle's line and `explain`."""
    who = []
    for u in found:
        what = f"job {u.job_name or u.job_id} step {u.step_name or u.step_id} on {u.host}"
        who.append((what if u.job_id else f"on {u.host}, no task found") + _times(u.count))
    return f"{total}" + (f" ({', '.join(who)})" if who else "")


def _times(n: int) -> str:
    return f" ×{n}" if n > 1 else ""


def around_said(fig: Figures, found: Sequence[Undeclared]) -> str:
    """`undeclared: 4 (job …)`, or what one read saw and the law has not taken yet."""
    if fig.undeclared:
        return f"undeclared: {undeclared_said(found, fig.undeclared)}"
    if fig.undeclared_seen:
        return (
            f"undeclared: {undeclared_said(found, fig.undeclared_seen)} seen in this read, "
            "taken when the next read shows it too"
        )
    return ""
