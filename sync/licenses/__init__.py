"""The license report: what one license server (or triad) says, as plain values.

This is the contract of docs/design.md, "The report": `license-sync parse` prints it and `command`
sources emit it. `report_from_dict` validates what a command printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sync.values.errors import ParseError


class Checkout(NamedTuple):
    """One checkout line. A NamedTuple, not a dataclass: a busy server lists 20,000 of these."""

    user: str | None
    host: str | None
    display: str | None
    client_version: str | None
    server: str | None
    port: int | None
    handle: int | None
    start: str | None
    count: int  # type: ignore[assignment]  # shadows tuple.count; the contract names it so
    linger: int | None
    pid: int | None


@dataclass(frozen=True, slots=True)
class Reservation:
    count: int  # shadows tuple.count; the contract names it so
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int | None
    status: str  # "up" | "down" | "unknown"
    master: bool | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    status: str  # "up" | "down"
    version: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Feature:
    vendor: str | None
    feature: str
    version: str | None
    total: int | None  # None: uncounted or token-based
    in_use: int
    reserved: int = 0
    queued: int = 0
    error: str | None = None
    expires: str | None = None  # ISO date, "permanent", or None when not stated
    checkouts: tuple[Checkout, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    pools: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    format: str
    up: bool
    servers: tuple[Server, ...] = ()
    vendors: tuple[Vendor, ...] = ()
    features: tuple[Feature, ...] = ()
    errors: tuple[str, ...] = field(default=())

    def feature(self, name: str, vendor: str | None = None) -> list[Feature]:
        """Every entry for feature `name` (optionally of one vendor)."""
        return [
            f for f in self.features if f.feature == name and (vendor is None or f.vendor == vendor)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "up": self.up,
            "servers": [
                {
                    "host": s.host,
                    "port": s.port,
                    "status": s.status,
                    "master": s.master,
                    "message": s.message,
                }
                for s in self.servers
            ],
            "vendors": [
                {"name": v.name, "status": v.status, "version": v.version, "message": v.message}
                for v in self.vendors
            ],
            "features": [_feature_dict(f) for f in self.features],
            "errors": list(self.errors),
        }


# the largest count a Deadline limit takes (int32): a read past it is garbled, and acted on
# it would write a maxCount Deadline refuses (or overflow the history's integers)
COUNT_MAX = 2**31 - 1


def impossible(report: Report) -> tuple[str, ...]:
    """What no license server can truly report: more in use (or reserved) than issued,
    or a count past COUNT_MAX.
    Acted on, one such read swings a pool to its floor and caps every job to 1; it is a
    bad read of the source, held like a down one. (An overdraft is counted in what lmstat
    says is issued.)"""
    out = []
    if report.features and all(f.error for f in report.features):
        first = report.features[0]
        out.append(
            f"no feature could be read: each one's line says something else than its counts "
            f"(as {first.feature!r}: {(first.error or '')[:120]!r}); held"
        )
    for f in report.features:
        counts = (f.total or 0, f.in_use, f.reserved, f.queued, *(c.count for c in f.checkouts))
        if max(counts) > COUNT_MAX:
            out.append(
                f"impossible read of {f.feature}: a count of {max(counts):,} is past any "
                f"a license server keeps or Deadline takes ({COUNT_MAX:,}); held"
            )
        elif f.total is not None and max(f.in_use, f.reserved) > f.total:
            out.append(
                f"impossible read of {f.feature}: {f.in_use} in use, {f.reserved} reserved "
                f"of {f.total} issued; held"
            )
    return tuple(out)


def down_report(fmt: str, *errors: str, servers: tuple[Server, ...] = ()) -> Report:
    """A report for a source that could not be read at all."""
    return Report(format=fmt, up=False, servers=servers, errors=tuple(errors))


def _feature_dict(f: Feature) -> dict[str, Any]:
    d: dict[str, Any] = {
        "vendor": f.vendor,
        "feature": f.feature,
        "version": f.version,
        "total": f.total,
        "in_use": f.in_use,
        "reserved": f.reserved,
        "queued": f.queued,
        "error": f.error,
        "expires": f.expires,
        "checkouts": [c._asdict() for c in f.checkouts],
    }
    if f.reservations:
        d["reservations"] = [
            {"count": r.count, "kind": r.kind, "name": r.name} for r in f.reservations
        ]
    if f.pools:
        d["pools"] = list(f.pools)
    return d


# -- validation of a report printed by a `command` source ---------------------------------


def _get(
    d: dict[str, Any],
    key: str,
    types: type | tuple[type, ...],
    where: str,
    *,
    optional: bool = False,
    default: Any = None,
) -> Any:
    if key not in d or d[key] is None:
        if optional:
            return default
        raise ParseError(f"{where}: missing {key!r}")
    value = d[key]
    # bool is an int subclass; a count of `true` is garbage
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ParseError(f"{where}: {key!r} must be {_tname(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ParseError(f"{where}: {key!r} must be {_tname(types)}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise ParseError(f"{where}: {key!r} must not be negative, got {value!r}")
    return value


def _tname(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def report_from_dict(data: Any, fmt: str = "command") -> Report:
    """Validate a decoded JSON report (docs/design.md, "The report") into a `Report`;
    `ParseError` if it is not one."""
    if not isinstance(data, dict):
        raise ParseError(f"report must be a JSON object, got {type(data).__name__}")
    up = _get(data, "up", bool, "report")
    servers = [_server(s, w) for s, w in _items(data, "servers", "report")]
    vendors = [_vendor(v, w) for v, w in _items(data, "vendors", "report")]
    features = [_feature(f, w) for f, w in _items(data, "features", "report")]
    errors = _get(data, "errors", list, "report", optional=True, default=[])
    if not all(isinstance(e, str) for e in errors):
        raise ParseError("report: 'errors' must be a list of strings")
    given = data.get("format")
    return Report(
        format=given if isinstance(given, str) else fmt,
        up=up,
        servers=tuple(servers),
        vendors=tuple(vendors),
        features=tuple(features),
        errors=tuple(errors),
    )


def _items(d: dict[str, Any], key: str, where: str) -> list[tuple[dict[str, Any], str]]:
    """The objects of the list `key`, each with where it is (`servers[2]`)."""
    out = []
    for i, item in enumerate(_get(d, key, list, where, optional=True, default=[])):
        w = f"{key}[{i}]" if where == "report" else f"{where}.{key}[{i}]"
        if not isinstance(item, dict):
            raise ParseError(f"{w}: must be an object")
        out.append((item, w))
    return out


def _server(s: dict[str, Any], w: str) -> Server:
    return Server(
        host=_get(s, "host", str, w),
        port=_get(s, "port", int, w, optional=True),
        status=_get(s, "status", str, w, optional=True, default="unknown"),
        master=_get(s, "master", bool, w, optional=True),
        message=_get(s, "message", str, w, optional=True),
    )


def _vendor(v: dict[str, Any], w: str) -> Vendor:
    return Vendor(
        name=_get(v, "name", str, w),
        status=_get(v, "status", str, w, optional=True, default="up"),
        version=_get(v, "version", str, w, optional=True),
        message=_get(v, "message", str, w, optional=True),
    )


def _feature(f: dict[str, Any], w: str) -> Feature:
    return Feature(
        vendor=_get(f, "vendor", str, w, optional=True),
        feature=_get(f, "feature", str, w),
        version=_get(f, "version", str, w, optional=True),
        total=_get(f, "total", int, w, optional=True),
        in_use=_get(f, "in_use", int, w),
        reserved=_get(f, "reserved", int, w, optional=True, default=0),
        queued=_get(f, "queued", int, w, optional=True, default=0),
        error=_get(f, "error", str, w, optional=True),
        expires=_get(f, "expires", str, w, optional=True),
        checkouts=tuple(_checkout(c, cw) for c, cw in _items(f, "checkouts", w)),
    )


def _checkout(c: dict[str, Any], w: str) -> Checkout:
    def opt(key: str, kind: type) -> Any:
        return _get(c, key, kind, w, optional=True)

    return Checkout(
        user=opt("user", str),
        host=opt("host", str),
        display=opt("display", str),
        client_version=opt("client_version", str),
        server=opt("server", str),
        port=opt("port", int),
        handle=opt("handle", int),
        start=opt("start", str),
        count=_get(c, "count", int, w, optional=True, default=1),
        linger=opt("linger", int),
        pid=opt("pid", int),
    )
