"""`license-sync plan` and `explain`: one read-only cycle, printed — read live, or planned
offline against the farm as a history's last cycle left it (`--against`)."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from sync.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from sync.commands.plan_json import Errors, effect_document, plan_document
from sync.cycle.memory import MemoryStore
from sync.cycle.observe import Observer
from sync.edges.history import History
from sync.law.compare import compare
from sync.law.reasons import text
from sync.law.reconcile import Plan, reconcile
from sync.law.render import effect_lines, explain_lines, job_lines, job_write_lines, plan_lines
from sync.law.state import Observed
from sync.offline import planner
from sync.policy import Policy, load_policy, parse_duration
from sync.process import logging_setup
from sync.process.app import build_service
from sync.record import observation
from sync.values.errors import HistoryError, SyncError


def plan(args: argparse.Namespace) -> int:
    logging_setup.setup("text", args.verbose)
    look = _look(args)
    if unknown := unoffered_features(look.policy, look.observed):
        for line in unknown:
            print(f"{args.config}: {line}", file=sys.stderr)
        return EXIT_ERROR
    edit_errors, recorded = split_errors(look)
    edit_errors += sources_all_down(look)
    kept = kept_back_whole(look.plan)
    for line in kept:
        print(f"policy: {line}", file=sys.stderr)
    edit_errors += kept if args.detailed_exitcode else []
    complete = not edit_errors and not (recorded and args.recorded_errors == "fail")
    effect = compare(look.baseline, look.plan) if look.baseline is not None else None
    if args.format == "json":
        errors = Errors(edit_errors, recorded, complete)
        doc = plan_document(look.observed, look.plan, args.against, look.recorded_at, errors)
        if effect is not None:
            doc["baseline"] = effect_document(effect, args.baseline)
        print(json.dumps(doc, indent=2))
        changes = bool(doc["changes"]["limits"] or doc["changes"]["jobs"])
    else:
        changes = _print_plan(look, edit_errors, recorded)
    if effect is not None:
        if args.format == "text":
            print("\n" + "\n".join(effect_lines(effect, args.baseline)))
        changes = effect.changes_anything  # the edit's changes, not what both would do
    return _exit(complete, changes, args)


def _print_plan(look: Look, edit_errors: list[str], recorded: list[str]) -> bool:
    """The plan in words; whether it writes anything."""
    observed, p = look.observed, look.plan
    print(look.header + "\n")
    for name, state in observed.sources.items():
        report = state.report
        print(f"source {name}: " + ("up" if report.up else "DOWN: " + "; ".join(report.errors)))
    print()
    for pp in p.pools.values():
        for line in plan_lines(pp, look.observed.undeclared):
            print(line)
    writes = [w for fj in p.farms_jobs for w in fj.writes]
    if writes:
        print()
        for line in job_write_lines(writes):
            print(line)
    for e in edit_errors:
        print(f"error: {e}", file=sys.stderr)
    for e in recorded:
        print(f"recorded error (of the recorded cycle, not the policy): {e}", file=sys.stderr)
    unread = sum(f.unread for f in observed.farms.values())
    if unread:
        print(f"\n{unread} job(s) not planned yet: their steps are read over the next cycles")
    print()
    print(_verdict(bool(edit_errors), len(p.changes), len(writes)))
    return bool(p.changes or writes)


def _verdict(errors: bool, limits: int, caps: int) -> str:
    """The plan's last line."""
    if errors:
        return "Plan: incomplete (errors above)."
    if not (limits or caps):
        return "No changes. Limits and job caps match the policy."
    return f"Plan: {limits} limit(s) and {caps} job cap(s) to change."


def split_errors(look: Look) -> tuple[list[str], list[str]]:
    """The plan's errors, and apart from them those a recorded cycle brought with it: its
    failed reads, and the pools held on a farm it could not read. Live, every error is
    the plan's: it is what a cycle would meet now."""
    p, observed = look.plan, look.observed
    if look.recorded_at is None:
        return list(p.errors), []
    unread = {f for f, read in observed.farms.items() if read.error is not None}
    recorded = [
        *observed.errors,
        *(
            f"pool {d.pool}: {text(d.why)}"
            for d in p.decisions
            if d.status == "error" and d.farm_id in unread
        ),
        *look.blind,
    ]
    return [e for e in p.errors if e not in recorded], recorded


def kept_back_whole(p: Plan) -> list[str]:
    """Each pool whose reserve and headroom keep back every license its servers issue:
    exhausted by the policy itself, whatever the artists do (a real exhaustion is the
    artists holding them). Said apart; an error under --detailed-exitcode."""
    out = []
    for name, pp in p.pools.items():
        fig = pp.figures
        if fig is None or not fig.total or fig.reserve + fig.headroom < fig.total:
            continue
        out.append(
            f"pool {name}: reserve {fig.reserve} and headroom {fig.headroom} keep back all "
            f"{fig.total} licenses its servers issue: the policy itself leaves the farm "
            "none, whatever the artists use; keep less back"
        )
    return out


def sources_all_down(look: Look) -> list[str]:
    """Live, every source the pools read is down: each limit would plan to its floor, a
    plan of nothing a cycle with the servers up would do. Said, and the plan fails."""
    used = {ref.source for pool in look.policy.pools.values() for ref in pool.features}
    read = {s: look.observed.sources[s].report for s in sorted(used & look.observed.sources.keys())}
    if look.recorded_at is not None or not read or any(r.up for r in read.values()):
        return []
    why = "; ".join(f"{name}: {'; '.join(r.errors)}" for name, r in read.items())
    return [
        f"every license source is down ({why}): the limits above are what the policy does "
        "without them, not a plan; run it where the license tools and servers answer"
    ]


def _exit(complete: bool, changes: bool, args: argparse.Namespace) -> int:
    if not complete:
        return EXIT_ERROR
    return EXIT_CHANGES if changes and args.detailed_exitcode else EXIT_OK


def unoffered_features(policy: Policy, observed: Observed) -> list[str]:
    """Each feature a pool names that its source, read up, does not offer: a typo plans as
    a source failure (the pool held, then at its floor), so it is said as what it is."""
    out = []
    for name, pool in policy.pools.items():
        for i, ref in enumerate(pool.features):
            state = observed.sources.get(ref.source)
            if state is None or not state.report.up:
                continue  # a source down says nothing of what it offers
            offered = sorted({f.feature for f in state.report.features})
            if ref.feature in offered:
                continue
            near = difflib.get_close_matches(ref.feature, offered, n=1)
            some = ", ".join(offered[:10]) + (
                f" and {len(offered) - 10} more" if offered[10:] else ""
            )
            hint = f"did you mean {near[0]!r}?" if near else f"it offers: {some or 'none'}"
            out.append(
                f"pools.{name}.features.{i}: source {ref.source!r} offers no feature "
                f"{ref.feature!r}; {hint}"
            )
    return out


def explain(args: argparse.Namespace) -> int:
    logging_setup.setup("text", args.verbose)
    look = _look(args)
    policy, observed, p = look.policy, look.observed, look.plan
    pool = policy.pools.get(args.pool)
    if pool is None:
        raise SyncError(f"no pool {args.pool!r} in {args.config}; pools: {', '.join(policy.pools)}")
    pp = p.pools[args.pool]
    for line in explain_lines(pp, pool, observed.undeclared.get(args.pool, ())):
        print(line)
    for pj in p.pools_jobs:
        if pj.pool == args.pool:
            for line in job_lines(pj):
                print(line)
    for e in observed.errors:
        print(f"error: {e}", file=sys.stderr)
    return EXIT_OK if pp.status != "error" else EXIT_ERROR


class Look(NamedTuple):
    policy: Policy
    observed: Observed
    plan: Plan
    header: str  # what it planned against, in words
    recorded_at: datetime | None  # the recorded cycle's time (--against), or None: live
    baseline: Plan | None = None  # the --baseline policy's plan of the same observation
    blind: tuple[str, ...] = ()  # what the recorded cycle cannot tell this policy


def _look(args: argparse.Namespace) -> Look:
    """Read and plan, live or from the history given with `--against`; writes nothing.
    Also a header that says which: the recorded cycle and its age, or live. With
    `--baseline`, the old policy planned against the very same observation and memory."""
    loaded = load_policy(args.config)
    old = load_policy(args.baseline).policy if getattr(args, "baseline", None) else None
    at = parse_at(args.at) if args.at else None
    evaluated = f", evaluated at {at.isoformat(timespec='seconds')}" if at else ""
    if args.against:
        observed, p, when, blind = planned_against(loaded.policy, args.against, at)
        base = planned_against(old, args.against, at).plan if old is not None else None
        age = datetime.now(UTC) - when
        header = (
            f"Planned against {args.against}: the farm as its cycle of "
            f"{when.isoformat(timespec='seconds')} left it ({_age(age)} ago){evaluated}"
        )
        return Look(loaded.policy, observed, p, header, when, base, blind)
    svc = build_service(loaded, dry_run=True, history=False, watch=False)
    now = at or svc.clock()
    observed, p = svc.observe_and_plan(now)
    # what only the baseline names was not read: it plans as a source or limit not read
    base = reconcile(old, observed, svc.memory, now) if old is not None else None
    live = f"Planned live: the farms and license servers read now{evaluated}"
    return Look(svc.policy, observed, p, live, None, base)


def _age(d: timedelta) -> str:
    """`2d 3h`, `4h 10m` or `5m 2s`: the two largest units of an age."""
    s = max(0, int(d.total_seconds()))
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 60}m {s % 60}s"


def planned_against(policy: Policy, path: str, at: datetime | None) -> planner.Against:
    """`policy` planned offline against the farm as the history's last cycle left it, with
    the memory and the learned reserves the history keeps."""
    if not Path(path).is_file():
        raise SyncError(f"no history at {path!r}")
    try:
        history = History.reading(path)
        data = history.get_state("observed")
        if data is None:
            raise SyncError(
                f"{path}: no observation recorded: it is kept from the first cycle a "
                "license-sync of this version runs with this history"
            )
        memory = MemoryStore(history).load()
        learned = Observer(history).learned
        return planner.against(policy, data, memory, at, lambda now: learned(policy, now))
    except (HistoryError, observation.RecordedError) as e:
        raise SyncError(f"{path}: {e}") from e


def parse_at(value: str) -> datetime:
    """`--at`: an ISO 8601 time (without an offset: this machine's time zone), or a
    duration from now (`+2h`, `-30m`)."""
    text = value.strip()
    if text[:1] in "+-" and len(text) > 1:
        try:
            ahead = timedelta(seconds=parse_duration(text[1:]))
        except ValueError as e:
            raise SyncError(f"--at {value}: {e}") from e
        return datetime.now(UTC) + (ahead if text[0] == "+" else -ahead)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as e:
        raise SyncError(
            f"--at {value!r}: not a time; give e.g. 2026-12-01T09:30, 2026-12-01T09:30+01:00 or +2h"
        ) from e
    return when if when.tzinfo else when.astimezone()
