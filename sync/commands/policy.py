"""`license-sync validate` and `schema`: the policy as code, for CI and editors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sync import __version__
from sync.commands import EXIT_ERROR, EXIT_OK
from sync.policy import PolicyErrors, Problem, json_schema, load_policy


def validate(args: argparse.Namespace) -> int:
    from sync.edges.deadline import aws_regions  # botocore: only when validating

    bad = 0
    regions = aws_regions()
    for f in args.files:
        try:
            loaded = load_policy(f, regions)
        except PolicyErrors as e:
            bad += 1
            for p in e.problems:
                print(p, file=sys.stderr)
        else:
            if not args.quiet:
                print_notes(loaded.notes, args.all_notes)
                pools = len(loaded.policy.pools)
                print(
                    f"{f}: ok ({pools} pool{'s' if pools != 1 else ''}, "
                    f"{len(loaded.policy.sources)} sources)"
                )
    return EXIT_ERROR if bad else EXIT_OK


NOTES_SHOWN = 10


def print_notes(notes: Sequence[Problem], every: bool) -> None:
    """Warnings first, then notes; past a handful, how many more of each, not each."""
    shown = notes if every else notes[:NOTES_SHOWN]
    for note in shown:
        print(note)
    rest = notes[len(shown) :]
    if rest:
        warnings = sum(1 for n in rest if n.message.startswith("warning:"))
        print(
            f"… and {len(rest)} more ({warnings} warnings, {len(rest) - warnings} notes); "
            "--all-notes prints every one"
        )


def schema(args: argparse.Namespace) -> int:
    text = json.dumps(json_schema(), indent=2) + "\n"
    if not args.check:
        sys.stdout.write(text)
        return EXIT_OK
    stale = 0
    for f in args.check:
        try:
            if json.loads(Path(f).read_text()) == json.loads(text):
                continue
            why = f"not the policy schema of license-sync {__version__}"
        except (OSError, ValueError) as e:
            why = f"cannot read it as JSON ({e})"
        stale += 1
        print(f"{f}: {why}; renew it with: license-sync schema > {f}", file=sys.stderr)
    return EXIT_ERROR if stale else EXIT_OK
