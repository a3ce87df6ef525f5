"""RLM `rlmutil rlmstat -a` parsing (docs/design.md). A pure function of text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sync.licenses import Checkout, Feature, Report, Server, Vendor, rlm_debug_log, rlm_log
from sync.licenses.flexlm import normalise_expiry
from sync.licenses.logs import either
from sync.licenses.tool import Tool
from sync.values.errors import ParseError

FORMAT = "rlm"

_RLM_STATUS = re.compile(r"^rlm status on (?P<host>\S+) \(port (?P<port>\d+)\)")
_ISV_TABLE = re.compile(r"^-*\s*ISV servers:?\s*-*\s*$")  # also "--- ISV servers ---"
_ISV_ROW = re.compile(
    r"^(?P<name>[\w.\-]+)\s+(?P<port>\d+)\s+(?P<running>Yes|No)\b\s*(?P<restarts>\d+)?", re.I
)
_ISV_STATUS = re.compile(
    r"^(?:ISV )?(?P<isv>[\w.\-]+)(?: ISV)?(?: server)? status on (?P<host>\S+)"
    r" \(port (?P<port>\d+)\)"
)
_POOL_SECTION = re.compile(r"^(?P<isv>[\w.\-]+) license pool status on (?P<host>\S+)")
_USAGE_SECTION = re.compile(r"^(?P<isv>[\w.\-]+) license usage status on (?P<host>\S+)")
_PRODUCT = re.compile(r"^(?P<prod>[\w.\-]+) v(?P<ver>[\w.\-]+)(?:, pool: (?P<pool>\d+))?\s*$")
_COUNT = re.compile(
    r"^count: (?P<count>\d+), # reservations: (?P<res>\d+), inuse: (?P<inuse>\d+)"
    r"(?:, exp: (?P<exp>\S+))?"
)
_USAGE = re.compile(
    r"^(?P<prod>[\w.\-]+) v(?P<ver>[\w.\-]+): (?P<who>\S+?)(?:@(?P<host>\S+))? "
    r"(?P<count>\d+)/(?P<res>\d+) at (?P<when>\d+/\d+ \d+:\d+)"
    r"(?:\s*\(handle: (?P<handle>[0-9a-fA-F]+)\))?"
)
_ERROR = re.compile(r'^(?:rlmutil: )?Error connecting to "(?P<what>[^"]+)" server', re.I)


@dataclass
class _Product:
    isv: str
    product: str
    version: str
    total: int | None = 0
    in_use: int = 0
    reserved: int = 0
    expires: list[str] = field(default_factory=list)
    pools: list[int] = field(default_factory=list)
    checkouts: list[Checkout] = field(default_factory=list)
    token_based: bool = False


def parse(text: str) -> Report:
    """Parse `rlmstat -a` (or `-a -i isv`) output into a `Report`; `ParseError` if it is not."""
    scan = _Scan()
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        if line:
            scan.read(line)
    return scan.report()


@dataclass
class _Scan:
    """rlmstat output, line by line: where we are (a section of an ISV) and what it said."""

    servers: list[Server] = field(default_factory=list)
    vendors: dict[str, Vendor] = field(default_factory=dict)
    products: dict[tuple[str, str, str], _Product] = field(default_factory=dict)
    connect_error: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # lines that could not be counted
    recognised: bool = False
    in_isv_table: bool = False
    section: str | None = None  # "pool" | "usage"
    isv: str | None = None
    current: _Product | None = None

    def read(self, line: str) -> None:
        if self.connect_error and not self.recognised and not _RLM_STATUS.match(line):
            self.connect_error.append(line)
        elif _ERROR.match(line):
            self.connect_error.append(line)
        elif m := _RLM_STATUS.match(line):
            self.recognised = True
            self.servers.append(Server(m.group("host"), int(m.group("port")), "up", master=None))
        elif _ISV_TABLE.match(line):
            self.recognised = self.in_isv_table = True
        elif not (self.in_isv_table and self._isv_row(line)) and not self._section(line):
            self._in_section(line)

    def _in_section(self, line: str) -> None:
        """A line of the pool or usage section it stands in; outside one, an error."""
        if self.section == "pool" and self.isv is not None:
            self._pool_line(line)
        elif self.section == "usage" and self.isv is not None:
            self._usage_line(line)
        elif _PRODUCT.match(line) or _USAGE.match(line):
            self.errors.append(f"{line[:120]!r} is outside any ISV's pool or usage section")

    def _isv_row(self, line: str) -> bool:
        if line.lower().startswith("name") and "port" in line.lower():
            return True
        m = _ISV_ROW.match(line)
        if m is None:
            self.in_isv_table = False
            return False
        running = m.group("running").lower() == "yes"
        name = m.group("name")
        message = None if running else "ISV server not running"
        self.vendors[name] = Vendor(name, "up" if running else "down", None, message)
        return True

    def _section(self, line: str) -> bool:
        """A pool or usage section's heading, or an ISV's status line."""
        for kind, pattern in (("pool", _POOL_SECTION), ("usage", _USAGE_SECTION)):
            if m := pattern.match(line):
                self.recognised = True
                self.section, self.isv, self.current = kind, m.group("isv"), None
                self.vendors.setdefault(self.isv, Vendor(self.isv, "up"))
                return True
        m = _ISV_STATUS.match(line)
        if m is None or "license" in line:
            return False
        self.recognised = True
        name = m.group("isv")
        old = self.vendors.get(name)
        self.vendors[name] = Vendor(name, "up", old.version if old else None)
        self.section, self.current = None, None
        return True

    def _product(self, name: str, version: str) -> _Product:
        assert self.isv is not None
        key = (self.isv, name, version)
        if key not in self.products:
            self.products[key] = _Product(self.isv, name, version)
        return self.products[key]

    def _pool_line(self, line: str) -> None:
        if m := _PRODUCT.match(line):
            self.current = self._product(m.group("prod"), m.group("ver"))
            if m.group("pool"):
                self.current.pools.append(int(m.group("pool")))
            return
        p = self.current
        if p is None:
            return
        if m := _COUNT.match(line):
            if p.total is not None:
                p.total += int(m.group("count"))
            p.in_use += int(m.group("inuse"))
            p.reserved += int(m.group("res"))
            exp = normalise_expiry(m.group("exp")) if m.group("exp") else None
            if exp:
                p.expires.append(exp)
        elif line.lower().startswith("token-based license"):
            p.token_based, p.total = True, None

    def _usage_line(self, line: str) -> None:
        m = _USAGE.match(line)
        if m is None:
            return
        if (self.isv, m.group("prod"), m.group("ver")) not in self.products:
            # no pool line said how many there are: a total of 0 would be a lie
            self.errors.append(f"usage of {m.group('prod')} v{m.group('ver')} with no pool line")
            return
        handle, host = m.group("handle"), m.group("host")
        self._product(m.group("prod"), m.group("ver")).checkouts.append(
            Checkout(
                m.group("who"),
                host,
                host,
                None,
                None,
                None,
                int(handle, 16) if handle else None,
                m.group("when"),
                int(m.group("count")),
                None,
                None,
            )
        )

    def report(self) -> Report:
        if self.connect_error and not self.recognised:
            return Report(format=FORMAT, up=False, errors=(" ".join(self.connect_error),))
        if not self.recognised:
            raise ParseError("no rlmstat output found (no 'rlm status on', ISV or pool section)")
        errors = tuple(self.errors) + (
            (" ".join(self.connect_error),) if self.connect_error else ()
        )
        return Report(
            format=FORMAT,
            up=True,
            servers=tuple(self.servers),
            vendors=tuple(self.vendors.values()),
            features=tuple(_feature(p) for p in self.products.values()),
            errors=errors,
        )


def _feature(p: _Product) -> Feature:
    dated = sorted(e for e in p.expires if e[:4].isdigit())
    return Feature(
        vendor=p.isv,
        feature=p.product,
        version=p.version,
        total=p.total,
        # a token-based product has no count line: its use is what the usage lists
        in_use=sum(c.count for c in p.checkouts) if p.token_based else p.in_use,
        reserved=p.reserved,
        expires=dated[0] if dated else (p.expires[0] if p.expires else None),
        checkouts=tuple(p.checkouts),
        pools=tuple(p.pools),
    )


TOOL = Tool(
    "rlm",
    "rlmutil",
    lambda exe, server: [exe, "rlmstat", "-a", "-c", server],
    parse,
    # an ISV server writes a report log (REPORTLOG) and a debug log (DEBUGLOG)
    log=either(rlm_log.GRAMMAR, rlm_debug_log.GRAMMAR, rlm_debug_log.is_line),
    logs={"report": rlm_log.GRAMMAR, "debug": rlm_debug_log.GRAMMAR},
)
