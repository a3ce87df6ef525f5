"""`license-sync audit`: the farm's setup mistakes that defeat a pool's limit."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from sync.commands import EXIT_ERROR, EXIT_OK
from sync.cycle.audit import audit_farms
from sync.policy import load_policy
from sync.process import logging_setup
from sync.process.app import build_service


def audit(args: argparse.Namespace) -> int:
    logging_setup.setup("text", args.verbose)
    svc = build_service(load_policy(args.config), dry_run=True, history=False, watch=False)
    found, errors = audit_farms(svc.policy, svc.deadline)
    if args.format == "json":
        print(json.dumps([asdict(f) for f in found], indent=2))
    else:
        for f in found:
            print(f.line())
        farms = len(svc.policy.farms) - len(errors)
        print(f"{len(found)} finding(s) on {farms} farm(s) read")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    # a finding fails as `validate` does, so a CI step stops on it
    return EXIT_ERROR if found or errors else EXIT_OK
