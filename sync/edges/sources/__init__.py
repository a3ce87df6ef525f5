"""License sources: each turns one license server (or a redundant set) into a `Report`.

Parsing is a pure function of text (`sync/licenses/`: each manager's `parse`, listed once
in `TOOLS`); the readers here are the thin edge that runs the tool through an injected
`run`, so tests can hand them text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.edges.sources.runner import Runner, run_tool
from sync.licenses import Feature, Report, Server, down_report
from sync.licenses.kinds import TOOLS, parse_command_output
from sync.values.errors import ParseError, SourceError

DEFAULT_TIMEOUT = 20.0


def _servers_of(spec: str) -> tuple[Server, ...]:
    out = []
    for p in spec.split(","):
        port, _, host = p.partition("@")
        out.append(Server(host, int(port), "down"))
    return tuple(out)


class Source:
    """Anything with a name and a `read()` that returns a report and never raises."""

    name: str
    kind: str

    def read(self) -> Report:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class ToolSource(Source):
    """A FlexLM or RLM server list read with `lmutil lmstat -a` / `rlmutil rlmstat -a`.

    Each entry of `servers` is tried in turn (failover); the first one whose output
    parses as up wins. Every failure is kept in the report's `errors`.
    """

    name: str
    kind: str  # a key of TOOLS
    servers: Sequence[str]
    executable: str
    timeout: float = DEFAULT_TIMEOUT
    run: Runner = run_tool

    def argv(self, server: str) -> list[str]:
        return TOOLS[self.kind].status_argv(self.executable, server)

    def read(self) -> Report:
        parse = TOOLS[self.kind].parse
        errors: list[str] = []
        last: Report | None = None
        for server in self.servers:
            try:
                result = self.run(self.argv(server), self.timeout)
            except SourceError as e:
                errors.append(f"{server}: {e}")
                continue
            try:
                report = parse(result.stdout)
            except ParseError as e:
                detail = (
                    f" (exit {result.returncode}: {result.stderr.strip()[:200]})"
                    if result.returncode or result.stderr.strip()
                    else ""
                )
                errors.append(f"{server}: unreadable output: {e}{detail}")
                continue
            except Exception as e:  # a parser bug must not take the service down
                errors.append(f"{server}: parser failed: {type(e).__name__}: {e}")
                continue
            if report.up:
                return _with_errors(report, errors)
            errors.extend(f"{server}: {msg}" for msg in report.errors or ("server down",))
            last = report
        servers = (
            last.servers
            if last is not None and last.servers
            else tuple(s for spec in self.servers for s in _servers_of(spec))
        )
        return down_report(self.kind, *errors, servers=servers)


def _with_errors(report: Report, errors: list[str]) -> Report:
    if not errors:
        return report
    return Report(
        report.format,
        report.up,
        report.servers,
        report.vendors,
        report.features,
        tuple(errors) + report.errors,
    )


@dataclass
class CommandSource(Source):
    """Any executable printing the JSON report of docs/design.md (LM-X, DSLS, sesinetd, …)."""

    name: str
    command: Sequence[str]
    timeout: float = DEFAULT_TIMEOUT
    run: Runner = run_tool
    kind: str = "command"

    def read(self) -> Report:
        try:
            result = self.run(self.command, self.timeout)
        except SourceError as e:
            return down_report("command", str(e))
        if result.returncode != 0:
            return down_report(
                "command",
                f"{self.command[0]!r} exited {result.returncode}: {result.stderr.strip()[:300]}",
            )
        try:
            return parse_command_output(result.stdout)
        except ParseError as e:
            return down_report("command", f"{self.command[0]!r} printed an invalid report: {e}")


@dataclass
class StaticSource(Source):
    """Fixed totals written in the policy (a license with no server to ask)."""

    name: str
    totals: Mapping[str, int] = field(default_factory=dict)
    kind: str = "static"

    def read(self) -> Report:
        return Report(
            format="static",
            up=True,
            features=tuple(Feature(None, f, None, n, 0) for f, n in self.totals.items()),
        )


def source_for(name: str, cfg: Any) -> Source:
    """The reader for one `sources:` entry of the policy."""
    # here, not at the top: `license-sync --help` lists TOOLS without loading pydantic
    from sync.policy import CommandSourceConfig, StaticSourceConfig, ToolSourceConfig

    if isinstance(cfg, ToolSourceConfig):
        return ToolSource(name, cfg.kind, list(cfg.servers), cfg.executable, cfg.timeout)
    if isinstance(cfg, CommandSourceConfig):
        return CommandSource(name, list(cfg.command), cfg.timeout)
    if isinstance(cfg, StaticSourceConfig):
        return StaticSource(name, dict(cfg.features))
    raise TypeError(f"unknown source config {cfg!r}")
