"""`license-sync plan` and `explain`: one read-only cycle, printed."""

from __future__ import annotations

import argparse
import sys

from sync import logs
from sync.app import build_service
from sync.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from sync.errors import SyncError
from sync.policy import load_policy
from sync.render import explain_lines, job_lines, plan_lines


def plan(args: argparse.Namespace) -> int:
    logs.setup("text", args.verbose)
    svc = build_service(load_policy(args.config), dry_run=True, history=False, watch=False)
    observed, p = svc.look()
    for name, state in observed.sources.items():
        report = state.report
        print(f"source {name}: " + ("up" if report.up else "DOWN: " + "; ".join(report.errors)))
    print()
    for pp in p.pools.values():
        for line in plan_lines(pp):
            print(line)
    for e in observed.errors:
        print(f"error: {e}", file=sys.stderr)
    unread = sum(f.unread for f in observed.farms.values())
    if unread:
        print(f"\n{unread} job(s) not planned yet: their steps are read over the next cycles")
    print()
    if p.errors:
        print("Plan: incomplete (errors above).")
        return EXIT_ERROR
    changes = len(p.changes)
    print(f"Plan: {changes} to change." if changes else "No changes. Limits match the policy.")
    return EXIT_CHANGES if changes else EXIT_OK


def explain(args: argparse.Namespace) -> int:
    logs.setup("text", args.verbose)
    svc = build_service(load_policy(args.config), dry_run=True, history=False, watch=False)
    pool = svc.policy.pools.get(args.pool)
    if pool is None:
        raise SyncError(
            f"no pool {args.pool!r} in {args.config}; pools: {', '.join(svc.policy.pools)}"
        )
    observed, p = svc.look()
    pp = p.pools[args.pool]
    for line in explain_lines(pp, pool):
        print(line)
    for pj in p.pools_jobs:
        if pj.pool == args.pool:
            for line in job_lines(pj):
                print(line)
    for e in observed.errors:
        print(f"error: {e}", file=sys.stderr)
    return EXIT_OK if pp.status != "error" else EXIT_ERROR
