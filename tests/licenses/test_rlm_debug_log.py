"""An RLM ISV server's debug log: its refusals, checkouts and check-ins read in the shapes
the fixtures' README describes, dated in the log's own year, and an RLM source's `log:`
reading either kind of log."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sync.licenses.kinds import TOOLS
from sync.licenses.logs import LogClock
from sync.licenses.rlm_debug_log import parse_log
from sync.policy import PolicyErrors, parse_policy
from tests.support.clirun import run_cli

FIXTURES = Path(__file__).parent.parent / "fixtures"
DLOG = FIXTURES / "rlm_debug_log/foundry.dlog"


def test_a_debug_log_gives_refusals_with_reasons_checkouts_and_check_ins_in_their_year():
    read = parse_log(DLOG.read_text())
    got = [(e.kind, e.user, e.host, e.count, e.reason) for e in read.events]
    assert got == [
        ("OUT", "ann", "ws-01", 1, None),
        ("OUT", "cara", "ws-03", 2, None),
        ("DENIED", "bob", "ws-02", 1, "All licenses in use"),  # the reason on the next line
        ("IN", "ann", "ws-01", 1, None),
        ("DENIED", "render", "render-013", 1, "All licenses in use"),  # after ` - `
    ]
    assert {e.vendor for e in read.events} == {"foundry"} and read.unread == 1
    assert read.events[2].at == datetime(2026, 12, 30, 9, 35, tzinfo=UTC)
    assert read.events[-1].at == datetime(2027, 1, 1, 0, 1, tzinfo=UTC)  # into the new year


def test_without_a_full_date_the_year_is_the_readers_and_never_in_the_future():
    line = "12/30 09:35 (foundry) DENIED: (1) nuke_r v1 to bob@ws-02\n"
    [late] = parse_log(line, today=date(2027, 1, 2)).events
    assert late.at is not None and late.at.year == 2026  # last December, read in January
    [now] = parse_log(line, today=date(2026, 12, 30)).events
    assert now.at is not None and now.at.year == 2026
    [unknown] = parse_log(line).events  # neither: no date rather than a wrong one
    assert unknown.at is None


def test_an_rlm_source_reads_either_kind_of_log_named_or_told_from_its_lines():
    report = (FIXTURES / "rlm_log/studio.rlmlog").read_text()
    either = TOOLS["rlm"].log
    assert either is not None
    for text in (report, DLOG.read_text()):
        refused = [
            e for e in either.parse(text.splitlines(), LogClock()).events if e.kind == "DENIED"
        ]
        assert len(refused) == 2, text[:40]
    debug_only = TOOLS["rlm"].logs["debug"].parse(report.splitlines(), LogClock())
    assert debug_only.events == []  # named, it reads only its own kind


def test_the_policy_names_a_log_kind_its_manager_writes_or_says_which_it_could():
    base = 'sources:\n  lic: {{kind: {kind}, servers: ["5053@lic2"], log: {{path: /x, {fmt}}}}}\n'
    parse_policy(base.format(kind="rlm", fmt="format: debug"), "p.yaml")
    with pytest.raises(PolicyErrors) as e:
        parse_policy(base.format(kind="flexlm", fmt="format: report"), "p.yaml")
    assert "give log.format debug, or leave it out" in str(e.value)


@pytest.mark.parametrize("fmt", ["rlm-debug-log", "rlm-log"])
def test_parse_prints_what_a_debug_log_holds(fmt):
    p = run_cli("parse", "--format", fmt, str(DLOG), "--compact")
    assert p.returncode == 0, p.stderr
    assert '"refused": 2' in p.stdout and '"unread": 1' in p.stdout
    assert f'"format": "{fmt}"' in p.stdout
