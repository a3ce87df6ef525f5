"""`license-sync parse`: one captured lmstat/rlmstat output into the report's JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from sync.commands import EXIT_OK
from sync.licenses import flexlm
from sync.licenses.kinds import LOG_FORMATS, TOOLS, parse_text
from sync.licenses.logs import REFUSED, LogClock
from sync.values.errors import ParseError, SyncError


def parse(args: argparse.Namespace) -> int:
    if args.file in (None, "-"):
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    else:
        try:
            with open(args.file, "rb") as fh:
                text = fh.read().decode("utf-8", errors="replace")
        except OSError as e:
            raise SyncError(f"cannot read {args.file!r}: {e.strerror}") from e
    out: dict[str, Any]
    if args.format in LOG_FORMATS:
        doc = log_document(text, args.tz, *LOG_FORMATS[args.format], name=args.format)
        json.dump(doc, sys.stdout, indent=None if args.compact else 2)
        sys.stdout.write("\n")
        return EXIT_OK
    if args.format == "flexlm" and (args.expiry or flexlm.looks_like_expiry(text)):
        try:
            entries = flexlm.parse_expiry(text)
        except ParseError as e:
            out = {"format": "flexlm-expiry", "up": False, "expiry": [], "errors": [str(e)]}
        else:
            out = {
                "format": "flexlm-expiry",
                "up": True,
                "expiry": [
                    {
                        "feature": e.feature,
                        "version": e.version,
                        "licenses": e.licenses,
                        "expires": e.expires,
                        "vendor": e.vendor,
                    }
                    for e in entries
                ],
                "errors": [],
            }
    else:
        out = parse_text(text, args.format).to_dict()
    json.dump(out, sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    if not out["up"] and out["errors"]:
        print(f"license-sync parse: source down: {out['errors'][0]}", file=sys.stderr)
    return 0


def log_document(
    text: str, tz: str, kind: str, fmt: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """What a server's log holds (`kind`'s grammar for `fmt`, or any of its manager's):
    each event, and the refusals counted. A log whose lines give no year is of this one."""
    grammar = TOOLS[kind].logs[fmt] if fmt is not None else TOOLS[kind].log
    assert grammar is not None
    clock = LogClock(tz)
    clock.today = datetime.now(clock.zone).date()
    read = grammar.parse(text.splitlines(), clock)
    events = [
        {
            "at": e.at.isoformat() if e.at else None,
            "vendor": e.vendor,
            "kind": e.kind,
            "feature": e.feature,
            "user": e.user,
            "host": e.host,
            "count": e.count,
            "reason": e.reason,
        }
        for e in read.events
    ]
    refused = sum(1 for e in read.events if e.kind in REFUSED)
    return {
        "format": name or f"{kind}-log",
        "events": events,
        "refused": refused,
        "unread": read.unread,
    }
