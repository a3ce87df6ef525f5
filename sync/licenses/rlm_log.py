"""An RLM report log (an ISV server's `REPORTLOG` file), read as events: who checked a
product out or in, who was refused, who queued. Pure: text in, events out.

Its grammar is Reprise's own, documented in the RLM License Administration manual
("Reportlog File Format"), in its three formats (`std`, `small`, `detailed`):

    RLM Report Log Format 0, version 16.1, authenticated
    ISV: foundry, RLM version 16.1 BL2
    START lic2 03/12/2026 08:00
    OUT nuke_r 14.0 1 ann ws-01 "" 1 1 0 41 41 3e8 "" "" "" 03/12 09:05:00
    DENY nuke_r 14.0 bob ws-02 "" 1 -22 1 03/12 09:35
    QUE nuke_r 14.0 bob ws-02 "" 1 42 "" "" "" 03/12 09:36:10
    IN 1 nuke_r 14.0 ann ws-01 "" 1 0 0 41 03/12 10:00:00

A line dates itself by month and day; the year is the START line's, carried into a new
year when the month goes back. A denial counts only with `last_attempt` set: with 0 the
application will try another server ("not true denials", the manual says). A `small`
check-in names no product and is passed over. Times are the server's local time, in the
zone the policy gives for its log.
"""

from __future__ import annotations

import re
from datetime import datetime, time

from sync.licenses.logs import LogClock, LogEvent, LogGrammar, LogRead, calendar_date

_TOKEN = re.compile(r'"[^"]*"|\S+')
_FORMAT = re.compile(r"^RLM Report Log Format (\d)")
_ISV = re.compile(r"^ISV:\s+([^,\s]+)")
_START = re.compile(r"^START\s+\S+\s+(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})")
_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?$")
# RLM_EL_* statuses a denial gives (the manual's "RLM Status Values", and Reprise's
# license.h); others by number alone
_WHY = {
    "-1": "No authorization for product",
    "-2": "Authorization is for another ISV",
    "-3": "Authorization has expired",
    "-4": "Wrong host for authorization",
    "-6": "Requested version not supported",
    "-8": "Checkout request for too many licenses",
    "-10": "On excludeall list",
    "-11": "On feature exclude list",
    "-12": "Not on the includeall list",
    "-13": "Not on the feature include list",
    "-14": "Request would go over license MAX",
    "-22": "All licenses in use",
}
# each record: where its product, user, host and count are, for the std/detailed
# layout and for the small one (None: that layout names no product)
_FIELDS: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int] | None]] = {
    "OUT": ((1, 4, 5, 7), (1, 3, 4, 6)),
    "IN": ((2, 4, 5, 7), None),
    "DENY": ((1, 3, 4, 6), (1, 3, 4, 6)),
    "QUE": ((1, 3, 4, 6), (1, 3, 4, 6)),
}
_KIND = {"OUT": "OUT", "IN": "IN", "DENY": "DENIED", "QUE": "QUEUED"}


def parse_lines(lines: list[str], clock: LogClock) -> LogRead:
    """Events of these whole lines, in order; `clock` carries the date and ISV across
    calls."""
    out = LogRead()
    for line in lines:
        text = line.strip()
        if _header(text, clock):
            continue
        tokens = _TOKEN.findall(text)
        if not tokens or tokens[0] not in _FIELDS:
            continue
        try:
            event = _event(tokens, clock)
        except (IndexError, ValueError):
            out.unread += 1
            continue
        if event is not None:
            out.events.append(event)
    return out


def _header(text: str, clock: LogClock) -> bool:
    """The log's start records: its ISV and the date it started; True if one."""
    if m := _ISV.match(text):
        clock.vendor = m[1]
        return True
    if m := _START.match(text):
        clock.day = calendar_date(int(m[3]), int(m[1]), int(m[2]))
        clock.last = time(int(m[4]) % 24, int(m[5]))
        return True
    return bool(_FORMAT.match(text))


def _event(tokens: list[str], clock: LogClock) -> LogEvent | None:
    record = tokens[0]
    full, small = _FIELDS[record]
    # std and detailed quote the ISV-defined field at 6, small at 5 (a DENY or QUE record
    # is laid out alike in both)
    where = full if len(tokens) > 6 and tokens[6].startswith('"') else small
    if where is None:
        return None  # a small check-in: no product, no user
    product, user, host, count = (tokens[i] for i in where)
    reason = None
    if record == "DENY":
        why, last_attempt = tokens[7], tokens[8]
        if last_attempt == "0":
            return None  # the application tries another server
        code = int(why)
        reason = f"{_WHY[why]} ({code})" if why in _WHY else f"RLM status {code}"
    return LogEvent(
        _when(tokens, clock),
        clock.vendor,
        _KIND[record],
        _bare(product),
        _bare(user),
        _bare(host),
        reason,
        int(count),
    )


def _when(tokens: list[str], clock: LogClock) -> datetime | None:
    """The line's `mm/dd hh:mm[:ss[.frac]]` (or a small line's `hh:mm`), in its year."""
    for i, token in enumerate(tokens):
        t = _TIME.match(token)
        if t is None:
            continue
        at = time(int(t[1]) % 24, int(t[2]), int(t[3] or 0))
        day = _DAY.match(tokens[i - 1]) if i else None
        if day is not None and clock.day is not None:
            month, mday = int(day[1]), int(day[2])
            year = clock.day.year + (month < clock.day.month)  # December, then January
            clock.day = calendar_date(year, month, mday) or clock.day
            clock.last = None  # the line gave its day: nothing to carry past midnight
        return clock.at(at)
    return None


def _bare(token: str) -> str:
    return token[1:-1] if token.startswith('"') and token.endswith('"') else token


def parse_log(text: str, tz: str = "UTC") -> LogRead:
    """A whole log (`parse --format rlm-log`)."""
    return parse_lines(text.splitlines(), LogClock(tz))


# how often an idle ISV server writes to its report log the manual does not say: silence
# alone never counts it down (gone or unreadable does)
GRAMMAR = LogGrammar("report log (REPORTLOG)", parse_lines, (b"DENY ",), None, (b"OUT ", b"IN "))
