"""An RLM report log read as events, in the grammar Reprise documents (fixture README)."""

from __future__ import annotations

import json
from pathlib import Path

from sync.licenses.logs import LogClock
from sync.licenses.rlm_log import parse_lines, parse_log
from tests.support.clirun import run_cli

STUDIO = Path(__file__).parent.parent / "fixtures/rlm_log/studio.rlmlog"


def test_a_report_log_gives_checkouts_refusals_and_queues_in_their_year():
    read = parse_log(STUDIO.read_text())
    got = [(e.kind, e.feature, e.user, e.host, e.at.isoformat() if e.at else None)
           for e in read.events]  # fmt: skip
    assert got == [
        ("OUT", "nuke_r", "cara", "ws-03", "2026-12-31T23:10:00+00:00"),
        # bob's first denial has last_attempt 0: his application tries elsewhere first
        ("DENIED", "nuke_r", "bob", "ws-077", "2026-12-31T23:55:00+00:00"),
        ("DENIED", "nuke_r", "render", "render-013", "2027-01-01T00:01:00+00:00"),
        ("QUEUED", "nuke_r", "dee", "ws-04", "2027-01-01T00:02:30+00:00"),
        ("IN", "nuke_r", "cara", "ws-03", "2027-01-01T00:05:00+00:00"),
        ("OUT", "nuke_r", "dee", "ws-04", "2027-01-01T00:05:01+00:00"),  # detailed form
    ]  # the small check-in names no product: passed over
    assert {e.vendor for e in read.events} == {"foundry"}  # from the ISV: header
    assert read.events[1].reason == "All licenses in use (-22)"
    assert read.unread == 1  # the garbled denial, counted, not raised


def test_the_date_and_isv_carry_from_one_read_to_the_next():
    lines = STUDIO.read_text().splitlines()
    clock = LogClock("Europe/London")
    head = parse_lines(lines[:8], clock)
    assert head.events == [] and clock.vendor == "foundry"
    rest = parse_lines(lines[8:], clock)
    assert rest.events[0].at is not None and rest.events[0].at.year == 2026
    assert rest.events[-1].at is not None and rest.events[-1].at.year == 2027
    assert str(rest.events[0].at.tzinfo) == "Europe/London"


def test_parse_prints_what_a_report_log_holds():
    p = run_cli("parse", "--format", "rlm-log", str(STUDIO))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["format"] == "rlm-log" and doc["refused"] == 2 and doc["unread"] == 1
    assert doc["events"][1]["reason"] == "All licenses in use (-22)"


def test_a_status_without_words_is_given_by_its_number():
    clock = LogClock()
    read = parse_lines(['DENY nuke_r 14.0 fay ws-06 "" 1 -99 1 01/01 00:42'], clock)
    assert [(e.kind, e.reason, e.at) for e in read.events] == [("DENIED", "RLM status -99", None)]
