"""`license-sync validate` and `schema`: the policy as code, for CI and editors."""

from __future__ import annotations

import argparse
import json
import sys

from sync.commands import EXIT_ERROR, EXIT_OK
from sync.policy import PolicyErrors, json_schema, load_policy


def validate(args: argparse.Namespace) -> int:
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


def schema(args: argparse.Namespace) -> int:
    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK
