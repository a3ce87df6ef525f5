"""`license-sync history` and `replay`: what was seen and done, and what another policy
would have done with it."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync.commands import EXIT_CHANGES, EXIT_OK
from sync.edges.history import History
from sync.law.reasons import count
from sync.law.render import column_widths, table
from sync.offline.planner import replay as replay_rows
from sync.policy import load_policy, parse_duration
from sync.values.errors import SyncError

COLUMNS = {
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
    "denials": ["at", "pool", "feature", "who", "user", "host", "reason", "count"],
    "undeclared": ["at", "pool", "host", "count", "job_name", "step_name", "job_id", "worker_id"],
}


def history(args: argparse.Namespace) -> int:
    path = _history_path(args)
    since = _since(args.since)
    if args.denials:
        args.table = "denials"
    history = History.reading(path)
    if args.pool is not None and args.pool not in (known := history.pools()):
        raise SyncError(
            f"no pool {args.pool!r} in the history {path!r}; pools: {', '.join(known) or 'none'}"
        )
    if args.undeclared:
        found = history.undeclared_by_step(since, args.pool)
        _print_rows(iter(found), args.format, UNDECLARED)
        if args.format == "table":
            print(_undeclared_said(found))
        return EXIT_OK
    rows = history.rows(
        args.table,
        since=since,
        pool=args.pool,
        limit=args.limit,
        changed_only=args.table == "decisions" and not args.all,
    )
    if args.table == "denials" and args.format == "table":
        counted: Counter[tuple[str, str]] = Counter()
        rows = _counting(rows, counted)
        _print_rows(rows, args.format, COLUMNS[args.table])
        print(_denials_said(counted))
        return EXIT_OK
    _print_rows(rows, args.format, COLUMNS[args.table])
    return EXIT_OK


def _history_path(args: argparse.Namespace) -> str:
    """The history asked for: --db, else the policy's history.path; it must exist."""
    path = args.db
    if path is None and args.config:
        path = load_policy(args.config).policy.history.path
    if path is None:
        raise SyncError("give --db PATH or --config POLICY (to use its history.path)")
    if not Path(path).exists():
        raise SyncError(f"no history at {path!r}: has `license-sync run` written one yet?")
    return str(path)


def _since(given: str | None) -> datetime | None:
    """--since as a time: that long before now."""
    if not given:
        return None
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(given))
    except ValueError as e:
        raise SyncError(str(e)) from e


UNDECLARED = ["pool", "job", "step", "cycles", "most", "license_hours", "hosts", "first", "last"]


def _undeclared_said(found: list[dict[str, Any]]) -> str:
    """The sum a TD acts on: how much was taken around the limits, by how many steps."""
    if not found:
        return "\nno license was used around a limit in this period"
    hours = sum(r["license_hours"] or 0 for r in found)
    named = [r for r in found if r["job"]]
    bare = {h for r in found if not r["job"] for h in (r["hosts"] or "").split(",")}
    return (
        f"\n{hours:.2f} license-hours used around the limits by {len(named)} job step(s)"
        + (f" and on {len(bare)} host(s) where no task was found" if bare else "")
        + ": declare the amount in those steps (docs/operations.md, 'Use around the limit')"
    )


def _counting(
    rows: Iterator[dict[str, Any]], counted: Counter[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    for row in rows:
        counted[(row["who"], row["reason"])] += row.get("count") or 1  # older rows: one each
        yield row


def _denials_said(counted: Counter[tuple[str, str]]) -> str:
    """How many times were artists refused, and why: the number studios judge by."""
    artists = sum(n for (who, _), n in counted.items() if who == "artist")
    farm = sum(n for (who, _), n in counted.items() if who == "farm")
    why = "; ".join(
        f"{n} × {reason}" for (who, reason), n in counted.most_common() if who == "artist"
    )
    return f"\nartists refused {artists} time(s), the farm {farm}" + (f": {why}" if why else "")


def _print_rows(rows: Iterator[dict[str, Any]], fmt: str, cols: list[str]) -> None:
    """Rows as they are read: a month of history streams, it is never held."""
    first = next(rows, None)
    if first is None:
        if fmt == "csv":
            csv.writer(sys.stdout).writerow(cols)
        else:
            print("[]" if fmt == "json" else "(no rows)")
        return
    rows = itertools.chain([first], rows)
    if fmt == "json":
        sys.stdout.write("[\n")
        for n, r in enumerate(rows):
            sys.stdout.write((",\n" if n else "") + json.dumps(r, default=str))
        sys.stdout.write("\n]\n")
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(first))
        w.writeheader()
        w.writerows(rows)
    else:
        # columns sized by the first rows; later cells are cut to those widths
        widths = None
        while chunk := [[_cell(r.get(c)) for c in cols] for r in itertools.islice(rows, 1000)]:
            if widths is None:
                widths = column_widths(cols, chunk)
                print(table(cols, chunk))
            else:
                print(table(cols, chunk, widths=widths))


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    s = str(v)
    if len(s) >= 19 and s[4] == "-" and s[10] == "T":  # an ISO time: drop the microseconds
        return s[:19].replace("T", " ")
    return s


def replay(args: argparse.Namespace) -> int:
    if not Path(args.db).exists():
        raise SyncError(f"no history at {args.db!r}")
    policy = load_policy(args.config).policy
    if args.pool is not None and args.pool not in policy.pools:
        raise SyncError(f"no pool {args.pool!r} in {args.config}; pools: {', '.join(policy.pools)}")
    rows = History.reading(args.db).query("decisions", pool=args.pool)
    result = replay_rows(rows, policy, args.pool)
    for d in result.differences[: args.limit]:
        print(
            f"{d.at[:19].replace('T', ' ')}  {d.pool}/{d.limit}: recorded target "
            f"{count(d.was_target)} write {count(d.was_new)}; with {args.config}: target "
            f"{count(d.now_target)} write {count(d.now_new)} — {d.reason}"
        )
    if len(result.differences) > args.limit:
        print(f"… and {len(result.differences) - args.limit} more (--limit)")
    print(
        f"\n{result.decisions} decisions replayed ({result.skipped} skipped: pool not in "
        f"the new policy or nothing recorded); {len(result.differences)} differ; writes: "
        f"{result.writes_before} recorded, {result.writes_after} with the new policy."
    )
    return EXIT_CHANGES if result.differences else EXIT_OK
