"""A license server's debug log, followed as `tail -F` follows it: only what is written
after the service starts, across rotation (the path now names another file: the old one
is read to its end first) and truncation (the file shrank: read it from the start). A log
that vanishes or stops growing is a log down, said in words; it never raises."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sync.licenses import flexlm_log
from sync.licenses.logs import LogClock, LogEvent, LogGrammar

CHUNK = 8 << 20  # at most this much read a cycle: a burst is read over the next cycles
PEEK = 1 << 20  # what a glance between cycles reads at most: a flood of 5,000 lines a second
SEED = 1 << 20  # how far back the first read looks for the date
# the longest line read: a log line is a few hundred bytes; a NUL hole a copytruncate left,
# or one line of 50 MB, is skipped and counted rather than held (docs/operations.md)
MAX_LINE = int(os.environ.get("LICENSE_SYNC_LOG_MAX_LINE", 64 << 10))


@dataclass
class LogTail:
    path: str
    tz: str = "UTC"
    grammar: LogGrammar = flexlm_log.GRAMMAR  # how its manager writes it
    clock: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    _fd: int | None = None
    _ino: tuple[int, int] | None = None
    _offset: int = 0
    _glanced: int = 0  # where the next glance between cycles begins, if past _offset
    _partial: bytes = b""
    _grew: datetime | None = None
    _dates: LogClock = field(init=False)
    skipped: int = 0  # lines over MAX_LINE skipped since the tail began
    _skipping: bool = False  # the rest of a line over MAX_LINE is being dropped
    # lines of a file rotated away, read to its end by a glance between cycles
    _held: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._dates = LogClock(self.tz)

    def catch_rotation(self) -> None:
        """Between cycles: if the path now names another file, read the old one to its end
        by the descriptor still open on it (its lines held for the next read) and follow
        the new one from its start. A log rotated several times within a cycle loses none
        of the files a glance saw."""
        with self._lock:
            if self._fd is None:
                return
            try:
                st = _regular(os.stat(self.path))
            except OSError:
                return  # between the rename and the new file: the cycle says if it stays
            if (st.st_dev, st.st_ino) != self._ino:
                self._follow((st.st_dev, st.st_ino), self.clock())

    def read(self) -> tuple[list[LogEvent], str | None]:
        """The events written since the last read, and why the log is down (or None)."""
        now = self.clock()
        try:
            with self._lock:
                events = self._read(now)
        except OSError as e:
            self._close()
            return [], f"log {self.path}: {e.strerror or e}"
        quiet = self.grammar.quiet_for
        if quiet is not None and self._grew is not None and now - self._grew > quiet:
            hours = (now - self._grew).total_seconds() / 3600
            return events, f"log {self.path}: nothing written for {hours:.0f} h"
        return events, None

    def _read(self, now: datetime) -> list[LogEvent]:
        st = _regular(os.stat(self.path))  # gone: FileNotFoundError, a log down
        ino = (st.st_dev, st.st_ino)
        if self._fd is None:  # the first read: from the end, the past is not this run's
            self._open(ino, st.st_size, now)
            return []
        if ino != self._ino:
            self._follow(ino, now)
        elif st.st_size < self._offset:  # truncated (copytruncate): from the start again
            self._offset, self._partial, self._glanced = 0, b"", 0
        lines, self._held = self._held + self._drain(), []
        if lines:
            self._grew = now
        self._dates.today = now.astimezone(self._dates.zone).date()
        return self.grammar.parse([ln.decode(errors="replace") for ln in lines], self._dates).events

    def _follow(self, ino: tuple[int, int], now: datetime) -> None:
        """Rotated: the rest of the old file held, by the descriptor still open on it, and
        the new file followed from its start."""
        self._held += self._drain()
        self._close()
        self._open(ino, 0, now)

    def _open(self, ino: tuple[int, int], offset: int, now: datetime) -> None:
        # not blocking: a FIFO put in the log's place between the stat and here opens at
        # once, and the fstat turns it away
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            _regular(os.fstat(self._fd))
        except OSError:
            self._close()
            raise
        self._ino, self._offset, self._partial, self._grew = ino, offset, b"", now
        self._glanced = 0
        if offset:  # what day it is (and whose log), from the lines before where reading begins
            start = max(0, offset - SEED)
            seen = os.pread(self._fd, offset - start, start).decode(errors="replace")
            lines = seen.splitlines()[1 if start else 0 :]  # a line cut by the window: not read
            self.grammar.parse(lines, self._dates)

    def _drain(self) -> list[bytes]:
        assert self._fd is not None
        data = os.pread(self._fd, CHUNK, self._offset)
        self._offset += len(data)
        *whole, partial = (self._partial + data).split(b"\n")
        if self._skipping and whole:  # the end of a line too long, dropped with it
            whole, self._skipping = whole[1:], False
        kept = [line for line in whole if len(line) <= MAX_LINE]
        self.skipped += len(whole) - len(kept)
        if len(partial) > MAX_LINE or self._skipping:  # no newline in sight: drop, not hold
            self.skipped += not self._skipping
            partial, self._skipping = b"", True
        self._partial = partial
        return kept

    def peek(self, checkouts: bool = False) -> list[LogEvent]:
        """The events written since the last glance, without taking them (the next `read`
        still returns them): what the service glances at between cycles, following the
        log across a rotation first. Each glance goes on where the last one stopped, so a
        burst longer than a glance hides nothing written after it. Only a glance holding
        a refusal is parsed, or also a checkout or a checkin where `checkouts` asks."""
        self.catch_rotation()
        if self._fd is None:
            return []
        start = max(self._offset, self._glanced)
        try:
            data = os.pread(self._fd, PEEK, start)
        except OSError:
            return []
        lead = self._partial if start == self._offset else b""
        *whole, rest = (lead + data).split(b"\n")
        self._glanced = max(self._glanced, start + len(data) - len(rest))
        held = b"\n".join(self._held)
        marks = self.grammar.refusal_marks + (self.grammar.checkout_marks if checkouts else ())
        if not any(mark in data or mark in held for mark in marks):
            return []
        whole = self._held + whole
        dates = replace(self._dates)  # a copy: a glance moves no date on
        return self.grammar.parse([ln.decode(errors="replace") for ln in whole], dates).events

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None


def _regular(st: os.stat_result) -> os.stat_result:
    """Only a regular file is followed: a FIFO blocks a reader for ever and a device
    (a link to /dev/urandom) never ends; either is a log down, said at once."""
    if not stat.S_ISREG(st.st_mode):
        raise OSError(
            errno.EINVAL,
            "not a regular file (a FIFO, a device or a directory): only a file is followed",
        )
    return st
