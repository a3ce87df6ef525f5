"""An RLM ISV server's debug log (its `DEBUGLOG`, by default `<isv>.dlog`), read as
events: who checked a product out or in, who was refused. Pure: text in, events out.

Reprise documents the report log's grammar but not this one's; the shapes below are
those real servers write, as public logs show them (tests/fixtures/rlm_debug_log):

    12/03 09:05 (foundry) OUT: nuke_r v2024.0701 by ann@ws-01
    12/03 09:06 (foundry) OUT: nuke_r v2024.0701 by cara@ws-03 (2 licenses)
    12/03 09:35 (foundry) DENIED: (1) nuke_r v2024.0701 to bob@ws-02
    12/03 09:35 (foundry)     All licenses in use
    12/03 10:00 (foundry) IN: nuke_r v2024.0701 by ann@ws-01

Every line dates itself by month and day, with the ISV it is of. The year comes from the
log's own full dates (a line holding `mm/dd/yyyy`, as the server's start lines do), else
from today, and is carried into a new year when the month goes back. A refusal's reason
is on its line (after ` - ` or in parentheses) or on the ISV's next line. Times are the
server's local time, in the zone the policy gives for its log.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from sync.licenses.logs import LogClock, LogEvent, LogGrammar, LogRead, calendar_date

_LINE = re.compile(
    r"^\s*(\d{1,2})/(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+\((?P<isv>[^)\s]+)\)\s?"
    r"(?P<msg>.*?)\s*$"
)
_FULL_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_WHO = r"(?P<user>[^@\s]*)@(?P<host>[^\s()]+)"
_EVENT = re.compile(
    r"^(?P<kind>OUT|IN|DENIED|QUEUED):\s+(?:\((?P<n>\d+)\)\s+)?(?P<product>\S+)\s+"
    rf"v\S+\s+(?:by|to|for)\s+{_WHO}(?P<rest>.*)$"
)
_COUNT = re.compile(r"\((\d+)\s+licenses?\)")
_KINDS = ("OUT:", "IN:", "DENIED:", "QUEUED:")


def parse_lines(lines: list[str], clock: LogClock) -> LogRead:
    """Events of these whole lines, in order; `clock` carries the date across calls."""
    out = LogRead()
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        msg = m["msg"]
        if full := _FULL_DATE.search(msg):
            clock.day = calendar_date(int(full[3]), int(full[1]), int(full[2])) or clock.day
        at = _at(int(m[1]), int(m[2]), time(int(m[3]) % 24, int(m[4]), int(m[5] or 0)), clock)
        clock.vendor = m["isv"]
        if not msg.startswith(_KINDS):
            # a refusal's reason may be the ISV's next line, indented
            out.reason_below(m["isv"], msg.strip() if msg[:1].isspace() else None)
            continue
        ev = _EVENT.match(msg)
        if ev is None:
            out.unread += 1
            continue
        out.events.append(_event(at, m["isv"], ev))
    return out


def _at(month: int, mday: int, t: time, clock: LogClock) -> datetime | None:
    """The line's moment: its month and day in the year the log carries (or today's)."""
    year = _year(month, mday, clock)
    day = calendar_date(year, month, mday) if year is not None else None
    if day is None:
        return None
    clock.day, clock.last = day, t
    return clock.at(t)


def _year(month: int, mday: int, clock: LogClock) -> int | None:
    if clock.day is not None:  # December's lines, then January's: a new year
        return clock.day.year + (month < clock.day.month)
    today = clock.today
    if today is None:
        return None
    # a date after tomorrow is last year's: a log read just after New Year
    tomorrow = today + timedelta(days=1)
    return today.year - ((month, mday) > (tomorrow.month, tomorrow.day))


def _event(at: datetime | None, isv: str, ev: re.Match[str]) -> LogEvent:
    rest = ev["rest"].strip()
    count = int(ev["n"]) if ev["n"] else 1
    if (many := _COUNT.search(rest)) is not None:
        count = int(many[1])
    reason = None
    if ev["kind"] in ("DENIED", "QUEUED") and rest and many is None:
        reason = rest.removeprefix("-").strip()
        if reason.startswith("(") and reason.endswith(")"):
            reason = reason[1:-1].strip()
    return LogEvent(
        at, isv, ev["kind"], ev["product"], ev["user"], ev["host"], reason or None, count
    )


def is_line(text: str) -> bool:
    """A line of this log (`mm/dd hh:mm (isv) …`), not of a report log."""
    return _LINE.match(text) is not None


def parse_log(text: str, tz: str = "UTC", today: date | None = None) -> LogRead:
    """A whole log (`parse --format rlm-debug-log`)."""
    return parse_lines(text.splitlines(), LogClock(tz, today=today))


# the manual says nothing of how often an idle ISV server writes here: silence alone never
# counts the log down (gone or unreadable does)
GRAMMAR = LogGrammar("debug log", parse_lines, (b"DENIED:",), None, (b"OUT:", b"IN:"))
