"""Every Deadline answer within a deadline and a size, whatever the network does
(docs/design.md, "Bounded answers").

botocore's read timeout is per read: an answer trickled a byte every few seconds never
times out, and an answer of any size is read whole before it is parsed (a 300 MB one
took the process from 67 to 857 MiB). So the client's `before-send` hook sends each
request itself, leaving the body unread, and reads the body a chunk at a time — each
read no longer than what the call has left — until the call's deadline or the size
bound. What no per-read timeout bounds — a status line and headers, or a chunked body's
size lines, trickled a byte at a time — is cut by a timer that shuts the call's socket
at its deadline: the whole exchange ends by then, whatever the server does."""

from __future__ import annotations

import contextlib
import heapq
import math
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import botocore.awsrequest
import botocore.exceptions
import urllib3.exceptions

CALL_DEADLINE = 30.0  # seconds a call has in all, its retries included
MAX_ANSWER = 32 * 2**20  # bytes; a page of 100 Deadline items is tens of KiB
CHUNK = 64 * 1024

_call = threading.local()  # the deadline of the call this thread is making


class OutOfTime(botocore.exceptions.BotoCoreError):
    """The call's deadline (or its cycle's budget) passed: not retried."""

    fmt = "{why}"

    @property
    def over_budget(self) -> bool:
        return bool(self.kwargs.get("over_budget"))


class TooLarge(botocore.exceptions.BotoCoreError):
    """An answer over MAX_ANSWER: not read, not retried."""

    fmt = "{why}"


class Budget:
    """When a cycle's calls must have ended (monotonic); every farm's view shares one."""

    def __init__(self) -> None:
        self.until = math.inf
        self.seconds = math.inf

    def start(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return time.monotonic() >= self.until

    def stop(self) -> None:
        self.until = self.seconds = math.inf


@contextmanager
def deadline_for_call(budget: Budget, seconds: float = CALL_DEADLINE) -> Any:
    """The calls this thread makes inside end by `seconds` from now, or the budget's end."""
    _call.until = min(time.monotonic() + seconds, budget.until)
    _call.budget = budget
    _call.seconds = seconds
    try:
        yield
    finally:
        _call.until = math.inf


class _Cut:
    """The socket a call is reading now, shut at the call's deadline by the watchdog: a
    blocked read then returns at once, the attempt fails, and `_check_time` ends the call
    (OutOfTime) rather than retrying it."""

    def __init__(self, until: float) -> None:
        self.sock: socket.socket | None = None
        self.until = until
        self.done = False

    def fire(self) -> None:
        if not self.done and (sock := self.sock) is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


WATCHDOG_NAP = 3600.0  # the longest the deadline thread waits at once


class _Watchdog:
    """One thread for every call's deadline (a timer thread a call cost a tenth of a
    cold start): the cuts in a heap by deadline, each fired once its time comes unless
    its call ended first."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Cut]] = []
        self.wake = threading.Condition()
        self.thread: threading.Thread | None = None

    def arm(self, cut: _Cut) -> None:
        with self.wake:
            heapq.heappush(self.heap, (cut.until, id(cut), cut))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self.thread.start()
            self.wake.notify()

    def _run(self) -> None:
        while True:
            with self.wake:
                while self.heap and self.heap[0][2].done:
                    heapq.heappop(self.heap)  # calls that ended in time
                wait = self.heap[0][0] - time.monotonic() if self.heap else None
                if wait is None or wait > 0:
                    # bounded: a wait past what the platform's time_t holds would raise
                    # and end the thread, and with it every deadline of the process
                    self.wake.wait(None if wait is None else min(wait, WATCHDOG_NAP))
                    continue
                cut = heapq.heappop(self.heap)[2]
            cut.fire()


_WATCHDOG = _Watchdog()


class _Connection(botocore.awsrequest.AWSHTTPConnection):
    def getresponse(self) -> Any:
        if (cut := getattr(_call, "cut", None)) is not None:
            cut.sock = self.sock  # status line and headers come next: bound them too
        return super().getresponse()


class _TLSConnection(botocore.awsrequest.AWSHTTPSConnection):
    getresponse = _Connection.getresponse


class _Pool(botocore.awsrequest.AWSHTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(botocore.awsrequest.AWSHTTPSConnectionPool):
    ConnectionCls = _TLSConnection


def bound_answers(client: Any, max_answer: int = MAX_ANSWER) -> None:
    """Make `client` read its answers through `_read_bounded`, each exchange cut at its
    call's deadline."""
    session = client._endpoint.http_session  # botocore keeps no public handle on it
    pools = {"http": _Pool, "https": _TLSPool}
    session._pool_classes_by_scheme = pools  # proxies' managers, made later, take these
    session._manager.pool_classes_by_scheme = pools

    def send(request: Any, **_: Any) -> Any:
        cut = _call.cut = _Cut(time.monotonic() + _check_time(request))
        if cut.until != math.inf:  # a call with no deadline (made past the adapter) has no cut
            _WATCHDOG.arm(cut)
        try:
            request.stream_output = True  # the session returns once the headers are in
            response = session.send(request)
            try:
                response._content = _read_bounded(response, request, max_answer)
            except BaseException:
                response.raw.close()  # a half-read connection goes back to no pool
                raise
            return response
        finally:
            cut.done = True  # the watchdog drops it unfired
            _call.cut = None

    client.meta.events.register("before-send.deadline", send, unique_id="license-sync-bounds")


def _check_time(request: Any) -> float:
    until = getattr(_call, "until", math.inf)
    left = until - time.monotonic()
    if left > 0:
        return left
    budget = getattr(_call, "budget", None)
    if budget is not None and until >= budget.until:
        why = f"the cycle is over its budget of {budget.seconds:.0f}s; not sent"
        raise OutOfTime(why=why, over_budget=True)
    seconds = getattr(_call, "seconds", CALL_DEADLINE)
    why = f"no whole answer from {_host(request)} within {seconds:.0f}s in all"
    raise OutOfTime(why=why, over_budget=False)


def _read_bounded(response: Any, request: Any, max_answer: int) -> bytes:
    raw = response.raw
    declared = int(response.headers.get("content-length") or 0)
    if declared > max_answer:
        raise TooLarge(why=_too_large(request, declared, max_answer))
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    per_read = sock.gettimeout() if sock is not None else None
    body = bytearray()
    while True:
        left = _check_time(request)
        if sock is not None:  # no single read may outlast the call
            sock.settimeout(left if per_read is None else min(per_read, left))
        chunk = _read_some(raw, request)
        if not chunk:
            _check_time(request)  # an end the deadline's cut made is no whole answer
            return bytes(body)
        body += chunk
        if len(body) > max_answer:
            raise TooLarge(why=_too_large(request, len(body), max_answer))


def _read_some(raw: Any, request: Any) -> bytes:
    """What the socket has now, at most CHUNK: `read` would wait for all of CHUNK."""
    try:
        return raw.read1(CHUNK) if hasattr(raw, "read1") else raw.read(CHUNK)  # type: ignore[no-any-return]
    except (urllib3.exceptions.HTTPError, OSError) as e:
        _check_time(request)  # the read was cut at the call's deadline
        if isinstance(e, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url, error=e) from e
        raise botocore.exceptions.ConnectionClosedError(
            endpoint_url=request.url, error=e, request=request
        ) from e


def _too_large(request: Any, size: int, max_answer: int) -> str:
    return (
        f"an answer from {_host(request)} of over {size // 2**20} MiB, more than the "
        f"{max_answer // 2**20} MiB any Deadline page needs: refused (a proxy gone wrong?)"
    )


def _host(request: Any) -> str:
    return str(urlsplit(request.url).netloc)
