"""`license-sync restore`: every value we overwrote, put back — jobs' maxWorkerCount and,
with `limits`, limits' maxCount and the queues we paused. Idempotent: safe to run twice
and after a crash; a job someone else changed since is left alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sync.cycle.act import Outcome, Writer
from sync.cycle.writes import MaxCount, Resume, job_change_row
from sync.edges.deadline import Deadline, resolve_limit
from sync.law import jobplan
from sync.law.jobplan import FarmJobs
from sync.law.limits import still_ours
from sync.law.reasons import text
from sync.law.state import Memory
from sync.values.domain import ACTIVE, JobInfo, JobOriginal, LimitMemory, LimitState
from sync.values.errors import DeadlineError, SyncError


@dataclass
class Restored:
    lines: list[str] = field(default_factory=list)  # what was done, one line a value
    failed: list[str] = field(default_factory=list)  # what could not be, still recorded
    memory: Memory = field(default_factory=Memory)  # what is still remembered after it


def restore(memory: Memory, writer: Writer, now: datetime, *, limits: bool) -> Restored:
    out = Restored(memory=memory)
    originals = _restore_jobs(dict(memory.originals), writer, now, out)
    limit_memory = dict(memory.limits)
    if limits:
        _restore_limits(writer, now, out)
        _reopen_queues(limit_memory, writer.deadline_for, out)
        writer.store.save_limits(limit_memory, now)
    out.memory = Memory(limit_memory, originals, memory.unadopted, memory.first_look)
    return out


def _restore_jobs(
    originals: dict[str, JobOriginal], writer: Writer, now: datetime, out: Restored
) -> dict[str, JobOriginal]:
    by_farm: dict[str, list[JobOriginal]] = {}
    for r in originals.values():
        by_farm.setdefault(r.farm_id, []).append(r)
    for farm_id, records in sorted(by_farm.items()):
        try:
            current = writer.deadline_for(farm_id).get_jobs(
                [(r.queue_id, r.job_id) for r in records]
            )
        except SyncError as e:
            out.failed.append(f"farm {farm_id}: jobs not read: {e}")
            continue
        for job_id, error in sorted(current.failed.items()):
            out.failed.append(f"job {job_id}: not read ({error}); still recorded")
        read = [r for r in records if r.job_id not in current.failed]
        originals = _restore_farm(farm_id, read, current.found, originals, writer, now, out)
    return originals


def _restore_farm(
    farm_id: str,
    records: list[JobOriginal],
    found: Mapping[str, JobInfo],
    originals: dict[str, JobOriginal],
    writer: Writer,
    now: datetime,
    out: Restored,
) -> dict[str, JobOriginal]:
    """One farm's jobs put back as their records say, what became of each said; returns
    the records still held."""
    writes, drops = [], []
    for r in records:
        why, write = jobplan.settle(r, found.get(r.job_id))
        if write is not None:
            writes.append(write)
        else:
            drops.append((r.job_id, why))
    done = Outcome(originals=originals)
    writer.jobs(FarmJobs(farm_id, writes=tuple(writes), drops=tuple(drops)), done, now)
    if writer.store.history is not None:
        writer.store.history.record_job_changes([job_change_row(c) for c in done.job_changes])
    out.lines += [f"job {job_id}: {text(why)}; nothing to restore" for job_id, why in drops]
    restored = {c.record.job_id for c in done.job_changes if c.kind == "restore"}
    for w in writes:
        if w.job_id in restored:
            out.lines.append(f"job {w.job_id}: maxWorkerCount restored to {w.value}")
        elif w.job_id in done.originals:
            out.failed.append(f"job {w.job_id}: restore failed; still recorded")
        else:
            out.lines.append(f"job {w.job_id}: gone; nothing to restore")
    out.failed += [f"job restore failed: {e}" for e in done.errors]
    return done.originals


def _restore_limits(writer: Writer, now: datetime, out: Restored) -> None:
    """Each limit's maxCount from before our first write to it."""
    farms: dict[str, dict[str, LimitState]] = {}
    done = []
    for key, original in sorted(writer.store.limit_originals.items()):
        farm_id, _, limit_id = key.partition("/")
        try:
            if farm_id not in farms:
                farms[farm_id] = {x.limit_id: x for x in writer.deadline_for(farm_id).limits()}
            lim = farms[farm_id].get(limit_id)
            if lim is None:
                out.lines.append(f"limit {limit_id}: gone; nothing to restore")
            elif lim.max_count == original:
                out.lines.append(f"limit {limit_id}: maxCount already {original}")
            else:
                MaxCount(farm_id, limit_id, lim.max_count, original).send(
                    writer.deadline_for(farm_id)
                )
                out.lines.append(
                    f"limit {limit_id}: maxCount {lim.max_count} → {original} (restored)"
                )
            done.append(key)
        except SyncError as e:
            out.failed.append(f"limit {limit_id}: restore failed: {e}")
    writer.store.forget_limit_originals(done, now)


def _reopen_queues(
    memory: dict[tuple[str, str], LimitMemory],
    farms: Callable[[str], Deadline],
    out: Restored,
) -> None:
    """Every queue association we paused, back to ACTIVE."""
    for (farm_id, ref), mem in sorted(memory.items()):
        if mem.paused:
            still = resume_paused(farms(farm_id), ref, mem, out)
            memory[(farm_id, ref)] = LimitMemory(still, stamps=mem.stamps_of(still))


def resume_paused(dl: Deadline, ref: str, mem: LimitMemory, out: Restored) -> tuple[str, ...]:
    """Reopen the queues we paused on limit `ref`, from a STOP status or STOPPED; returns
    the queues still to reopen. A queue that reads ACTIVE, whose association or limit is
    gone, or that a person wrote after our pause, is done with."""
    paused = mem.paused
    try:
        found = resolve_limit(ref, dl.limits())
    except DeadlineError as e:
        out.failed.append(f"limit {ref}: cannot read the farm's limits: {e}")
        return paused
    if not isinstance(found, LimitState):
        out.lines.append(f"limit {ref}: {found}: nothing to reopen")
        return ()
    status = {a.queue_id: a.status for a in found.associations}
    ours = still_ours(mem, found.associations)
    still = []
    for q in paused:
        if q not in ours:
            if status.get(q, ACTIVE) != ACTIVE:
                out.lines.append(f"limit {ref}: queue {q} was stopped by a person: left to them")
            continue
        try:
            Resume(dl.farm_id, q, found.limit_id).send(dl)
            out.lines.append(f"limit {ref}: queue {q} resumed (was {status[q]})")
        except DeadlineError as e:
            still.append(q)
            out.failed.append(f"limit {ref}: resuming queue {q} failed: {e}")
    return tuple(still)
