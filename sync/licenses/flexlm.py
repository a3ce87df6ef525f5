"""FlexLM `lmutil lmstat -a` and `lmstat -i` parsing (docs/design.md). Pure.

Lines are matched on their content, never on columns or indentation: lmstat's spacing
changes between versions, blank lines go missing and identities hold spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sync.licenses import Checkout, Feature, Report, Reservation, Server, Vendor, flexlm_log
from sync.licenses.tool import Tool
from sync.values.errors import ParseError

FORMAT = "flexlm"

_BANNER = re.compile(r"\b(?:lmutil|lmstat|lmxendutil)\s+-\s+Copyright", re.I)
_STATUS = re.compile(r"^License server status:\s*(?P<list>\S+)")
_SERVER_UP = re.compile(
    r"^(?P<host>[^\s:]+): license server UP(?: \((?P<role>MASTER)\))?(?:\s+(?P<ver>v\S+))?"
)
_SERVER_DOWN = re.compile(
    r"^(?P<host>[^\s:]+): (?P<msg>(?:Cannot connect|Cannot read data|Cannot find|"
    r"License server machine is down)[^\n]*)"
)
_WHOLE_DOWN = re.compile(r"^(?:Error getting status:|lmgrd is not running:)\s*(?P<msg>.*)$")
_VENDOR_UP = re.compile(r"^(?P<name>[\w.\-]+): (?P<st>UP|DOWN)\b\s*(?P<ver>v\S+)?")
_VENDOR_DOWN = re.compile(r"^(?P<name>[\w.\-]+): (?P<msg>The desired vendor daemon is down.*)$")
_USERS = re.compile(r"^Users of (?P<feat>[^:\s][^:]*?):\s*\((?P<body>.*)\)\s*$")
_TOTALS = re.compile(
    r"Total of (?P<total>\d+) licenses? issued;\s*Total of (?P<used>\d+) licenses? in use"
)
_SUBBLOCK = re.compile(
    r'^"(?P<feat>[^"]+)" v(?P<ver>[^,\s]+)(?:, vendor: (?P<vendor>[^,\s]+))?'
    r"(?:,? expiry: (?P<exp>.+?))?\s*$"
)
_RESERVATION = re.compile(
    r"^(?P<n>\d+) RESERVATIONs? for (?P<kind>USER|GROUP|HOST_GROUP|HOST|INTERNET|DISPLAY|PROJECT)"
    r"\s+(?P<name>.+?)\s*(?:\([^()]*\))?\s*$"
)
# Parsed from the right: everything before " (vCLIENT) (server/port handle)" is identity.
_CHECKOUT = re.compile(
    r"^(?P<ident>.*\S)\s+\((?P<cv>v[^()]*)\)\s+\((?P<srv>[^()/\s]+)/(?P<port>\d+)\s+(?P<handle>\d+)\)"
    r",\s*start (?P<start>\w+ \d+/\d+ \d+:\d+)"
    r"(?:,\s*(?P<count>\d+) licenses?)?"
    r"(?:\s*\(linger: (?P<linger>\d+)(?:\s*/\s*\d+)?\))?"
    r"(?:,\s*PID: (?P<pid>\d+))?\s*$"
)
_QUEUED = re.compile(
    r"^(?P<ident>.*?\S)\s+\((?P<cv>v[^()]*)\)\s+\((?P<srv>[^()/\s]+)/(?P<port>\d+)\s+(?P<handle>\d+)\)"
    r"\s+queued for (?P<n>\d+) licenses?\s*$"
)
_MONTHS = {
    m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)
}
_DATE = re.compile(r"^(?P<d>\d{1,2})-(?P<m>[a-z]{3})-(?P<y>\d{1,4})$", re.I)


def normalise_expiry(text: str | None) -> str | None:
    """FlexLM expiry → ISO date, "permanent", or the text as given when it is not a date."""
    if text is None:
        return None
    t = text.strip()
    low = t.lower()
    if low.startswith("permanent"):
        return "permanent"
    m = _DATE.match(low)
    if not m:
        return t or None
    year = int(m["y"])
    month = _MONTHS.get(m["m"])
    if year == 0 or month is None:  # 1-jan-0, 01-jan-0000: FlexLM's "never expires"
        return "permanent" if year == 0 else t
    if year < 100:
        year += 2000
    return f"{year:04d}-{month:02d}-{int(m['d']):02d}"


def split_identity(ident: str) -> tuple[str | None, str | None, str | None]:
    """`user host display` from an identity whose token count varies.

    Three tokens is the common case. With four or more, a display equal to the host
    (Windows clients) marks where the host is, so a user name holding spaces stays whole;
    otherwise the first token is the user, the second the host, the rest the display.
    """
    tokens = ident.split()
    n = len(tokens)
    if n == 3:
        return tokens[0], tokens[1], tokens[2]
    if n == 2:
        return tokens[0], tokens[1], None
    if n == 1:
        return tokens[0], None, None
    if n == 0:
        return None, None, None
    last = tokens[-1]
    for i in range(n - 2, 0, -1):
        if tokens[i] == last:
            return " ".join(tokens[:i]), tokens[i], " ".join(tokens[i + 1 :])
    return tokens[0], tokens[1], " ".join(tokens[2:])


def _server_list(spec: str) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "@" in part:
            port, _, host = part.partition("@")
            out.append((host, int(port) if port.isdigit() else None))
        else:
            out.append((part, None))
    return out


class _Block:
    """A `Users of` block being read."""

    __slots__ = (
        "checkouts",
        "error",
        "expiries",
        "feature",
        "in_use",
        "queued",
        "reservations",
        "total",
        "vendor",
        "versions",
    )

    def __init__(
        self, feature: str, vendor: str | None, total: int | None, in_use: int, error: str | None
    ):
        self.feature = feature
        self.vendor = vendor
        self.total = total
        self.in_use = in_use
        self.error = error
        self.versions: list[str] = []
        self.expiries: list[str] = []
        self.checkouts: list[Checkout] = []
        self.reservations: list[Reservation] = []
        self.queued = 0

    def build(self) -> Feature:
        versions = list(dict.fromkeys(self.versions))
        return Feature(
            vendor=self.vendor,
            feature=self.feature,
            version=",".join(versions) if versions else None,
            total=self.total,
            in_use=self.in_use,
            reserved=sum(r.count for r in self.reservations),
            queued=self.queued,
            error=self.error,
            expires=_earliest(self.expiries),
            checkouts=tuple(self.checkouts),
            reservations=tuple(self.reservations),
        )


def _earliest(expiries: list[str]) -> str | None:
    dated = sorted(e for e in expiries if e != "permanent" and e[:4].isdigit())
    if dated:
        return dated[0]
    if expiries:
        return expiries[0]
    return None


_SEGMENT = re.compile(r"\n[ \t]*(?=Users of |Vendor daemon status)")
# The fast path: one findall per block, for the identity without parentheses that nearly
# every checkout line has. A block where it misses a line is re-read line by line.
_CHECKOUTS_FAST = re.compile(
    r"\n[ \t]*([^\n(]*) \((v[^)\n]*)\) \(([^/\n()]+)/(\d+) (\d+)\), start (\w+ [\d/]+ [\d:]+)"
    r"(?:, (\d+) licenses?)?(?:[ \t]*\(linger: (\d+)[^)\n]*\))?(?:, PID: (\d+))?[ \t]*(?=\n)"
)
_SUBBLOCK_LINES = re.compile(r'\n[ \t]*("[^\n]*)')
_RESERVATION_LINES = re.compile(r"\n[ \t]*(\d+ RESERVATIONs? for [^\n]*)")
_QUEUED_LINES = re.compile(r"\n[ \t]*([^\n]*queued for [^\n]*)")
_new_checkout = tuple.__new__


def _fast_checkouts(body: str) -> list[Checkout]:
    out: list[Checkout] = []
    append = out.append
    for ident, cv, srv, port, handle, start, count, linger, pid in _CHECKOUTS_FAST.findall(body):
        tokens = ident.split()
        if len(tokens) == 3:
            user, host, display = tokens
        else:
            user, host, display = split_identity(ident)
        # tuple.__new__ skips the NamedTuple's Python-level __new__: a third of the time
        append(
            _new_checkout(
                Checkout,
                (
                    user,
                    host,
                    display,
                    cv,
                    srv,
                    int(port),
                    int(handle),
                    start,
                    int(count) if count else 1,
                    int(linger) if linger else None,
                    int(pid) if pid else None,
                ),
            )
        )
    return out


def _checkout_from_match(m: re.Match[str]) -> Checkout:
    user, host, display = split_identity(m.group("ident"))
    count, linger, pid = m.group("count", "linger", "pid")
    return Checkout(
        user,
        host,
        display,
        m.group("cv"),
        m.group("srv"),
        int(m.group("port")),
        int(m.group("handle")),
        m.group("start"),
        int(count) if count else 1,
        int(linger) if linger else None,
        int(pid) if pid else None,
    )


def _read_block(header: re.Match[str], body: str, vendor: str | None, errors: list[str]) -> Feature:
    """One feature's block: its `Users of` line, then what its body says of it."""
    block = _block_head(header, vendor)
    if '"' in body:
        _read_versions(body, block)
    if "RESERVATION" in body:
        for line in _RESERVATION_LINES.findall(body):
            m = _RESERVATION.match(line.rstrip())
            if m is not None:
                block.reservations.append(
                    Reservation(int(m.group("n")), m.group("kind"), m.group("name"))
                )
    if "queued for" in body:
        for line in _QUEUED_LINES.findall(body):
            m = _QUEUED.match(line.strip())
            if m is not None:
                block.queued += int(m.group("n"))
    if ", start " in body:
        _read_checkouts(body, block, errors)
    return block.build()


def _block_head(header: re.Match[str], vendor: str | None) -> _Block:
    feat, hbody = header.group("feat"), header.group("body")
    t = _TOTALS.search(hbody)
    if t is not None:
        return _Block(feat, vendor, int(t.group("total")), int(t.group("used")), None)
    if hbody.lower().startswith("uncounted"):
        return _Block(feat, vendor, None, 0, None)
    err = hbody[6:].strip() if hbody.startswith("Error:") else hbody.strip()
    return _Block(feat, vendor, None, 0, err or hbody)


def _read_versions(body: str, block: _Block) -> None:
    """The `"feature" vVERSION, vendor: V, expiry: E` lines under a feature."""
    for line in _SUBBLOCK_LINES.findall(body):
        m = _SUBBLOCK.match(line.rstrip())
        if m is None:
            continue
        block.versions.append(m.group("ver"))
        if m.group("vendor"):
            block.vendor = m.group("vendor")
        if m.group("exp") and (exp := normalise_expiry(m.group("exp"))):
            block.expiries.append(exp)


def _read_checkouts(body: str, block: _Block, errors: list[str]) -> None:
    """The checkout lines: by the one regex that reads every line when it does; else, an
    odd line somewhere, line by line from the right."""
    fast = _fast_checkouts(body)
    if len(fast) == body.count(", start "):
        block.checkouts = fast
        return
    for line in body.split("\n"):
        if ", start " not in line:
            continue
        line = line.strip()
        m = _CHECKOUT.match(line)
        if m is None:
            errors.append(f"unrecognised checkout line under {block.feature!r}: {line[:200]!r}")
        else:
            block.checkouts.append(_checkout_from_match(m))


def parse(text: str) -> Report:
    """Parse `lmstat -a` output into a `Report`; `ParseError` if it is not lmstat output."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    head = _Header()
    features: list[Feature] = []
    errors: list[str] = []
    for seg in _SEGMENT.split("\n" + text + "\n"):
        if seg.startswith("Users of "):
            first, _nl, body = seg.partition("\n")
            m = _USERS.match(first.strip())
            if m is not None:
                head.seen_usage = True
                features.append(_read_block(m, "\n" + body, head.current_vendor, errors))
                continue
        for raw in seg.split("\n"):
            line = raw.strip()
            if line:
                head.read(line)
    if not head.seen_anything:
        raise ParseError("no lmstat output found (no banner, server status or 'Users of' line)")
    server_list = _merge_servers(head.server_order, head.servers, head.whole_down)
    up, why = _up(head, server_list)
    if why:
        errors.insert(0, why)
    return Report(
        format=FORMAT,
        up=up,
        servers=tuple(server_list),
        vendors=tuple(head.vendors.values()),
        features=tuple(features),
        errors=tuple(errors),
    )


def _up(head: _Header, servers: list[Server]) -> tuple[bool, str | None]:
    """Whether the listing is of a server up, and why not: a whole server down and no
    usage listed, or no server of a triad's quorum answering."""
    if head.whole_down is not None and not head.seen_usage:
        return False, head.whole_down
    up = _quorum(servers) or head.seen_usage
    return up, None if up else "no license server of the list answered"


@dataclass
class _Header:
    """What the lines outside the "Users of" blocks say: servers, vendor daemons, banner."""

    seen_banner: bool = False
    seen_usage: bool = False
    server_order: list[tuple[str, int | None]] = field(default_factory=list)
    servers: dict[str, Server] = field(default_factory=dict)
    vendors: dict[str, Vendor] = field(default_factory=dict)
    whole_down: str | None = None
    current_vendor: str | None = None

    @property
    def seen_anything(self) -> bool:
        """Whether any line of lmstat's own was read: a banner, a server, a usage block."""
        return bool(
            self.seen_banner
            or self.server_order
            or self.servers
            or self.seen_usage
            or self.whole_down
        )

    def read(self, line: str) -> None:
        # Anything not matched (file paths, prompts, the command line, lmgrd chatter)
        # carries nothing we need: lmstat output is matched on content.
        if not self.seen_banner and _BANNER.search(line):
            self.seen_banner = True
        elif line.startswith("License server status:"):
            m = _STATUS.match(line)
            if m is not None:
                self.server_order = _server_list(m.group("list"))
        elif _WHOLE_DOWN.match(line):
            self.whole_down = line
        elif m := _SERVER_UP.match(line):
            host = m.group("host")
            self.servers[host] = Server(host, None, "up", master=m.group("role") == "MASTER")
        elif m := _SERVER_DOWN.match(line):
            host = m.group("host")
            self.servers[host] = Server(host, None, "down", master=False, message=m.group("msg"))
        elif m := _VENDOR_DOWN.match(line):
            self.vendors[m.group("name")] = Vendor(m.group("name"), "down", message=m.group("msg"))
            self.current_vendor = m.group("name")
        elif m := _VENDOR_UP.match(line):
            name = m.group("name")
            status = "up" if m.group("st") == "UP" else "down"
            self.vendors[name] = Vendor(name, status, m.group("ver"))
            self.current_vendor = name


def _merge_servers(
    order: list[tuple[str, int | None]], seen: dict[str, Server], whole_down: str | None
) -> list[Server]:
    out: list[Server] = []
    for host, port in order:
        s = seen.pop(host, None)
        if s is None:
            status = "down" if whole_down else "unknown"
            out.append(Server(host, port, status, master=None, message=whole_down))
        else:
            out.append(Server(host, port, s.status, s.master, s.message))
    out.extend(seen.values())
    return out


def _quorum(servers: list[Server]) -> bool:
    """A triad is up while a majority answers; a single server while it answers."""
    if not servers:
        return False
    up = sum(1 for s in servers if s.status == "up")
    if len(servers) >= 3:
        return up * 2 > len(servers)
    return up > 0


# -- lmstat -i -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiryEntry:
    feature: str
    version: str | None
    licenses: int | None  # None: uncounted
    expires: str | None
    vendor: str | None


_EXPIRY_HEADER = re.compile(
    r"^Feature\s+Version\s+#licenses\s+(?P<a>Expires|Vendor)\s+(?P<b>Expires|Vendor)\s*$"
)


def looks_like_expiry(text: str) -> bool:
    return any(_EXPIRY_HEADER.match(ln.strip()) for ln in text.splitlines()[:60])


def parse_expiry(text: str) -> list[ExpiryEntry]:
    """Parse `lmstat -i` (either column order); `ParseError` if no header is found."""
    lines = text.replace("\r\n", "\n").split("\n")
    order: tuple[str, str] | None = None
    out: list[ExpiryEntry] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        m = _EXPIRY_HEADER.match(line)
        if m is not None:
            order = (m.group("a"), m.group("b"))
            continue
        if order is None or set(line) <= {"_", " ", "-"}:
            continue
        tokens = line.split()
        if len(tokens) < 5 or not (tokens[2].isdigit() or tokens[2].lower() == "uncounted"):
            continue
        feature, version, count = tokens[0], tokens[1], tokens[2]
        rest = tokens[3:]
        if order == ("Expires", "Vendor"):
            vendor, expires = rest[-1], " ".join(rest[:-1])
        else:
            vendor, expires = rest[0], " ".join(rest[1:])
        out.append(
            ExpiryEntry(
                feature=feature,
                version=version,
                licenses=int(count) if count.isdigit() else None,
                expires=normalise_expiry(expires),
                vendor=vendor,
            )
        )
    if order is None:
        raise ParseError("no 'Feature Version #licenses Expires Vendor' header found")
    return out


TOOL = Tool(
    "flexlm",
    "lmutil",
    lambda exe, server: [exe, "lmstat", "-a", "-c", server],
    parse,
    log=flexlm_log.GRAMMAR,
    logs={"debug": flexlm_log.GRAMMAR},
)
