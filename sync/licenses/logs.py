"""What a license server's log says, whatever its manager: events (who checked a feature
out or in, who was refused or queued), and the date the log carries from line to line.
Each manager's grammar is a module of its own (flexlm_log.py, rlm_log.py), registered on
its `Tool` (`parse_log`). Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
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

    def at(self, t: time) -> datetime | None:
        """The moment of a time of day the log wrote, in the date it last gave."""
        if self.day is not None and self.last is not None and t < self.last:
            if (self.last.hour * 60 + self.last.minute) - (t.hour * 60 + t.minute) > 60:
                self.day += timedelta(days=1)  # past midnight (not a clock set back a bit)
        self.last = t
        if self.day is None:
            return None
        return datetime.combine(self.day, t, tzinfo=ZoneInfo(self.tz))


@dataclass
class LogRead:
    events: list[LogEvent] = field(default_factory=list)
    unread: int = 0  # lines that look like events but could not be read


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
