"""Readers run a real subprocess: a fake `lmutil` on PATH prints captured output."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from sync.edges.sources import (
    CommandSource,
    StaticSource,
    ToolSource,
)
from sync.edges.sources.runner import RunResult, run_tool
from sync.licenses import Feature, Report, impossible
from sync.licenses.kinds import parse_command_output
from sync.policy import check_server_spec
from sync.values.errors import SourceError

BIN = Path(__file__).parent.parent / "bin"
FIX = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def fake_path(monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    for var in ("FAKE_LM_OUTPUT", "FAKE_LM_MODE", "FAKE_LM_ARGV"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def flex(servers, timeout=10.0, **kw):
    return ToolSource("adsk", "flexlm", servers, "lmutil", timeout, **kw)


def test_reads_through_the_real_tool(fake_path, tmp_path):
    argv_log = tmp_path / "argv"
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/triad_one_down.txt"))
    fake_path.setenv("FAKE_LM_ARGV", str(argv_log))
    r = flex(["27000@lic1,27000@lic2,27000@lic3"]).read()
    assert r.up and r.features[0].in_use == 12
    assert argv_log.read_text() == "lmstat -a -c 27000@lic1,27000@lic2,27000@lic3\n"


def test_rlm_reader_argv(fake_path, tmp_path):
    argv_log = tmp_path / "argv"
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "rlm/full.txt"))
    fake_path.setenv("FAKE_LM_ARGV", str(argv_log))
    r = ToolSource("foundry", "rlm", ["5053@rlm1"], "rlmutil", 10).read()
    assert r.up and r.feature("nuke_r")[0].total == 15
    assert argv_log.read_text() == "rlmstat -a -c 5053@rlm1\n"


def test_failover_to_next_server(fake_path):
    fake_path.setenv(
        "FAKE_LM_OUTPUT",
        f"27000@a={FIX / 'flexlm/server_down.txt'},27000@b={FIX / 'flexlm/single_server.txt'}",
    )
    r = flex(["27000@a", "27000@b"]).read()
    assert r.up
    assert r.feature("nuke_r")[0].in_use == 7
    assert any(e.startswith("27000@a:") and "Cannot connect" in e for e in r.errors)


def test_all_servers_down(fake_path):
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/server_down.txt"))
    r = flex(["27000@a", "27000@b"]).read()
    assert not r.up
    assert len(r.errors) == 2


def test_missing_tool_is_a_down_report(fake_path):
    r = ToolSource("x", "flexlm", ["27000@a"], "/nonexistent/lmutil", 5).read()
    assert not r.up
    assert "not found" in r.errors[0]


def test_hanging_tool_is_killed_at_the_timeout(fake_path):
    fake_path.setenv("FAKE_LM_MODE", "hang")
    t0 = time.monotonic()
    r = flex(["27000@a"], timeout=1.0).read()
    elapsed = time.monotonic() - t0
    assert not r.up
    assert "did not answer within 1s" in r.errors[0]
    assert elapsed < 10  # the grandchild holding the pipe did not keep us waiting


def _alive(pid: int, cmdline: bytes) -> bool:
    """True if `pid` still runs `cmdline` (a zombie awaiting a reaper that is not us
    counts as gone, and so does another process that was given the same pid since)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        running = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and running == cmdline


def _gone(pid: int, cmdline: bytes, within: float = 2.0) -> bool:
    """SIGKILL is delivered at once but a process takes a moment to exit: on a busy
    machine (the suite on every core) allow it that moment, no more."""
    end = time.monotonic() + within
    while _alive(pid, cmdline):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_hanging_tool_leaves_no_process_behind(fake_path, tmp_path):
    pidfile = tmp_path / "pids"
    fake_path.setenv("FAKE_LM_MODE", "hang")
    fake_path.setenv("FAKE_LM_PIDFILE", str(pidfile))
    with pytest.raises(SourceError, match="did not answer"):
        run_tool([str(BIN / "lmutil"), "lmstat", "-a", "-c", "1@x"], 1.0)
    tool, grandchild = (int(p) for p in pidfile.read_text().split())
    assert not Path(f"/proc/{tool}").exists()  # killed and reaped by us: no zombie
    assert _gone(grandchild, b"sleep\x00300\x00")  # the whole process group was killed


def test_a_tool_that_writes_forever_is_stopped_at_the_cap(fake_path):
    fake_path.setenv("FAKE_LM_MODE", "forever")
    argv = [str(BIN / "lmutil"), "lmstat", "-a", "-c", "1@x"]
    with pytest.raises(SourceError, match="wrote more than 2 MiB; killed"):
        run_tool(argv, 20.0, max_output=2 << 20)


def test_output_at_the_cap_is_read_whole(fake_path):
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/single_server.txt"))
    argv = [str(BIN / "lmutil"), "lmstat", "-a", "-c", "1@x"]
    text = (FIX / "flexlm/single_server.txt").read_bytes()
    r = run_tool(argv, 20.0, max_output=len(text))
    assert r.stdout.encode() == text and r.returncode == 0


def test_tool_printing_nothing(fake_path):
    fake_path.setenv("FAKE_LM_MODE", "nothing")
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/single_server.txt"))
    r = flex(["27000@a"]).read()
    assert not r.up
    assert "no lmstat output" in r.errors[0]


def test_tool_printing_binary(fake_path):
    fake_path.setenv("FAKE_LM_MODE", "binary")
    r = flex(["27000@a"]).read()
    assert not r.up and r.errors


def test_nonzero_exit_with_good_output_is_still_read(fake_path):
    # lmutil exits non-zero when one triad member is down, yet prints a full status
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/triad_one_down.txt"))
    fake_path.setenv("FAKE_LM_MODE", "exit:1")
    assert flex(["27000@lic1,27000@lic2,27000@lic3"]).read().up


def test_nonzero_exit_with_garbage_reports_stderr(fake_path):
    r = flex(["27000@nowhere"]).read()  # no FAKE_LM_OUTPUT: prints to stderr, exits 1
    assert not r.up
    assert "exit 1" in r.errors[0] and "no such server" in r.errors[0]


def test_injected_runner_is_used_instead_of_a_process():
    calls = []

    def run(argv, timeout):
        calls.append((list(argv), timeout))
        return RunResult(tuple(argv), 0, (FIX / "flexlm/single_server.txt").read_text(), "")

    r = flex(["27000@lic1"], timeout=3, run=run).read()
    assert r.up
    assert calls == [(["lmutil", "lmstat", "-a", "-c", "27000@lic1"], 3)]


def test_parser_bug_does_not_escape(monkeypatch):
    def boom(text):
        raise RuntimeError("bug")

    from dataclasses import replace

    from sync.licenses.kinds import TOOLS

    monkeypatch.setitem(TOOLS, "flexlm", replace(TOOLS["flexlm"], parse=boom))
    r = flex(["27000@a"], run=lambda a, t: RunResult(tuple(a), 0, "x", "")).read()
    assert not r.up and "RuntimeError" in r.errors[0]


@pytest.mark.parametrize(
    "spec", ["27000@lic1", "27000@lic1,27000@lic2,27000@lic3", "5053@rlm-host.example.com", "1@a_b"]
)
def test_server_spec_accepted(spec):
    assert check_server_spec(spec) == spec


@pytest.mark.parametrize(
    "spec",
    [
        "lic1",
        "27000@",
        "@lic1",
        "27000@lic1;rm -rf /",
        "27000@$(id)",
        "99999@lic1",
        "270000@lic1",
        "27000@lic 1",
        "-c@lic1",
    ],
)
def test_server_spec_rejected(spec):
    with pytest.raises(ValueError, match="port@host"):
        check_server_spec(spec)


# -- command and static sources ----------------------------------------------------------


def write_script(tmp_path, body: str) -> str:
    path = tmp_path / "report-cmd"
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return str(path)


GOOD = {
    "format": "lmx",
    "up": True,
    "servers": [{"host": "lmx1", "port": 6200, "status": "up"}],
    "features": [
        {
            "vendor": "altair",
            "feature": "HyperWorks",
            "total": 100,
            "in_use": 40,
            "checkouts": [{"user": "ana", "host": "ws1", "count": 40}],
        }
    ],
}


def test_command_source_reads_a_json_report(tmp_path):
    script = write_script(tmp_path, f"import json; print(json.dumps({GOOD!r}))")
    r = CommandSource("lmx", [script]).read()
    assert r.up and r.format == "lmx"
    [f] = r.features
    assert (f.total, f.in_use, f.checkouts[0].count) == (100, 40, 40)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("print('hello')", "not JSON"),
        ("print('[1, 2]')", "must be a JSON object"),
        ("print('{\"features\": []}')", "missing 'up'"),
        (
            "import json; print(json.dumps({'up': True, 'features': [{'feature': 'a', "
            "'in_use': -1}]}))",
            "must not be negative",
        ),
        (
            "import json; print(json.dumps({'up': True, 'features': [{'feature': 'a', "
            "'in_use': '3'}]}))",
            "'in_use' must be int",
        ),
        ("import json; print(json.dumps({'up': 'yes'}))", "'up' must be bool"),
        ("import sys; sys.exit(3)", "exited 3"),
    ],
)
def test_command_source_rejects_garbage_clearly(tmp_path, body, message):
    r = CommandSource("lmx", [write_script(tmp_path, body)]).read()
    assert not r.up
    assert message in r.errors[0]


def test_command_report_round_trips_the_contract():
    from sync.licenses import flexlm
    from tests.conftest import fixture_text

    report = flexlm.parse(fixture_text("flexlm/single_server.txt"))
    back = parse_command_output(json.dumps(report.to_dict()))
    assert back.to_dict()["features"] == [
        {k: v for k, v in f.items() if k != "reservations"} for f in report.to_dict()["features"]
    ]


def test_static_source():
    r = StaticSource("fixed", {"nuke_r": 12}).read()
    assert r.up
    assert [(f.feature, f.total, f.in_use) for f in r.features] == [("nuke_r", 12, 0)]


@pytest.mark.parametrize(
    "script",
    [
        "import sys; sys.exit(3)",  # fails
        "import time; time.sleep(30)",  # hangs past the timeout
        "import sys; sys.stdout.write('x' * (3 << 20))",  # floods
    ],
)
def test_a_failing_command_never_shows_its_arguments(tmp_path, script):
    """A command source's argv may carry a password: the error names the tool only."""
    tool = tmp_path / "dsls-status"
    tool.write_text(f"#!{sys.executable}\n{script}\n")
    tool.chmod(0o755)
    src = CommandSource("dsls", [str(tool), "--password", "hunter2"], timeout=1.0)
    src.run = lambda argv, timeout: run_tool(argv, timeout, max_output=2 << 20)
    r = src.read()
    assert not r.up and r.errors
    assert all("hunter2" not in e and "--password" not in e for e in r.errors), r.errors
    assert all(str(tool) in e for e in r.errors)


def test_a_tool_that_exits_leaving_a_child_on_its_stdout_is_read(fake_path, tmp_path):
    """The tool answered and exited 0; a helper it started still holds the pipe."""
    fake_path.setenv("FAKE_LM_OUTPUT", str(FIX / "flexlm/triad_one_down.txt"))
    fake_path.setenv("FAKE_LM_MODE", "daemon")
    fake_path.setenv("FAKE_LM_PIDFILE", str(tmp_path / "pids"))
    t0 = time.monotonic()
    r = flex(["27000@lic1,27000@lic2,27000@lic3"], timeout=10.0).read()
    assert r.up and r.features[0].in_use == 12, r.errors
    assert time.monotonic() - t0 < 5  # a grace after the exit, not the timeout
    child = int((tmp_path / "pids").read_text().split()[1])
    assert _gone(child, b"sleep\x00300\x00")  # killed with the tool's group


NEW_MANAGER = r"""
import sys
from sync.licenses import Feature, Report
from sync.licenses.kinds import TOOLS
from sync.licenses.tool import Tool

def parse(text):
    name, total, used = text.split()
    return Report("lmx", True, features=(Feature(None, name, None, int(total), int(used)),))

# the one registration: a Tool in TOOLS, before anything reads it
TOOLS["lmx"] = Tool("lmx", sys.executable, lambda exe, server: [exe, "-c", "print('maya 9 4')"],
                    parse)

from sync.process.cli import build_parser
from sync.edges.sources import source_for
from sync.policy import parse_policy

loaded = parse_policy('''
farms: [{id: farm-0123456789abcdef0123456789abcdef}]
sources: {x: {kind: lmx, servers: ["6200@lmx1"], timeout: 5}}
pools: {maya: {limit: amount.maya, features: [{source: x, feature: maya}]}}
''')
report = source_for("x", loaded.policy.sources["x"]).read()
print(report.up, report.features[0].feature, report.features[0].total)
try:
    build_parser().parse_args(["parse", "--format", "lmx", "-"])
    print("parse --format lmx accepted")
except SystemExit:
    print("parse --format lmx refused")
"""


def test_a_new_license_manager_is_one_registration():
    """A kind registered in TOOLS is a policy `kind:` with its own default executable, a
    reader that runs its tool as a process, and a `parse --format` choice."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", NEW_MANAGER], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["True maya 9", "parse --format lmx accepted"]


@pytest.mark.parametrize(("total", "held"), [(2**31 - 1, False), (2**31, True)])
def test_a_count_is_impossible_from_the_first_past_what_deadline_takes(total, held):
    """2,147,483,647 (int32's largest, what a limit's maxCount takes) is a count a server
    may give; one more is a garbled read (2^31 issued once wrote maxCount 2,147,483,643)."""
    report = Report("flexlm", True, features=(Feature("foundry", "nuke_r", None, total, 0),))
    assert bool(impossible(report)) is held
