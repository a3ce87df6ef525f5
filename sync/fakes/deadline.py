"""The fake Deadline endpoint over HTTP, on loopback.

Routes, parameter locations and request validation come from botocore's own service model
for `deadline`, so a request the real service would reject is rejected here too:
botocore's ParamValidator checks types, required members and minimums, and `check_shape`
adds what it leaves to the service — maximums, enums, id patterns and unions — for every
operation, from the shapes alone (docs/design.md, "The fake Deadline").
A call is done for the identity its signature names (the access key of SigV4's
`Credential=`), which writes stamp as `updatedBy`. `Faults` adds what the network and the
service do now and then, among them a 200 whose body is cut short: botocore parses an
empty or broken JSON body as `{}` (its rest-json parser), so the answer simply lacks
members the model marks required.
Also serves `/_sim/lmstat` and `/_sim/rlmstat`: the simulated license server's output.
"""

from __future__ import annotations

import functools
import json
import random
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

from sync.fakes.farm import FakeError, FakeFarm
from sync.fakes.operations import SERVICE


@dataclass
class Faults:
    """Switches for what can go wrong: fractions of requests, and added latency."""

    throttle_rate: float = 0.0
    error_rate: float = 0.0
    latency: float = 0.0
    deny: frozenset[str] = frozenset()  # operations answered with AccessDenied
    throttle_first: int = 0  # a burst: the first N requests are throttled
    seed: int = 0
    # operation → error codes its next calls answer with, one a call (then it works again)
    fail_next: dict[str, list[str]] = field(default_factory=dict)
    # operation → how many of its next calls are done but never answered (the connection
    # drops after the write landed)
    drop_answer: dict[str, int] = field(default_factory=dict)
    # a 200 whose body is cut short: a fraction of answers, and operation → its next N
    cut_short_rate: float = 0.0
    cut_short: dict[str, int] = field(default_factory=dict)
    # the network between: each answer's body a byte every `trickle` seconds (a proxy
    # gone wrong), and `pad` bytes of whitespace after each JSON answer (still valid)
    trickle: float = 0.0
    pad: int = 0
    # the status line and headers a byte every `trickle_head` seconds (a proxy that holds
    # an answer back), and a chunked body whose size lines trickle so (`trickle_chunks`)
    trickle_head: float = 0.0
    trickle_chunks: float = 0.0


_STATUS = {
    "AccessDeniedException": 403,
    "ConflictException": 409,
    "InternalServerErrorException": 500,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 402,
    "ThrottlingException": 429,
    "ValidationException": 400,
}


@functools.cache
def shared_model() -> DeadlineModel:
    """The model, read once a process: it does not change, and each endpoint reading it
    anew cost 40 ms."""
    return DeadlineModel()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client killed or gone mid-request: what real endpoints see daily
        super().handle_error(request, client_address)


class _Route:
    def __init__(self, op: OperationModel):
        self.op = op
        uri = op.http["requestUri"].split("?")[0]
        pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", uri)
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")
        self.method = op.http["method"]


def check_shape(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    """What the service checks and botocore does not: maxima, enums, patterns, unions."""
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        errors += _string_errors(meta, value, path)
    elif kind in ("integer", "long") and isinstance(value, int):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} is above the maximum {meta['max']}")
    elif kind == "list" and isinstance(value, list):
        _check_list(shape, value, path, errors)
    elif kind == "structure" and isinstance(value, dict):
        _check_structure(shape, value, path, errors)


def _check_list(shape: Shape, value: list[Any], path: str, errors: list[str]) -> None:
    if "max" in shape.metadata and len(value) > shape.metadata["max"]:
        errors.append(f"{path}: {len(value)} items, above the maximum {shape.metadata['max']}")
    for i, item in enumerate(value):
        check_shape(shape.member, item, f"{path}[{i}]", errors)


def _check_structure(shape: Shape, value: dict[str, Any], path: str, errors: list[str]) -> None:
    members = shape.members
    if shape.metadata.get("union") and len(value) != 1:
        errors.append(f"{path}: exactly one of {', '.join(members)} must be set")
    for name, item in value.items():
        if name in members:
            check_shape(members[name], item, f"{path}.{name}", errors)


def _string_errors(meta: dict[str, Any], value: str, path: str) -> list[str]:
    """A string past its maximum length, off its enum or off its pattern."""
    out = []
    if "max" in meta and len(value) > meta["max"]:
        out.append(f"{path}: length {len(value)} is above the maximum {meta['max']}")
    if meta.get("enum") and value not in meta["enum"]:
        out.append(f"{path}: {value!r} is not one of {', '.join(meta['enum'])}")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        out.append(f"{path}: {value!r} does not match {meta['pattern']}")
    return out


def _coerce(shape: Shape, value: str) -> Any:
    if shape.type_name in ("integer", "long"):
        return int(value)
    if shape.type_name in ("float", "double"):
        return float(value)
    if shape.type_name == "boolean":
        return value.lower() == "true"
    return value


class DeadlineModel:
    """The bits of botocore's `deadline` model the server needs."""

    def __init__(self) -> None:
        self.model = botocore.session.get_session().get_service_model("deadline")
        self.routes = [_Route(self.model.operation_model(n)) for n in self.model.operation_names]
        self.validator = ParamValidator()

    def match(self, method: str, path: str) -> tuple[OperationModel, dict[str, str]] | None:
        for r in self.routes:
            if r.method == method:
                m = r.regex.match(path)
                if m:
                    return r.op, {k: unquote(v) for k, v in m.groupdict().items()}
        return None

    def params(
        self,
        op: OperationModel,
        path_params: dict[str, str],
        query: dict[str, list[str]],
        body: dict[str, Any],
        headers: Any = None,
    ) -> dict[str, Any]:
        shape = op.input_shape
        params: dict[str, Any] = {}
        if shape is None:
            return params
        for name, member in shape.members.items():
            found = _member_value(name, member, path_params, query, body, headers)
            if found is not _ABSENT:
                params[name] = found
        unknown = set(body) - {m.serialization.get("name", n) for n, m in shape.members.items()}
        if unknown:
            raise FakeError("ValidationException", f"unknown fields {sorted(unknown)}")
        report = self.validator.validate(params, shape)
        if report.has_errors():
            raise FakeError("ValidationException", report.generate_report())
        errors: list[str] = []
        check_shape(shape, params, op.name, errors)
        if errors:
            raise FakeError("ValidationException", "; ".join(errors))
        return params


_ABSENT = object()  # a member the request does not give


def _member_value(
    name: str,
    member: Shape,
    path_params: dict[str, str],
    query: dict[str, list[str]],
    body: dict[str, Any],
    headers: Any,
) -> Any:
    """A member's value from where the model says the request carries it, or _ABSENT."""
    loc = member.serialization.get("location")
    wire = member.serialization.get("name", name)
    if loc == "uri" and wire in path_params:
        return _coerce(member, path_params[wire])
    if loc == "querystring" and wire in query:
        vals = query[wire]
        if member.type_name == "list":
            return [_coerce(member.member, v) for v in vals]
        return _coerce(member, vals[0])
    if loc == "header" and headers is not None and headers.get(wire) is not None:
        return _coerce(member, headers[wire])
    if loc is None and wire in body:
        return body[wire]
    return _ABSENT


def caller_of(authorization: str | None) -> str:
    """The identity a SigV4 signature names: its access key, as a role session's ARN."""
    m = re.search(r"Credential=([^/,\s]+)/", authorization or "")
    return SERVICE if m is None else SERVICE.rsplit("/", 1)[0] + "/" + m.group(1)


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


class _Handler(BaseHTTPRequestHandler):
    """One request to the fake: `fake` is the endpoint it belongs to."""

    fake: FakeDeadline
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle and delayed
        # ACKs add 40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if self.fake.faults.pad and ctype == "application/json":
            body += b" " * self.fake.faults.pad
        faults = self.fake.faults
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if faults.trickle_chunks:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if faults.trickle_head:  # the head itself, a byte at a time
            buffer: list[bytes] = getattr(self, "_headers_buffer")  # noqa: B009  (untyped)
            head = b"".join([*buffer, b"\r\n"])
            buffer.clear()
            self._trickle(head, faults.trickle_head)
        else:
            self.end_headers()
        if faults.trickle_chunks:  # the chunk's size line (with an extension, as RFC 9112
            # allows) and all after it a byte at a time: one line no read returns before
            size = b"%x;ext=%s\r\n" % (len(body), b"x" * 100)
            return self._trickle(size + body + b"\r\n0\r\n\r\n", faults.trickle_chunks)
        if faults.trickle:
            return self._trickle(body, faults.trickle)
        try:
            self.wfile.write(body)
        except OSError:  # the client hung up (an answer it refused unread)
            self.close_connection = True

    def _trickle(self, body: bytes, every: float) -> None:
        self.wfile.flush()
        for i in range(len(body)):
            time.sleep(every)
            try:
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
            except OSError:  # the client gave up
                self.close_connection = True
                return

    def _handle(self) -> None:
        self.fake._dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class FakeDeadline:
    """`FakeFarm` behind real HTTP. Use as a context manager, or `start()`/`stop()`."""

    def __init__(
        self,
        farm: FakeFarm,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        license_text: Any = None,
        more_farms: tuple[FakeFarm, ...] = (),
    ):
        self.farm = farm  # a test may put another farm here between examples
        self.more_farms = more_farms
        self.faults = faults or Faults()
        self.model = shared_model()
        self.license_text = license_text  # (kind, server) -> str
        self.calls: dict[str, int] = {}
        # called with the operation's name before it is handled; may block or raise FakeError
        self.before_op: Any = None
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = _Server((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def farms(self) -> dict[str, FakeFarm]:
        """One endpoint serves every farm of the account in its region, as Deadline's does."""
        return {f.farm_id: f for f in (self.farm, *self.more_farms)}

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeDeadline:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="sim-deadline", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeDeadline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _error(
        self, h: Any, code: str, message: str, status: int, reason: str | None = None
    ) -> None:
        body = json.dumps({"message": message, **({"reason": reason} if reason else {})}).encode()
        h._send(status, body, headers={"x-amzn-ErrorType": code})

    def _dispatch(self, h: Any) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        url = urlsplit(h.path)
        if url.path.startswith("/_sim/"):
            return self._sim_route(h, url)
        found = self.model.match(h.command, url.path)
        if found is None:
            return self._error(
                h, "UnknownOperationException", f"no operation for {h.command} {url.path}", 404
            )
        op, path_params = found
        if self._refused(h, op):
            return None
        try:
            if self.before_op is not None:
                self.before_op(op.name)
            body = json.loads(raw) if raw else {}
            params = self.model.params(op, path_params, parse_qs(url.query), body, h.headers)
            farm = self.farms.get(params.get("farmId", ""), self.farm)  # else its NotFound
            result = farm.call(op.name, params, caller_of(h.headers.get("Authorization")))
            if op.name == "ListFarms":  # the account's farms in the region: every farm here
                result = {"farms": [f.call(op.name, {})["farms"][0] for f in self.farms.values()]}
        except FakeError as e:
            return self._error(h, e.code, str(e), e.status, e.reason)
        except ValueError as e:
            return self._error(h, "ValidationException", str(e), 400)
        drop, cut = self._answer_faults(op.name)
        if drop:
            h.close_connection = True  # done, and no answer: the client sees the line drop
            return None
        body = json.dumps(result, default=_json_default).encode()
        h._send(200, body[: len(body) // 2] if cut else body)

    def _answer_faults(self, op: str) -> tuple[bool, bool]:
        """Whether this answer is dropped, and whether it is cut short: each fault queued
        for the operation is used once."""
        with self._lock:
            drop = self.faults.drop_answer.get(op, 0)
            if drop:
                self.faults.drop_answer[op] = drop - 1
            cut = self.faults.cut_short.get(op, 0)
            if cut:
                self.faults.cut_short[op] = cut - 1
            return bool(drop), bool(cut) or self._rng.random() < self.faults.cut_short_rate

    def _refused(self, h: Any, op: OperationModel) -> bool:
        """The faults that answer before the farm is asked; True when one did."""
        with self._lock:
            self.calls[op.name] = self.calls.get(op.name, 0) + 1
            roll = self._rng.random()
            burst = self.faults.throttle_first > 0
            if burst:
                self.faults.throttle_first -= 1
            queued = self.faults.fail_next.get(op.name)
            injected = queued.pop(0) if queued else None
        if self.faults.latency and injected is None and not burst:
            time.sleep(self.faults.latency)
        refusal = self._refusal(op.name, roll, burst, injected)
        if refusal is not None:
            self._error(h, *refusal)
        return refusal is not None

    def _refusal(
        self, op: str, roll: float, burst: bool, injected: str | None
    ) -> tuple[str, str, int] | None:
        """Which fault answers this call, in the order they take precedence, or None."""
        if injected is not None:
            return injected, f"injected {injected}", _STATUS.get(injected, 400)
        if burst:
            return "ThrottlingException", "Rate exceeded", 429
        if op in self.faults.deny:
            return "AccessDeniedException", f"not authorized to perform deadline:{op}", 403
        if roll < self.faults.throttle_rate:
            return "ThrottlingException", "Rate exceeded", 429
        if roll < self.faults.throttle_rate + self.faults.error_rate:
            return "InternalServerErrorException", "simulated failure", 500
        return None

    def _sim_route(self, h: Any, url: Any) -> None:
        kind = url.path.removeprefix("/_sim/")
        q = parse_qs(url.query)
        if kind in ("lmstat", "rlmstat") and self.license_text is not None:
            text = self.license_text(kind, q.get("c", [""])[0])
            h._send(200, text.encode(), "text/plain; charset=utf-8")
        else:
            self._error(h, "NotFound", url.path, 404)
