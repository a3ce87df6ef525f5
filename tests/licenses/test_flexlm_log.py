"""A FlexLM debug log: its refusals read from lines real servers wrote (the fixtures'
README says where each comes from), and the log followed across rotation and truncation."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync.edges.sources.logtail import LogTail
from sync.licenses.flexlm_log import parse_log
from tests.support.clirun import run_cli

LOGS = Path(__file__).parent.parent / "fixtures/flexlm_log"


def refused(text: str, tz: str = "UTC"):
    return [e for e in parse_log(text, tz).events if e.kind in ("DENIED", "UNSUPPORTED")]


def test_a_denial_in_a_real_log_has_its_feature_user_host_time_and_reason():
    [d] = refused((LOGS / "partek.log").read_text(), "America/New_York")
    assert (d.vendor, d.feature, d.user, d.host) == ("parteklm", "base", "asdsd", "NSDNA78")
    assert d.reason == "Licensed number of users already reached. (-4,342)"
    # the date from the `(@parteklm-SLOG@) Time:` line, the time the server's local time
    assert d.at == datetime(2015, 4, 30, 19, 36, 36, tzinfo=UTC)
    [g] = refused((LOGS / "geneious.log").read_text())
    assert (g.feature, g.user, g.host) == ("floating_license", "James", "ham")
    assert g.reason == "Users are queued for this feature. (-24,332)"
    assert g.at is not None and g.at.date().isoformat() == "2014-11-20"  # from TIMESTAMP


def test_denials_in_the_other_shapes_daemons_write_are_read_with_their_reasons():
    read = parse_log((LOGS / "adskflex.log").read_text())
    got = [(e.user, e.feature, e.reason) for e in read.events if e.kind == "DENIED"]
    assert got == [
        # the requested version quoted, run straight into the reason
        ("bob", "86985MAYA_2024_0F",
         "License server system does not support this version of this feature. (-25,334)"),
        # the feature unquoted and tagged with its vendor, the reason on the next line
        ("cara", "86985MAYA_2024_0F", "Licensed number of users already reached. (-4,342)"),
        ("render", "86985MAYA_2024_0F", "Licensed number of users already reached. (-4,342)"),
    ]  # fmt: skip
    assert read.unread == 0 and [e.kind for e in read.events].count("OUT") == 1


def test_the_date_carries_past_midnight_and_counts_come_from_the_line():
    events = parse_log((LOGS / "studio.log").read_text()).events
    out = {(e.kind, e.user): e for e in events}
    assert out[("OUT", "ann")].count == 2 and out[("OUT", "ann")].at.day == 2
    assert out[("DENIED", "bob")].at == datetime(2026, 12, 3, 0, 1, 5, tzinfo=UTC)
    assert out[("UNSUPPORTED", "cara")].feature == "nukex_i"


def test_lines_before_any_date_have_none_and_garbled_events_are_counted():
    read = parse_log(
        '10:00:00 (foundry) DENIED: "nuke_r" x@y  (no)\n10:00:01 (foundry) OUT: junk\n'
    )
    assert [e.at for e in read.events] == [None] and read.unread == 1


def test_parse_prints_what_a_log_holds():
    p = run_cli("parse", "--format", "flexlm-log", str(LOGS / "studio.log"), "--compact")
    assert p.returncode == 0, p.stderr
    assert '"refused": 3' in p.stdout and '"kind": "QUEUED"' in p.stdout


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 3, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def line(user: str, t: str = "09:30:00") -> str:
    why = "Licensed number of users already reached. (-4,342)"
    return f'{t} (foundry) DENIED: "nuke_r" {user}@ws  ({why})\n'


def test_the_tail_reads_only_what_is_written_after_it_starts(tmp_path):
    log = tmp_path / "foundry.log"
    log.write_text("08:00:00 (foundry) TIMESTAMP 12/3/2026\n" + line("old"))
    tail = LogTail(str(log), clock=Clock())
    assert tail.read() == ([], None)  # the past is not this run's
    with log.open("a") as fh:
        fh.write(line("ann") + line("bob")[:20])  # bob's line half written
    events, err = tail.read()
    assert err is None and [e.user for e in events] == ["ann"]
    assert events[0].at == datetime(2026, 12, 3, 9, 30, tzinfo=UTC)  # dated from before
    with log.open("a") as fh:
        fh.write(line("bob")[20:])
    assert [e.user for e in tail.read()[0]] == ["bob"]


def test_the_tail_follows_rotation_and_truncation(tmp_path):
    log = tmp_path / "foundry.log"
    log.write_text("")
    tail = LogTail(str(log), clock=Clock())
    tail.read()
    with log.open("a") as fh:
        fh.write(line("before-rotation"))
    os.rename(log, tmp_path / "foundry.log.1")  # logrotate: the old file moved aside
    log.write_text(line("after-rotation"))
    assert [e.user for e in tail.read()[0]] == ["before-rotation", "after-rotation"]
    log.write_text(line("cut"))  # copytruncate: the same file, shorter than was read
    assert [e.user for e in tail.read()[0]] == ["cut"]


def test_a_log_gone_or_silent_is_a_log_down_and_comes_back(tmp_path):
    log = tmp_path / "foundry.log"
    log.write_text("")
    clock = Clock()
    tail = LogTail(str(log), clock=clock)
    tail.read()
    clock.t += timedelta(hours=8)
    assert tail.read()[1] == f"log {log}: nothing written for 8 h"
    log.unlink()
    events, err = tail.read()
    assert events == [] and err is not None and "No such file" in err
    log.write_text(line("ann"))
    assert tail.read() == ([], None)  # back: followed from its end again


def test_a_clock_set_back_hours_keeps_its_day_and_midnight_still_turns_it(tmp_path):
    """Before: a step back of more than an hour was taken for midnight, and the refusals
    after it dated a day in the future (through `parse`, as a TD checks a log)."""
    log = tmp_path / "foundry.log"
    why = "(Licensed number of users already reached. (-4,342))"
    lines = ["15:00:00 (foundry) TIMESTAMP 12/3/2026"] + [
        f'{t} (foundry) DENIED: "nuke_r" {who}  {why}'
        for t, who in [("15:10:00", "ann@ws-01"), ("13:05:00", "bob@ws-02"),
                       ("23:59:00", "cara@ws-03"), ("00:01:00", "dan@ws-04")]
    ]  # fmt: skip
    log.write_text("\n".join(lines) + "\n")
    p = run_cli("parse", "--format", "flexlm-log", str(log), "--compact")
    assert p.returncode == 0, p.stderr
    at = [e["at"][:16] for e in json.loads(p.stdout)["events"]]
    assert at == ["2026-12-03T15:10", "2026-12-03T13:05", "2026-12-03T23:59", "2026-12-04T00:01"]
