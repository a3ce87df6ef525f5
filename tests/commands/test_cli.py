"""Every command, as a user runs it: help, README coverage, plan/explain exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sync.edges.history import History
from sync.process.cli import build_parser, main
from sync.values.settings import CYCLE_TABLES
from tests.support.clirun import run_cli
from tests.support.paths import ROOT
from tests.support.policy import edit_pool


def commands() -> list[str]:
    """The commands `license-sync --help` lists."""
    listed = build_parser().format_help().split("COMMAND\n", 2)[-1].split("\noptions:")[0]
    return sorted(m.group(1) for m in re.finditer(r"^    (\w+)\s", listed, re.M))


cli = run_cli  # in-process; `python -m sync` itself is run once below


def subprocess_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_help_lists_every_command():
    assert commands() == sorted(
        ["audit", "demo", "explain", "healthcheck", "history", "init", "parse", "plan", "replay",
         "restore", "run", "schema", "simulate", "state", "validate"]
    )  # fmt: skip


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert len(out.splitlines()) > 3
    assert "usage: license-sync " + command in out


@pytest.mark.parametrize("command", commands())
def test_every_command_is_in_the_readme(command):
    readme = (ROOT / "README.md").read_text()
    assert f"license-sync {command}" in readme


def test_no_command_prints_help_and_fails():
    p = subprocess_cli()
    assert p.returncode == 1 and "COMMAND" in p.stdout


def test_plan_shows_pending_change_and_exits_2_when_asked(farm_env):
    p = cli("plan", "--config", farm_env["policy"], "--detailed-exitcode", env=farm_env["env"])
    assert p.returncode == 2, p.stderr
    assert p.stdout.splitlines()[0] == "Planned live: the farms and license servers read now"
    assert "~ nuke/amount.nuke: maxCount 19 → 14" in p.stdout
    assert "why: decrease 19 → 14 applied at once" in p.stdout
    assert "Plan: 1 limit(s) and 0 job cap(s) to change." in p.stdout
    p = cli("plan", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 0, p.stderr  # a plan that was made is a success, as terraform's
    assert "Plan: 1 limit(s)" in p.stdout
    assert farm_env["farm"].limits[farm_env["limit"]].max_count == 19  # read-only
    assert not farm_env["db"].exists()  # and no history written


def test_plan_no_change_exits_0(farm_env):
    farm_env["farm"].limits[farm_env["limit"]].max_count = 14
    p = cli("plan", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No changes." in p.stdout


def test_plan_error_exits_1(farm_env):
    del farm_env["farm"].limits[farm_env["limit"]]
    p = cli("plan", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 1
    assert "not found in the farm" in p.stdout


def test_explain_prints_the_arithmetic(farm_env):
    p = cli("explain", "--config", farm_env["policy"], "nuke", env=farm_env["env"])
    assert p.returncode == 0, p.stderr
    assert re.search(r"external\s+= max\(0, 5 − 0\) = 5", p.stdout)
    assert "free      = 20 − 5 − 0 − 1 = 14" in p.stdout


def test_explain_unknown_pool(farm_env):
    p = cli("explain", "--config", farm_env["policy"], "nope", env=farm_env["env"])
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f"license-sync explain: error: no pool 'nope' in {farm_env['policy']}; pools: nuke"
    )


def test_run_once_and_dry_run(farm_env):
    p = cli("run", "--config", farm_env["policy"], "--once", "--dry-run", env=farm_env["env"])
    assert p.returncode == 0, p.stderr
    assert "nuke/amount.nuke: total=20 external=5" in p.stdout
    assert farm_env["farm"].limits[farm_env["limit"]].max_count == 19
    p = cli("run", "--config", farm_env["policy"], "--once", env=farm_env["env"])
    assert p.returncode == 0
    assert farm_env["farm"].limits[farm_env["limit"]].max_count == 14


def test_run_with_invalid_policy_fails_with_positions(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("farms: {}\n")
    p = cli("run", "--config", str(bad))
    assert p.returncode == 1
    assert "bad.yaml:1:8: farms: a mapping where a list belongs" in p.stderr
    assert "Traceback" not in p.stderr


def test_a_second_instance_on_the_same_history_refuses_to_start(farm_env):
    from sync.edges.history import History

    first = History(str(farm_env["db"]), lock=True)  # as `license-sync run` holds it
    try:
        p = cli("run", "--once", "--config", farm_env["policy"], env=farm_env["env"])
        assert p.returncode == 1
        assert f"another license-sync (pid {os.getpid()}) is using the history" in p.stderr
        assert farm_env["farm"].limits[farm_env["limit"]].max_count == 19  # nothing written
    finally:
        first.close()
    p = cli("run", "--once", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 0, p.stderr  # the lock went with the first


def test_version_is_the_installed_packages():
    from importlib.metadata import version

    p = cli("--version")
    assert p.returncode == 0
    assert p.stdout.strip() == f"license-sync {version('deadline-license-sync')}"


def test_help_lists_every_exit_code_a_command_gives():
    top = cli("--help").stdout
    assert "0 ok, 1 error" in top and "replay" in top and "--detailed-exitcode" in top
    assert "Exit 0: no difference; 2: differences." in cli("replay", "--help").stdout


def test_validate_knows_the_aws_regions_and_suggests_one(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "farms:\n"
        "  - {id: farm-0123456789abcdef0123456789abcdef, region: us-west2}\n"
        "  - {id: farm-1123456789abcdef0123456789abcdef, region: eu-central-1}\n"
        "sources: {s: {kind: static, features: {f: 3}}}\n"
        "pools: {p: {farm: farm-1123456789abcdef0123456789abcdef, limit: amount.x,"
        " features: [{source: s, feature: f}]}}\n"
    )
    p = cli("validate", str(bad))
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f"{bad}:2:57: farm farm-0123456789abcdef0123456789abcdef: 'us-west2' is not an "
        "AWS region; did you mean 'us-west-2'?"
    )


@pytest.mark.parametrize("table", sorted(CYCLE_TABLES))
def test_history_prints_every_table_it_offers(table, tmp_path):
    """`history --table` offers each table the history keeps, and prints each: a table
    added to the history without its columns here was a KeyError."""
    db = tmp_path / "h.db"
    History(str(db)).close()
    p = cli("history", "--db", str(db), "--table", table)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr


def test_a_pool_the_policy_itself_exhausts_is_told_apart_from_artists_holding_it(farm_env):
    """Read live, the server issues 20: a reserve of 19 and a headroom of 1 leave the farm
    nothing whatever the artists do. The plan says it is the policy's doing, and fails
    under --detailed-exitcode (a CI gate) instead of reporting a change."""
    path = Path(farm_env["policy"])
    edit_pool(path, reserve=19, headroom=1)
    p = cli("plan", "-c", str(path), env=farm_env["env"])
    assert p.returncode == 0, p.stderr
    said = "pool nuke: reserve 19 and headroom 1 keep back all 20 licenses its servers issue"
    assert said in p.stderr and "the policy itself leaves the farm none" in p.stderr
    gate = cli("plan", "-c", str(path), "--detailed-exitcode", env=farm_env["env"])
    assert gate.returncode == 1, gate.stdout + gate.stderr
    edit_pool(path, reserve=2)
    fine = cli("plan", "-c", str(path), "--detailed-exitcode", env=farm_env["env"])
    assert fine.returncode in (0, 2) and "keep back all" not in fine.stderr, fine.stderr
