"""The license managers read by a status tool, one line each, and how any source's text
becomes a `Report`. A new manager is a module of this folder with its `TOOL`, and its line
in `TOOLS` (docs/development.md, "A new license manager")."""

from __future__ import annotations

import json

from sync.licenses import Report, down_report, flexlm, report_from_dict, rlm
from sync.values.errors import ParseError

TOOLS = {t.kind: t for t in (flexlm.TOOL, rlm.TOOL)}  # a new license manager: one line here
OTHER_KINDS = ("command", "static")  # sources that run no status tool of their own
# `parse --format KIND-log`: a tool's server log, by the kind whose grammar reads it
# (`KIND-FORMAT-log`, a kind of log it names: `rlm-debug-log`; `KIND-log`: any it writes)
LOG_FORMATS: dict[str, tuple[str, str | None]] = {
    **{f"{kind}-log": (kind, None) for kind, t in TOOLS.items() if t.reads_log},
    **{f"{kind}-{name}-log": (kind, name) for kind, t in TOOLS.items() for name in t.logs},
}


def parse_command_output(text: str) -> Report:
    """A `command` source's stdout → `Report`; `ParseError` naming what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ParseError(f"not JSON ({e}); first bytes: {text[:80]!r}") from e
    return report_from_dict(data)


def parse_text(text: str, fmt: str) -> Report:
    """Parse a captured status output; unparseable text gives an `up: false` report."""
    try:
        if fmt in TOOLS:
            return TOOLS[fmt].parse(text)
        if fmt in ("command", "json"):
            return parse_command_output(text)
    except ParseError as e:
        return down_report(fmt, str(e))
    raise ValueError(f"unknown format {fmt!r}: use {', '.join(TOOLS)} or command")
