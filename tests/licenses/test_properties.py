"""Any text in: a report or a clean ParseError out; never another exception or a negative."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.licenses import Report, flexlm, rlm
from sync.values.errors import ParseError

FIX = Path(__file__).parent.parent / "fixtures"
FLEX = sorted((FIX / "flexlm").glob("*.txt"))
RLM = sorted((FIX / "rlm").glob("*.txt"))
PARSERS = {"flexlm": flexlm.parse, "rlm": rlm.parse}


def check(report: Report) -> None:
    assert isinstance(report, Report)
    for f in report.features:
        assert f.in_use >= 0 and f.reserved >= 0 and f.queued >= 0
        assert f.total is None or f.total >= 0
        for c in f.checkouts:
            assert c.count >= 0
            assert c.port is None or c.port >= 0
    report.to_dict()  # always serialisable


def parse_or_error(parser, text: str) -> None:
    try:
        report = parser(text)
    except ParseError:
        return
    check(report)


@pytest.mark.parametrize("fmt", PARSERS)
@given(text=st.text(max_size=2000))
@settings(max_examples=150, deadline=None)
def test_arbitrary_text(fmt, text):
    parse_or_error(PARSERS[fmt], text)


LINE_BITS = st.sampled_from(
    [
        "Users of f:  (Total of 3 licenses issued;  Total of 1 license in use)",
        "Users of f:  (Uncounted, node-locked)",
        "Users of f: (Error: x)",
        '"f" v1, vendor: v, expiry: 1-jan-0',
        "a b c (v1) (h/1 2), start Fri 1/2 3:04, 2 licenses",
        "a b c (v1) (h/1 2) queued for 3 licenses",
        "2 RESERVATIONs for USER x (h/1)",
        "License server status: 27000@h",
        "h: license server UP v1",
        "Vendor daemon status (on h):",
        "v: UP v1",
        "Error getting status: x",
        "rlm status on h (port 5)",
        "ISV servers:",
        "x 5 Yes 0",
        "x license pool status on h (port 5)",
        "p v1",
        "p v1, pool: 3",
        "count: 4, # reservations: 1, inuse: 2, exp: permanent",
        "Token-based license",
        "x license usage status on h (port 5)",
        "p v1: u@h 3/0 at 01/02 03:04 (handle: 1f)",
        'Error connecting to "rlm" server',
        "",
        "\r",
        "   ",
        "(",
        ")",
        ",",
        "-1",
        "99999999999999999999",
    ]
)


@pytest.mark.parametrize("fmt", PARSERS)
@given(lines=st.lists(LINE_BITS | st.text(max_size=40), max_size=40))
@settings(max_examples=200, deadline=None)
def test_lines_of_the_grammar_in_any_order(fmt, lines):
    parse_or_error(PARSERS[fmt], "\n".join(lines))


@st.composite
def mutated_fixture(draw, files):
    path = draw(st.sampled_from(files))
    lines = path.read_text().split("\n")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["drop", "dup", "cut", "insert", "swap"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if not lines:
            break
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=30)))
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


@given(text=mutated_fixture(FLEX))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_flexlm_fixtures(text):
    parse_or_error(flexlm.parse, text)


@given(text=mutated_fixture(RLM))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_rlm_fixtures(text):
    parse_or_error(rlm.parse, text)
