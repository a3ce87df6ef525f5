"""The `license-sync` command line. Builds every object and passes it down."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sync import __version__
from sync.errors import SyncError

EPILOG = (
    "Documentation: README.md and docs/ (docs/cli.md for every command). "
    "Exit codes: 0 ok, 1 error (plan: 2 = changes pending)."
)


def _cmd_parse(args: argparse.Namespace) -> int:
    from sync.sources import flexlm, parse_text

    if args.file in (None, "-"):
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    else:
        try:
            with open(args.file, "rb") as fh:
                text = fh.read().decode("utf-8", errors="replace")
        except OSError as e:
            raise SyncError(f"cannot read {args.file!r}: {e.strerror}") from e
    out: dict[str, Any]
    if args.format == "flexlm" and (args.expiry or flexlm.looks_like_expiry(text)):
        from sync.errors import ParseError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="license-sync",
        description="Keeps AWS Deadline Cloud limits in step with what FlexLM and RLM "
        "license servers really have free.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"license-sync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "parse",
        help="parse one captured lmstat/rlmstat output and print the JSON report",
        description="Parse a captured `lmutil lmstat -a` (or `-i`) or `rlmutil rlmstat -a` "
        "output and print its report as JSON (docs/design.md, 'The report'). Exits 0 whenever "
        "a report is "
        "printed, a server that is down included ('up': false, reason in 'errors').",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=["flexlm", "rlm", "command"],
        help="which tool produced the text (command: a JSON report to validate)",
    )
    p.add_argument(
        "--expiry",
        action="store_true",
        help="the text is `lmstat -i` (expiry listing); detected when omitted",
    )
    p.add_argument("--compact", action="store_true", help="one line of JSON")
    p.add_argument("file", nargs="?", metavar="FILE|-", help="the captured output (default: stdin)")
    p.set_defaults(func=_cmd_parse)

    from sync import commands

    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args))
    except SyncError as e:
        print(f"license-sync {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `license-sync parse … | head`: the reader left; that is not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
