"""What a license manager read by its status tool is, as one value: the extension point
for a new one (docs/development.md, "A new license manager")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sync.licenses import Report
from sync.licenses.logs import LogGrammar


@dataclass(frozen=True)
class Tool:
    """A `kind:` of the policy's sources that runs a status tool and parses its output.

    Everything else follows from it: the policy's model for the kind (`kind`, `servers`,
    `executable` defaulting to this one, `timeout`), the reader that runs it, and the
    choices of `parse --format` (`KIND-log` too for a tool whose log is read, and
    `KIND-FORMAT-log` for each kind of log it names).
    """

    kind: str  # as the policy names it
    executable: str  # the tool's usual name, looked up on PATH unless the policy says
    status_argv: Callable[[str, str], list[str]]  # (executable, port@host) → argv, no shell
    parse: Callable[[str], Report]  # pure: the tool's text → a Report, ParseError if not its
    log: LogGrammar | None = None  # its server's log, read for denials (a source's `log:`)
    # the kinds of log its servers write, by the name a source's `log: {format: …}` gives:
    # `log` reads any of them, told apart line by line
    logs: Mapping[str, LogGrammar] = field(default_factory=dict)

    @property
    def reads_log(self) -> bool:
        return self.log is not None
