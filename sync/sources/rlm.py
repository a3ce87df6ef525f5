"""RLM `rlmutil rlmstat -a` parsing (docs/design.md). A pure function of text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sync.errors import ParseError
from sync.report import Checkout, Feature, Report, Server, Vendor
from sync.sources.flexlm import normalise_expiry

FORMAT = "rlm"

_RLM_STATUS = re.compile(r"^rlm status on (?P<host>\S+) \(port (?P<port>\d+)\)")
_ISV_TABLE = re.compile(r"^ISV servers:?\s*$")
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
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    servers: list[Server] = []
    vendors: dict[str, Vendor] = {}
    products: dict[tuple[str, str, str], _Product] = {}
    errors: list[str] = []
    connect_error: list[str] = []
    in_isv_table = False
    section: str | None = None  # "pool" | "usage"
    isv: str | None = None
    current: _Product | None = None
    recognised = False

    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if connect_error and not recognised and not _RLM_STATUS.match(line):
            connect_error.append(line)
            continue
        m = _ERROR.match(line)
        if m is not None:
            connect_error.append(line)
            continue
        m = _RLM_STATUS.match(line)
        if m is not None:
            recognised = True
            servers.append(Server(m.group("host"), int(m.group("port")), "up", master=None))
            continue
        if _ISV_TABLE.match(line):
            recognised = True
            in_isv_table = True
            continue
        if in_isv_table:
            if line.lower().startswith("name") and "port" in line.lower():
                continue
            m = _ISV_ROW.match(line)
            if m is not None:
                running = m.group("running").lower() == "yes"
                name = m.group("name")
                vendors[name] = Vendor(
                    name,
                    "up" if running else "down",
                    None,
                    None if running else "ISV server not running",
                )
                continue
            in_isv_table = False
        m = _POOL_SECTION.match(line)
        if m is not None:
            recognised = True
            section, isv, current = "pool", m.group("isv"), None
            vendors.setdefault(isv, Vendor(isv, "up"))
            continue
        m = _USAGE_SECTION.match(line)
        if m is not None:
            recognised = True
            section, isv, current = "usage", m.group("isv"), None
            vendors.setdefault(isv, Vendor(isv, "up"))
            continue
        m = _ISV_STATUS.match(line)
        if m is not None and "license" not in line:
            recognised = True
            name = m.group("isv")
            old = vendors.get(name)
            vendors[name] = Vendor(name, "up", old.version if old else None)
            section, current = None, None
            continue
        if section == "pool" and isv is not None:
            m = _PRODUCT.match(line)
            if m is not None:
                key = (isv, m.group("prod"), m.group("ver"))
                current = products.get(key)
                if current is None:
                    current = products[key] = _Product(isv, m.group("prod"), m.group("ver"))
                if m.group("pool"):
                    current.pools.append(int(m.group("pool")))
                continue
            if current is not None:
                m = _COUNT.match(line)
                if m is not None:
                    if current.total is not None:
                        current.total += int(m.group("count"))
                    current.in_use += int(m.group("inuse"))
                    current.reserved += int(m.group("res"))
                    if m.group("exp"):
                        exp = normalise_expiry(m.group("exp"))
                        if exp:
                            current.expires.append(exp)
                    continue
                if line.lower().startswith("token-based license"):
                    current.token_based = True
                    current.total = None
                    continue
                if line.startswith("obsolete:"):
                    continue
        if section == "usage" and isv is not None:
            m = _USAGE.match(line)
            if m is not None:
                key = (isv, m.group("prod"), m.group("ver"))
                prod = products.get(key)
                if prod is None:
                    prod = products[key] = _Product(isv, m.group("prod"), m.group("ver"))
                handle = m.group("handle")
                host = m.group("host")
                prod.checkouts.append(
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
                continue

    if connect_error and not recognised:
        return Report(format=FORMAT, up=False, errors=(" ".join(connect_error),))
    if not recognised:
        raise ParseError("no rlmstat output found (no 'rlm status on', ISV or pool section)")
    if connect_error:
        errors.append(" ".join(connect_error))

    features = []
    for p in products.values():
        dated = sorted(e for e in p.expires if e[:4].isdigit())
        features.append(
            Feature(
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
        )
    return Report(
        format=FORMAT,
        up=True,
        servers=tuple(servers),
        vendors=tuple(vendors.values()),
        features=tuple(features),
        errors=tuple(errors),
    )
