"""The /metrics, /healthz and /readyz endpoint: one asyncio event loop on one thread.

A thread per connection could not hold a flood: 3,000 idle connections that reconnect as
soon as they are closed kept /healthz from answering at all. One loop holds each
connection as a few KiB, so the bounds are what decide:

- each connection has `request_deadline` in all (connect to last byte written), one
  request and then it is closed, as HTTP/1.0 servers do;
- at most `per_client` connections per client address and `max_connections` in all
  (never more than half the open-file limit, raised to its hard limit at start); a new
  connection past either bound closes the oldest connection that has sent nothing, else
  the oldest: a flood from one address churns its own connections and nobody else's.

Each bound is a setting (LICENSE_SYNC_HTTP_*), said in the log the first time it is hit
and counted in `license_sync_http_connections_cut_total{bound}`.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import os
import resource
import socket
import termios
import threading
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sync.edges.metrics import Metrics

log = logging.getLogger(__name__)

HEAD_MAX = 16 * 1024  # a request line and headers longer than this are not a scrape
# connections the kernel completes before they are accepted (it caps this at somaxconn,
# 4,096 by default): a flood that fills the queue makes a new client's SYN wait 1 s
BACKLOG = 4096
MAX_CONNECTIONS = int(os.environ.get("LICENSE_SYNC_HTTP_MAX_CONNECTIONS", 16_384))
PER_CLIENT = int(os.environ.get("LICENSE_SYNC_HTTP_PER_CLIENT", 4096))
DEADLINE = float(os.environ.get("LICENSE_SYNC_HTTP_DEADLINE", 5.0))  # seconds a connection
FILES_CEILING = 1 << 16  # the soft open-file limit is raised to the hard one, up to this

Check = Callable[[], tuple[bool, str]]


def raise_open_files_limit() -> None:
    """Raise this process's soft limit of open files to its hard one (bounded): a
    container's default of 1,024 is spent by a modest flood."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FILES_CEILING if hard == resource.RLIM_INFINITY else min(hard, FILES_CEILING)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass  # kept as it is: the server's bound follows whatever it is


class _Exchange(asyncio.Protocol):
    """One connection: its request head read, answered once, then closed. It is cut at
    the server's deadline whatever it is doing (trickling, or not reading the answer)."""

    def __init__(self, server: HealthServer):
        self.server, self.head, self.answering = server, bytearray(), False
        self.transport: asyncio.Transport | None = None
        self.client = "?"
        self.cut: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak one

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "?"
        self.cut = asyncio.get_running_loop().call_later(self.server.deadline, self._expire)
        self.server.connections.admit(self)

    def data_received(self, data: bytes) -> None:
        if self.answering:
            return  # one request a connection: what follows it is not read
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end > HEAD_MAX or (end < 0 and len(self.head) > HEAD_MAX):
            self.answering = True
            self._send(_response(431, b"request head too large\n"))
        elif end >= 0:
            self.answering = True
            self.task = asyncio.ensure_future(self._answer(bytes(self.head[:end])))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.cut is not None:
            self.cut.cancel()
        self.server.connections.forget(self)

    def _expire(self) -> None:
        self.server.cut("deadline", self.client)
        self.abort()

    def heard(self) -> bool:
        """Whether the client has sent anything, read or still in the kernel."""
        return bool(self.head) or (self.transport is not None and _waiting(self.transport) > 0)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def _answer(self, head: bytes) -> None:
        self._send(await self.server.answer_or_fail(head))

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()  # once what is written is sent


class _Connections:
    """The connections held, oldest first, in all and per client address."""

    def __init__(self, max_connections: int, per_client: int, cut: Callable[[str, str], None]):
        self.max_connections, self.per_client, self.cut = max_connections, per_client, cut
        self.every: OrderedDict[_Exchange, None] = OrderedDict()
        self.by_client: dict[str, OrderedDict[_Exchange, None]] = {}

    def admit(self, conn: _Exchange) -> None:
        mine = self.by_client.setdefault(conn.client, OrderedDict())
        if len(mine) >= self.per_client:
            self.cut("per_client", conn.client)
            self._close(_victim(mine))
        if len(self.every) >= self.max_connections:
            self.cut("total", conn.client)
            self._close(_victim(self.every))
        mine[conn] = None
        self.every[conn] = None

    def forget(self, conn: _Exchange) -> None:
        self.every.pop(conn, None)
        mine = self.by_client.get(conn.client)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_client[conn.client]

    def _close(self, conn: _Exchange) -> None:
        conn.abort()  # its connection_lost comes later; it is forgotten now
        self.forget(conn)

    def close_all(self) -> None:
        for conn in list(self.every):
            self._close(conn)


def _victim(held: OrderedDict[_Exchange, None]) -> _Exchange:
    """The oldest connection that has sent nothing, else the oldest. A new connection's
    request is often in the kernel before the flood's next connection is admitted: it
    is spared while the flood's silent ones are there to close."""
    for conn in held:
        if not conn.heard():
            return conn
    return next(iter(held))


def _waiting(conn: asyncio.Transport) -> int:
    sock = conn.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count, True)
    except OSError:
        return 0
    return count[0]


class HealthServer:
    """/metrics, /healthz and /readyz over HTTP; nothing else is served."""

    def __init__(
        self,
        metrics: Metrics,
        address: str,
        ready: Check,
        *,
        alive: Check = lambda: (True, "ok"),
        max_connections: int = MAX_CONNECTIONS,
        per_client: int = PER_CLIENT,
        request_deadline: float = DEADLINE,
    ):
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server(
            (host, int(port)),
            family=family,
            backlog=BACKLOG,
            dualstack_ipv6=host == "::" and socket.has_dualstack_ipv6(),  # "[::]": every address
        )
        self.bound = self.sock.getsockname()  # kept: the socket is closed by stop()
        self.metrics = metrics
        self.said: set[str] = set()  # the bounds said in the log once already
        self.checks = {"/healthz": alive, "/readyz": ready}
        self.deadline = request_deadline
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if files != resource.RLIM_INFINITY:
            max_connections = max(1, min(max_connections, files // 2))
        per_client = min(per_client, max_connections)
        self.bounds = {"per_client": per_client, "total": max_connections}
        self.connections = _Connections(max_connections, per_client, self.cut)
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.bound[1])

    @property
    def address(self) -> str:
        return str(self.bound[0])

    def start(self) -> HealthServer:
        self.thread.start()
        self.started.wait(10)
        return self

    def stop(self) -> None:
        if self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)
        self.sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self.stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Exchange(self), sock=self.sock, backlog=BACKLOG)
        self.started.set()
        async with server:
            await self.stopping.wait()
            self.connections.close_all()

    def cut(self, bound: str, client: str) -> None:
        """A connection closed by a bound: counted, and said the first time."""
        self.metrics.http_cut.labels(bound).inc()
        if bound in self.said:
            return
        self.said.add(bound)
        setting, value = {
            "deadline": ("DEADLINE", f"{self.deadline:g} s"),
            "per_client": ("PER_CLIENT", f"{self.bounds['per_client']} connections"),
            "total": ("MAX_CONNECTIONS", f"{self.bounds['total']} connections"),
        }[bound]
        log.warning(
            "metrics endpoint: a connection from %s cut at its bound of %s "
            "(LICENSE_SYNC_HTTP_%s; counted in license_sync_http_connections_cut_total)",
            client,
            value,
            setting,
        )

    async def answer_or_fail(self, head: bytes) -> bytes:
        try:
            return await self._answer(head)
        except Exception:  # a collector's bug: said, and the endpoint goes on
            log.exception("metrics endpoint: answering a request failed")
            return _response(500, b"internal error\n")

    async def _answer(self, head: bytes) -> bytes:
        request_line = head.split(b"\r\n", 1)[0].split()
        if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/"):
            return _response(400, b"bad request\n")
        method, target = request_line[0], request_line[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"only GET\n", extra=b"Allow: GET, HEAD\r\n")
        if target == b"/metrics":
            # built off the loop: a large exposition does not hold /healthz up
            body = await asyncio.to_thread(self.metrics.exposition)
            status, ctype = 200, CONTENT_TYPE_LATEST
        elif (check := self.checks.get(target.decode("latin-1"))) is not None:
            ok, why = check()
            body, status, ctype = (why + "\n").encode(), 200 if ok else 503, "text/plain"
        else:
            body, status, ctype = b"not found\n", 404, "text/plain"
        return _response(status, b"" if method == b"HEAD" else body, ctype, len(body))


def _response(
    status: int,
    body: bytes,
    ctype: str = "text/plain",
    length: int | None = None,
    extra: bytes = b"",
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n"
    ).encode() + extra
    return head + b"\r\n" + body
