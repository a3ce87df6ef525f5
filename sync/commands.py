"""The service's sub-commands; `cli.py` builds the parser and calls `register`."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync.errors import SyncError
from sync.policy import parse_duration

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _service(
    args: argparse.Namespace,
    *,
    dry_run: bool,
    history: bool = True,
    watch: bool = True,
) -> Any:
    from sync.deadline import factory_for
    from sync.metrics import Metrics
    from sync.policy import load_policy
    from sync.service import Service

    loaded = load_policy(args.config)
    metrics = Metrics()
    hist = None
    if history:
        hist = open_history(loaded.policy.history.path, loaded.policy.history.keep, metrics)

    factory = factory_for(metrics)

    return Service(
        loaded,
        deadline_factory=factory,
        metrics=metrics,
        history=hist,
        dry_run=dry_run,
        watch_policy=watch,
        adopt=getattr(args, "adopt", False),
    )


def open_history(path: str, keep: float, metrics: Any) -> Any:
    """The history, or None if it cannot be opened: limits still sync, jobs are not touched."""
    import logging

    from sync.errors import HistoryError
    from sync.history import History

    try:
        return History(path, keep, lock=True)  # HistoryLocked is not caught: do not start
    except HistoryError as e:
        metrics.history_errors.inc()
        logging.getLogger("license_sync").error(
            "%s; syncing limits without a history: no job is capped until it opens", e
        )
        return None


def _fmt(v: Any) -> str:
    return "unlimited" if v == -1 else "—" if v is None else str(v)


def format_decision_line(d: Any, fig: Any) -> str:
    """One readable line per limit: total, external, farm, target, applied, reason."""
    if fig is not None:
        total = "∞" if fig.total is None else fig.total
        nums = f"total={total} external={fig.external} farm={fig.farm_use} reserve={fig.reserve}"
    else:
        nums = "source down"
    applied = _fmt(d.new) if d.new is not None else f"{_fmt(d.current)} (kept)"
    return f"{d.pool}/{d.limit_ref}: {nums} target={_fmt(d.target)} maxCount={applied} — {d.reason}"


# -- run ------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from sync import logs

    logs.setup(args.log_format, args.verbose)
    svc = _service(args, dry_run=args.dry_run)
    if args.once:
        result = svc.run_cycle()
        for pp in result.plan.pools.values():
            for d in pp.decisions:
                print(format_decision_line(d, pp.figures))
        return EXIT_OK if result.ok else EXIT_ERROR
    return serve(
        svc, args.metrics_address or svc.policy.metrics.address, stop_grace=args.stop_grace
    )


STOP_GRACE = 7.0  # seconds a cycle in flight has to end after SIGTERM (docker stop: 10)


def _wait(svc: Any, scheduler: Any, stop: threading.Event, hup: threading.Event, log: Any) -> None:
    """The main thread until a stop: reschedules on a new interval, reloads on SIGHUP.
    Rescheduling happens here, never in the job (the job store lock)."""
    interval = svc.policy.interval
    while not stop.wait(0.5):
        if hup.is_set():
            hup.clear()
            log.info("SIGHUP: reloading the policy now")
            svc.reload_requested = True
            scheduler.modify_job("cycle", next_run_time=datetime.now(UTC))
        if svc.policy.interval != interval:
            interval = svc.policy.interval
            scheduler.reschedule_job("cycle", trigger="interval", seconds=interval)
            log.info("interval is now %ss", interval)


def serve(
    svc: Any,
    address: str,
    on_cycle: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
    max_cycles: int | None = None,
    stop_grace: float = STOP_GRACE,
) -> int:
    """Run cycles on the policy's interval until SIGTERM/SIGINT (or `stop` is set)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    health = _start_health(svc, address)
    idle = threading.Event()  # set while no cycle runs
    idle.set()
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        _cycle_job(svc, stop, idle, on_cycle, max_cycles),
        "interval",
        seconds=svc.policy.interval,
        id="cycle",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    hup = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            hup.set()
            return
        _log().info("signal %s: finishing or abandoning the current write, then stopping", signum)
        svc.stopping = True  # no new write starts
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    scheduler.start()
    try:
        _wait(svc, scheduler, stop, hup, _log())
    finally:
        # `docker stop` gives 10 s: a write still in flight after `stop_grace` is abandoned.
        # That is safe: what it would change is recorded before it is sent (docs/design.md,
        # "What is never lost"), exactly as after kill -9.
        finished = idle.wait(stop_grace)
        scheduler.shutdown(wait=False)
        health.stop()
        for s, h in old.items():
            signal.signal(s, h)
        if svc.history is not None and finished:
            svc.history.close()
    if not finished:
        _abandon(svc, stop_grace)
    _log().info("stopped cleanly")
    return EXIT_OK


def _log() -> Any:
    import logging

    return logging.getLogger("license_sync")


def _start_health(svc: Any, address: str) -> Any:
    from sync.metrics import HealthServer

    try:
        health = HealthServer(svc.metrics, address, svc.ready).start()
    except OSError as e:
        raise SyncError(
            f"cannot serve metrics on {address!r}: {e.strerror}; "
            "choose another with `run --metrics-address`, `demo --address` or the policy's "
            "metrics.address"
        ) from e
    _log().info(
        "license-sync serving /metrics, /healthz, /readyz on %s (every %ss)",
        address,
        svc.policy.interval,
    )
    return health


def _cycle_job(
    svc: Any,
    stop: threading.Event,
    idle: threading.Event,
    on_cycle: Callable[[Any], None] | None,
    max_cycles: int | None,
) -> Callable[[], None]:
    """The scheduler's job: one cycle, surviving a bug in it; `idle` is clear while it runs."""
    count = {"n": 0}

    def job() -> None:
        if stop.is_set():
            return
        idle.clear()
        try:
            result = svc.run_cycle()
        except Exception:  # the loop must survive a bug in one cycle
            _log().exception("cycle failed")
            svc.metrics.cycles.labels("error").inc()
            return
        finally:
            idle.set()
        if on_cycle is not None:
            on_cycle(result)
        count["n"] += 1
        if max_cycles is not None and count["n"] >= max_cycles:
            stop.set()

    return job


def _abandon(svc: Any, stop_grace: float) -> None:
    import logging

    _log().warning("stopped with a call still in flight after %ss; it was abandoned", stop_grace)
    if svc.stopping:  # a signal: the scheduler's worker thread would keep the process alive
        logging.shutdown()
        os._exit(EXIT_OK)


# -- plan / explain -------------------------------------------------------------------------


def _cmd_plan(args: argparse.Namespace) -> int:
    from sync import logs

    logs.setup("text", args.verbose)
    svc = _service(args, dry_run=True, history=False, watch=False)
    p, reports, errors, _ = svc.plan()
    for name, report in reports.items():
        state = "up" if report.up else "DOWN: " + "; ".join(report.errors)
        print(f"source {name}: {state}")
    print()
    changes = 0
    for pp in p.pools.values():
        for d in pp.decisions:
            if d.changes:
                changes += 1
                sign = "~"
                what = []
                if d.new is not None:
                    what.append(f"maxCount {_fmt(d.current)} → {_fmt(d.new)}")
                what += [f"pause queue {q}" for q in d.pause]
                what += [f"resume queue {q}" for q in d.resume]
                print(f"  {sign} {d.pool}/{d.limit_ref}: {', '.join(what)}")
            else:
                print(f"    {d.pool}/{d.limit_ref}: no change (maxCount {_fmt(d.current)})")
            print(f"      why: {d.reason}")
            if pp.figures is not None:
                f = pp.figures
                total = "∞" if f.total is None else f.total
                print(
                    f"      from: total {total}, external {f.external}, farm {f.farm_use} "
                    f"({f.farm_use_from}), reserve {f.reserve}, headroom {f.headroom}"
                )
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print()
    if errors or any(d.status == "error" for d in p.decisions):
        print("Plan: incomplete (errors above).")
        return EXIT_ERROR
    print(f"Plan: {changes} to change." if changes else "No changes. Limits match the policy.")
    return EXIT_CHANGES if changes else EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from sync import logs

    logs.setup("text", args.verbose)
    svc = _service(args, dry_run=True, history=False, watch=False)
    if args.pool not in svc.policy.pools:
        raise SyncError(
            f"no pool {args.pool!r} in {args.config}; pools: {', '.join(svc.policy.pools)}"
        )
    p, _, errors, _ = svc.plan()
    pp = p.pools[args.pool]
    for line in pp.lines:
        print(line)
    if svc.policy.pools[args.pool].jobs.policy != "none":
        job_plans, _, job_errors = svc.share_jobs(p, svc.clock(), write=False)
        for jp in job_plans:
            if jp.pool == args.pool:
                for line in jp.lines():
                    print(line)
        errors = errors + job_errors
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return EXIT_OK if pp.status != "error" else EXIT_ERROR


# -- validate / schema ----------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    from sync.policy import PolicyErrors, load_policy

    bad = 0
    for f in args.files:
        try:
            loaded = load_policy(f)
        except PolicyErrors as e:
            bad += 1
            for p in e.problems:
                print(p, file=sys.stderr)
        else:
            if not args.quiet:
                pools = len(loaded.policy.pools)
                print(
                    f"{f}: ok ({pools} pool{'s' if pools != 1 else ''}, "
                    f"{len(loaded.policy.sources)} sources)"
                )
    return EXIT_ERROR if bad else EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from sync.policy import json_schema

    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


# -- history --------------------------------------------------------------------------------


def _cmd_history(args: argparse.Namespace) -> int:
    from sync.history import History

    path = args.db
    if path is None and args.config:
        from sync.policy import load_policy

        path = load_policy(args.config).policy.history.path
    if path is None:
        raise SyncError("give --db PATH or --config POLICY (to use its history.path)")
    if not Path(path).exists():
        raise SyncError(f"no history at {path!r}: has `license-sync run` written one yet?")
    since = None
    if args.since:
        try:
            since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
        except ValueError as e:
            raise SyncError(str(e)) from e
    hist = History(path)
    rows = hist.query(args.table, since=since, pool=args.pool, limit=args.limit)
    if args.table == "decisions" and not args.all:
        rows = [r for r in rows if r.get("changed") or r.get("status") != "ok"]
    _print_rows(rows, args.format, args.table)
    return EXIT_OK


_TABLE_COLUMNS = {
    "decisions": [
        "at",
        "pool",
        "limit_ref",
        "total",
        "external",
        "farm_use",
        "reserve",
        "current",
        "target",
        "new",
        "applied",
        "status",
        "reason",
    ],
    "cycles": ["id", "started", "result", "duration", "changes", "errors", "policy_sha"],
    "observations": ["at", "source", "up", "vendor", "feature", "total", "in_use", "reserved"],
    "errors": ["at", "where", "message"],
    "job_changes": ["at", "pool", "job_id", "original", "old", "new", "kind", "reason"],
}


def _print_rows(rows: list[dict[str, Any]], fmt: str, table: str) -> None:
    cols = _TABLE_COLUMNS.get(table) or (list(rows[0]) if rows else [])
    if fmt == "json":
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    if fmt == "csv":
        w = csv.DictWriter(
            sys.stdout, fieldnames=list(rows[0]) if rows else cols, extrasaction="ignore"
        )
        w.writeheader()
        w.writerows(rows)
        return
    if not rows:
        print("(no rows)")
        return
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [
        min(60 if c == "reason" else 40, max(len(c), *(len(x[i]) for x in cells)))
        for i, c in enumerate(cols)
    ]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    s = str(v)
    if len(s) >= 19 and s[4] == "-" and s[10] == "T":  # an ISO time: drop the microseconds
        return s[:19].replace("T", " ")
    return s


# -- restore ------------------------------------------------------------------------------


def _cmd_restore(args: argparse.Namespace) -> int:
    from sync import logs
    from sync.jobshare import restore_records
    from sync.service import utcnow

    logs.setup("text", args.verbose)
    svc = _service(args, dry_run=False, watch=False)
    if svc.history is None or not Path(svc.policy.history.path).exists():
        raise SyncError(f"no history at {svc.policy.history.path!r}: nothing to restore")
    now = utcnow()
    records = list(svc.sharing.originals.values())
    failed = 0
    try:
        for msg in restore_records(records, svc.deadline, svc.sharing, now):
            print(f"job {msg}")
            failed += "failed" in msg
    except SyncError as e:
        print(f"error: {e}", file=sys.stderr)
        failed += 1
    print(f"{len(records)} job(s) checked; {len(svc.sharing.originals)} still recorded")
    if args.limits:
        failed += restore_limits(svc, now)
    svc.history.close()
    return EXIT_ERROR if failed else EXIT_OK


def restore_limits(svc: Any, now: datetime) -> int:
    """Each limit's original maxCount, and every queue association we paused, put back."""
    from sync.planner import LimitMemory, LimitState
    from sync.service import resume_paused

    failed = 0
    farms: dict[str, dict[str, LimitState]] = {}

    def limits_of(farm_id: str) -> dict[str, LimitState]:
        if farm_id not in farms:
            farms[farm_id] = {lim.limit_id: lim for lim in svc.deadline(farm_id).limits()}
        return farms[farm_id]

    for key, original in sorted(dict(svc.limit_originals).items()):
        farm_id, _, limit_id = key.partition("/")
        try:
            lim = limits_of(farm_id).get(limit_id)
            if lim is None:
                print(f"limit {limit_id}: gone; nothing to restore")
            elif lim.max_count == original:
                print(f"limit {limit_id}: maxCount already {original}")
            else:
                svc.deadline(farm_id).update_limit(limit_id, original)
                print(f"limit {limit_id}: maxCount {lim.max_count} → {original} (restored)")
            del svc.limit_originals[key]
        except SyncError as e:
            failed += 1
            print(f"limit {limit_id}: restore failed: {e}", file=sys.stderr)
    svc.history.set_state("limit_originals", svc.limit_originals, now)

    for (farm_id, ref), mem in sorted(svc.memory.items()):
        if not mem.paused:
            continue
        still, messages = resume_paused(svc.deadline(farm_id), ref, mem.paused)
        for m in messages:
            print(f"limit {ref}: {m}", file=sys.stderr if "failed" in m else sys.stdout)
        failed += len(still) + sum("cannot read" in m for m in messages)
        svc.memory[(farm_id, ref)] = LimitMemory(0, still)
    svc.save_memory(now)
    return failed


# -- simulate / replay ----------------------------------------------------------------------


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sync import simulate

    sc = simulate.load_scenario(args.scenario)
    if args.seed is not None:
        sc = sc.model_copy(update={"seed": args.seed})
    strategies = args.strategy or list(simulate.STRATEGIES)
    if args.days < 1:
        raise SyncError("--days must be at least 1")
    by_strategy = simulate.run_days(sc, strategies, args.days)
    results = [days[0] for days in by_strategy.values()]
    hours = sc.duration / 3600
    print(
        f"{sc.name}: {hours:g} h, {sc.total} licenses, seed {sc.seed}, "
        f"sync every {sc.sync.interval:g} s\n"
    )
    print(simulate.format_table(results))
    if args.days > 1:
        print(f"\n{args.days} days, seeds {sc.seed}-{sc.seed + args.days - 1}:\n")
        print(simulate.format_days(by_strategy))
    if args.plot:
        simulate.plot(results, sc, args.plot)
        print(f"\nplot of the first day (seed {sc.seed}) written to {args.plot}")
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    from sync.history import History
    from sync.policy import load_policy
    from sync.replay import replay

    if not Path(args.history).exists():
        raise SyncError(f"no history at {args.history!r}")
    policy = load_policy(args.config).policy
    rows = History(args.history).query("decisions", pool=args.pool)
    result = replay(rows, policy, args.pool)
    for d in result.differences[: args.limit]:
        print(
            f"{d.at[:19].replace('T', ' ')}  {d.pool}/{d.limit}: recorded target "
            f"{_fmt(d.was_target)} write {_fmt(d.was_new)}; with {args.config}: target "
            f"{_fmt(d.now_target)} write {_fmt(d.now_new)} — {d.reason}"
        )
    if len(result.differences) > args.limit:
        print(f"… and {len(result.differences) - args.limit} more (--limit)")
    print(
        f"\n{result.decisions} decisions replayed ({result.skipped} skipped: pool not in "
        f"the new policy or nothing recorded); {len(result.differences)} differ; writes: "
        f"{result.writes_before} recorded, {result.writes_after} with the new policy."
    )
    return EXIT_CHANGES if result.differences else EXIT_OK


# -- demo -----------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from sync import demo, logs

    logs.setup("text", args.verbose)
    if not args.verbose:  # the demo prints its own line per cycle and pool
        import logging

        logging.getLogger("license_sync").setLevel(logging.WARNING)
    return demo.run_demo(
        address=args.address, interval=args.interval, workdir=args.workdir, cycles=args.cycles
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the service's commands to the parser."""

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=description,  # type: ignore[no-any-return]
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add(
        "run",
        "the service: a cycle every `interval` until SIGTERM/SIGINT",
        "Read the license servers and the farm every `interval`, set each limit's maxCount,\n"
        "serve /metrics, /healthz and /readyz, and record everything in the history.\n"
        "A changed policy file is picked up without a restart; an invalid edit keeps the\n"
        "last good policy running. SIGTERM or SIGINT let the current write finish.",
    )
    p.add_argument(
        "--config",
        "-c",
        required=True,
        metavar="POLICY",
        help="the policy YAML (see config/policy.example.yaml)",
    )
    p.add_argument("--dry-run", action="store_true", help="plan and record, write nothing")
    p.add_argument("--once", action="store_true", help="run one cycle, print it and exit")
    p.add_argument(
        "--adopt",
        action="store_true",
        help="with a new, empty history: take the maxWorkerCount that jobs already carry as "
        "their originals (without it, such jobs are left alone: their caps may be ours from "
        "a history that was lost)",
    )
    p.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="where to serve /metrics (default: the policy's metrics.address)",
    )
    p.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE,
        metavar="SECONDS",
        help="after SIGTERM, how long a cycle in flight may take before its call is "
        f"abandoned (safely: its changes are recorded first); default {STOP_GRACE:g}, "
        "inside docker stop's 10 s",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one object per line, for log shippers",
    )
    p.set_defaults(func=_cmd_run)

    p = add(
        "plan",
        "one read-only cycle: what would change and why",
        "Read everything, plan, and print what would change, like `terraform plan`.\n"
        "Writes nothing. Exit 0: no change; 2: changes pending; 1: error.",
    )
    p.add_argument("--config", "-c", required=True, metavar="POLICY")
    p.set_defaults(func=_cmd_plan)

    p = add(
        "explain",
        "the arithmetic behind one pool's target",
        "Read everything and print, line by line, how POOL's target is computed.",
    )
    p.add_argument("--config", "-c", required=True, metavar="POLICY")
    p.add_argument("pool", metavar="POOL")
    p.set_defaults(func=_cmd_explain)

    p = add(
        "validate",
        "check policy files (for CI and pre-commit)",
        "Check policy files. Errors print as file:line:col: message.\n"
        "Exit 1 if any file has an error.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.set_defaults(func=_cmd_validate)

    p = add(
        "schema",
        "print the policy's JSON Schema",
        "Print the policy's JSON Schema, for editors' YAML validation:\n"
        "  license-sync schema > policy.schema.json\n"
        "and put `# yaml-language-server: $schema=policy.schema.json` atop the policy.",
    )
    p.set_defaults(func=_cmd_schema)

    p = add(
        "history",
        "what was observed and changed, from the SQLite history",
        "Print the history. By default, decisions that changed something or failed.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", "-c", metavar="POLICY", help="use the policy's history.path")
    src.add_argument("--db", metavar="PATH", help="the history file")
    p.add_argument("--table", default="decisions", choices=sorted(_TABLE_COLUMNS))
    p.add_argument("--pool", help="only this pool")
    p.add_argument("--since", metavar="DURATION", help="e.g. 1h, 30m, 7d")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--all", action="store_true", help="also decisions that changed nothing")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.set_defaults(func=_cmd_history)

    p = add(
        "simulate",
        "compare strategies on a simulated day of farm and artist load",
        "A seeded simulation of one license pool shared by artists and farm jobs, run\n"
        "under each strategy: static, naive, license-sync (the real planner) and oracle.\n"
        "Scenarios are in config/scenarios/.",
    )
    p.add_argument("--scenario", required=True, metavar="FILE")
    p.add_argument(
        "--strategy",
        action="append",
        metavar="S",
        choices=["static", "naive", "license-sync", "oracle"],
        help="repeat to choose (default: all four)",
    )
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument(
        "--days",
        type=int,
        default=1,
        metavar="N",
        help="also run N seeded days (seed, seed+1, …) and print their totals; a day "
        "without denials can be luck (default 1)",
    )
    p.add_argument("--plot", metavar="PNG", help="draw the day per strategy (needs matplotlib)")
    p.set_defaults(func=_cmd_simulate)

    p = add(
        "replay",
        "re-plan recorded observations with another policy (what-if)",
        "Plan every recorded decision again with NEW.yaml and list where it differs.\n"
        "Exit 0: no difference; 2: differences.",
    )
    p.add_argument("--history", required=True, metavar="DB")
    p.add_argument("--config", "-c", required=True, metavar="NEW.yaml")
    p.add_argument("--pool", help="only this pool")
    p.add_argument("--limit", type=int, default=50, help="differences to print (default 50)")
    p.set_defaults(func=_cmd_replay)

    p = add(
        "restore",
        "put back every original maxWorkerCount (and with --limits, maxCount)",
        "Write back the original maxWorkerCount of every job license-sync capped, as\n"
        "recorded in the history before the first change. A job someone else changed\n"
        "since is left alone. Safe to run twice, and after a crash. Stop `run` first.",
    )
    p.add_argument("--config", "-c", required=True, metavar="POLICY")
    p.add_argument(
        "--limits",
        action="store_true",
        help="also put back each limit's maxCount from before the first change, and resume "
        "the queue associations license-sync paused",
    )
    p.set_defaults(func=_cmd_restore)

    p = add(
        "demo",
        "the whole service on this machine: no AWS, no license server",
        "Start a simulated license server and a simulated Deadline endpoint on loopback,\n"
        "then run the real service through boto3 against them. Prints one line per cycle\n"
        "and pool; serves /metrics. Ctrl-C ends it.",
    )
    p.add_argument("--address", default="127.0.0.1:9462", help="metrics address")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between cycles")
    p.add_argument(
        "--workdir", help="where to keep the policy and history (default: ./license-sync-demo)"
    )
    p.add_argument("--cycles", type=int, help="stop after this many cycles")
    p.set_defaults(func=_cmd_demo)
