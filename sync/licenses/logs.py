"""What a license server's log says, whatever its manager: events (who checked a feature
out or in, who was refused or queued), and the date the log carries from line to line.
Each manager's grammar is a module of its own (flexlm_log.py, rlm_log.py), registered on
its `Tool` (`parse_log`). Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

REFUSED = ("DENIED", "UNSUPPORTED")  # a checkout refused; QUEUED waits, IN and OUT move


@dataclass(frozen=True, slots=True)
class LogEvent:
    at: datetime | None  # None: before the log said what day it is
    vendor: str
    kind: str  # OUT | IN | DENIED | QUEUED | UNSUPPORTED
    feature: str
    user: str
    host: str
    reason: str | None = None  # the server's, for a refusal or a queue
    count: int = 1


@dataclass
class LogClock:
    """What the log said of the date so far: carried from one read of a tail to the next."""

    tz: str = "UTC"
    day: date | None = None
    last: time | None = None  # the last time of day read, to see midnight pass
    vendor: str = ""  # the vendor daemon a log is of, where its lines do not name it (RLM)
    today: date | None = None  # the reader's date: a year for a log whose lines give none

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def at(self, t: time) -> datetime | None:
        """The moment of a time of day the log wrote, in the date it last gave. A time
        earlier than the last is the next day only when the step back is over 12 hours
        (23:59 then 00:01); a smaller one is a clock set back (DST's hour, an NTP step,
        a host's clock mended) on the same day, never a day in the future."""
        if self.day is not None and self.last is not None and t < self.last:
            if (self.last.hour * 60 + self.last.minute) - (t.hour * 60 + t.minute) > 12 * 60:
                self.day += timedelta(days=1)  # past midnight
        self.last = t
        if self.day is None:
            return None
        return datetime.combine(self.day, t, tzinfo=ZoneInfo(self.tz))


@dataclass
class LogRead:
    events: list[LogEvent] = field(default_factory=list)
    unread: int = 0  # lines that look like events but could not be read

    def reason_below(self, vendor: str, reason: str | None) -> None:
        """The reason a daemon wrote on the line after a refusal, given to that refusal
        when it has none (None: the line is no reason)."""
        last = self.events[-1] if self.events else None
        if reason and last and not last.reason and last.kind in REFUSED and last.vendor == vendor:
            self.events[-1] = replace(last, reason=reason)


def calendar_date(year: int, month: int, day: int) -> date | None:
    """The date, or None for one that is not (a garbled line)."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


LogParser = Callable[[list[str], LogClock], LogRead]  # whole lines → events, the date carried


@dataclass(frozen=True)
class LogGrammar:
    """How one manager's server log is read: what a source's `log:` follows."""

    name: str  # what the manager calls it, for messages
    parse: LogParser
    refusal_marks: tuple[bytes, ...]  # bytes only a refusal's line holds: a cheap glance
    quiet_for: timedelta | None  # silent this long, the log counts as down (None: never)
    checkout_marks: tuple[bytes, ...] = ()  # bytes a checkout's or a checkin's line holds


def either(first: LogGrammar, second: LogGrammar, is_second: Callable[[str], bool]) -> LogGrammar:
    """A log in one grammar or the other, told line by line (`is_second`): a source's
    `log:` that does not say which kind of log it is."""

    def parse(lines: list[str], clock: LogClock) -> LogRead:
        out = LogRead()
        for second_kind, run in groupby(lines, key=is_second):
            read = (second if second_kind else first).parse(list(run), clock)
            out.events += read.events
            out.unread += read.unread
        return out

    quiet = first.quiet_for and second.quiet_for and max(first.quiet_for, second.quiet_for)
    return LogGrammar(
        f"{first.name} or {second.name}",
        parse,
        first.refusal_marks + second.refusal_marks,
        quiet or None,
        first.checkout_marks + second.checkout_marks,
    )
