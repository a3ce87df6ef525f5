"""A FlexLM debug log (lmgrd's and its vendor daemons', interleaved), read as events: who
checked a feature out or in, and who was refused. Pure: text in, events out.

Each line is `HH:MM:SS (daemon) MESSAGE`, the hour sometimes space-padded. A line has no
date: the date is the last `TIMESTAMP M/D/YYYY` line's (lmgrd and each daemon write one
at start and every few hours), or the `(@daemon-SLOG@) Time: Thu Apr 30 2015 15:34:04`
line newer daemons write, carried forward past midnight when a time is earlier than the
one before it. The events of interest:

    09:05:00 (foundry) OUT: "nuke_r" ann@ws-01
    09:35:00 (foundry) DENIED: "nuke_r" bob@ws-02  (Licensed number of users already reached…)
    09:36:10 (foundry) QUEUED: "nuke_r" bob@ws-02  (...)
    10:00:00 (foundry) IN: "nuke_r" ann@ws-01  (3 licenses)

and the shapes other daemons write for the same events (tests/fixtures/flexlm_log):

    09:35:00 (adskflex) DENIED: "86985MAYA_2024_0F" bob@ws-02 "v1.000"(License server …)
    09:35:00 (adskflex) DENIED: 86985MAYA_2024_0F [adskflex] bob@ws-02
    09:35:00 (adskflex)     (Licensed number of users already reached. (-4,342))

the requested version quoted and run straight into the reason's parenthesis; the feature
unquoted and tagged with its vendor, the reason on the daemon's next line. Times are the
server's local time, in the zone the policy gives for its log.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from sync.licenses.logs import LogClock, LogEvent, LogGrammar, LogRead, calendar_date

_LINE = re.compile(r"^\s*(\d{1,2}):(\d{2}):(\d{2})\s+\((?P<daemon>[^)]+)\)\s+(?P<msg>.*?)\s*$")
_EVENT = re.compile(
    r"^(?P<kind>OUT|IN|DENIED|QUEUED|UNSUPPORTED):\s+"
    r'(?:"(?P<quoted>[^"]+)"|(?P<feature>[^\s"@\[]+))(?:\s+\[[^\]]*\])?\s+'
    r'(?P<user>[^@\s]*)@(?P<host>[^\s"(\[]+)(?:\s*\[[^\]]*\])?'
    r'(?:\s*"[^"]*")?(?:\s*\((?P<detail>.*)\))?$'
)
_STAMP = re.compile(r"^TIMESTAMP\s+(\d{1,2})/(\d{1,2})/(\d{4})$")
_SLOG = re.compile(r"Time:\s+\w{3}\s+(\w{3})\s+(\d{1,2})\s+(\d{4})\s")
_COUNT = re.compile(r"^(\d+)\s+licenses?$")
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def parse_lines(lines: list[str], clock: LogClock) -> LogRead:
    """Events of these whole lines, in order; `clock` carries the date across calls."""
    out = LogRead()
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        t = time(int(m[1]) % 24, int(m[2]), int(m[3]))
        msg = m["msg"]
        if stamp := _STAMP.match(msg):
            clock.day, clock.last = calendar_date(int(stamp[3]), int(stamp[1]), int(stamp[2])), t
            continue
        if (slog := _SLOG.search(msg)) and slog[1] in _MONTHS:
            clock.day, clock.last = calendar_date(int(slog[3]), _MONTHS[slog[1]], int(slog[2])), t
            continue
        at = clock.at(t)
        if not msg.startswith(("OUT:", "IN:", "DENIED:", "QUEUED:", "UNSUPPORTED:")):
            # some daemons write a refusal's reason on their next line, in parentheses
            paren = msg.startswith("(") and msg.endswith(")")
            out.reason_below(m["daemon"], msg[1:-1].strip() if paren else None)
            continue
        ev = _EVENT.match(msg)
        if ev is None:
            out.unread += 1
            continue
        out.events.append(_event(at, m["daemon"], ev))
    return out


def _event(at: datetime | None, daemon: str, ev: re.Match[str]) -> LogEvent:
    detail = ev["detail"]
    count = _COUNT.match(detail) if detail else None
    reason = None if count or not detail else detail
    return LogEvent(
        at,
        daemon,
        ev["kind"],
        ev["quoted"] or ev["feature"],
        ev["user"],
        ev["host"],
        reason,
        int(count[1]) if count else 1,
    )


def parse_log(text: str, tz: str = "UTC") -> LogRead:
    """A whole log (`parse --format flexlm-log`)."""
    return parse_lines(text.splitlines(), LogClock(tz))


# daemons write a TIMESTAMP every few hours, idle or not: seven hours of nothing is a log
# no longer written
GRAMMAR = LogGrammar(
    "debug log",
    parse_lines,
    (b"DENIED:", b"UNSUPPORTED:"),
    timedelta(hours=7),
    (b"OUT:", b"IN:"),
)
