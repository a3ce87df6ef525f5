"""`license-sync init`: a starter policy from real captures, the fake farm over HTTP, the
fake lmutil as a real process, and a history — as a TD would run it."""

from __future__ import annotations

import os

import pytest
import yaml

from sync.policy import load_policy
from tests.support.clirun import run_cli as cli
from tests.support.paths import FIXTURES as FIXTURES_DIR

FIX = FIXTURES_DIR
OFFLINE = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # no lmutil, no credentials


@pytest.fixture
def studio(aws_env):
    """A farm with four limits behind the fake endpoint: what a studio might have."""
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm(count_delay=0)
    queue, _ = farm.add_queue_with_limit("amount.nuke", 10)
    for amount in ("amount.maya", "amount.arnold", "amount.houdini"):
        farm.associate(queue, farm.add_limit(amount, 5))
    with FakeDeadline(farm) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url}
        yield {"farm": farm, "queue": queue, "env": env, "url": server.url}


def captures() -> list[str]:
    return [
        "--capture", f"adsk={FIX / 'flexlm/triad_one_down.txt'}",
        "--capture", f"flex={FIX / 'flexlm/two_vendors.txt'}",
        "--capture", f"foundry=rlm:{FIX / 'rlm/full.txt'}",
    ]  # fmt: skip


def test_a_starter_from_captures_matches_features_to_limits(studio, tmp_path):
    out = tmp_path / "policy.yaml"
    p = cli("init", *captures(), "--farm", studio["farm"].farm_id, "--region", "us-west-2",
            "-o", str(out), env=studio["env"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    policy = load_policy(out).policy  # it validates
    assert sorted(policy.pools) == ["arnold", "maya", "nuke"]
    feeds = {n: [(r.source, r.feature) for r in pool.features] for n, pool in policy.pools.items()}
    assert feeds["nuke"] == [("foundry", "nuke_r"), ("foundry", "nuke_t"), ("foundry", "nukex_i")]
    assert feeds["maya"] == [("adsk", "87048MAYA_2024_0F")]  # Autodesk's feature code
    assert feeds["arnold"] == [("flex", "arnold")]
    # a guess says so on its line; a sure match does not
    assert 'feature: "nukex_i"}  # a guess' in text and 'feature: "nuke_r"}\n' in text
    assert 'feature: "87048MAYA_2024_0F"}  # a guess' in text
    # the triad is one source of three servers, as the capture names them
    assert policy.sources["adsk"].servers == ["27000@lic1,27000@lic2,27000@lic3"]
    assert "a triad, one source" in text
    # what init could not place is listed for the TD
    assert "#   amount.houdini on " in text
    assert "#   flex: render (" in text  # under both vendors, matching no limit
    assert "reserve: 2  # suggested: a tenth of the 17 issued" in text  # 15 + 2; nuke_t uncounted
    assert "# nuke_t (foundry): uncounted issued, 29 in use now" in text
    assert "1 limit(s) without a feature" in p.stderr and "a guess" in p.stderr
    assert f"license-sync validate {out}" in p.stderr


def test_a_starter_read_live_plans_against_the_farm(farm_env, tmp_path):
    out = tmp_path / "starter.yaml"
    farm_id = farm_env["farm"].farm_id
    p = cli("init", "--source", "lic=27000@lic1", "--farm", farm_id, "--region", "us-west-2",
            "-o", str(out), env=farm_env["env"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    policy = yaml.safe_load(out.read_text())
    assert policy["sources"]["lic"] == {"kind": "flexlm", "servers": ["27000@lic1"]}
    assert policy["pools"]["nuke"]["features"] == [{"source": "lic", "feature": "nuke_r"}]
    plan = cli("plan", "-c", str(out), env=farm_env["env"])
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "~ nuke/amount.nuke: maxCount 19 → " in plan.stdout
    # its next command where the license tools are missing: the plan says so and fails
    bare = {**farm_env["env"], "PATH": "/usr/bin:/bin"}
    down = cli("plan", "-c", str(out), "--detailed-exitcode", env=bare)
    assert down.returncode == 1, down.stdout + down.stderr
    assert "every license source is down (lic: " in down.stderr
    assert "lmutil" in down.stderr and "not a plan" in down.stderr
    # a second init does not overwrite the TD's edits
    again = cli("init", "--source", "lic=27000@lic1", "--farm", farm_id, "-o", str(out),
                env=farm_env["env"])  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr


def test_a_starter_from_a_history_needs_no_access_at_all(farm_env, tmp_path):
    run = cli("run", "--once", "--config", farm_env["policy"], env=farm_env["env"])
    assert run.returncode == 0, run.stderr
    p = cli("init", "--against", str(farm_env["db"]), env=OFFLINE)
    assert p.returncode == 0, p.stderr
    policy = yaml.safe_load(p.stdout)  # stdout holds the policy alone
    assert policy["farms"] == [{"id": farm_env["farm"].farm_id}]
    assert policy["pools"]["nuke"]["limit"] == "amount.nuke"
    assert "from the last cycle recorded in" in p.stdout.splitlines()[0]


def test_create_limits_is_a_plan_until_yes_and_idempotent(studio, tmp_path):
    farm, queue = studio["farm"], studio["queue"]
    other = farm.add_queue()
    args = ["init", *captures(), "--farm", farm.farm_id, "--region", "us-west-2", "--create-limits",
            "--limit", "katana=render", "--limit", "nuke=nuke_r,nuke_t"]  # fmt: skip
    before = {lim.amount for lim in farm.limits.values()}
    p = cli(*args, env=studio["env"])
    assert p.returncode == 0, p.stderr
    assert "+ create limit amount.katana on" in p.stderr
    assert f"+ associate queue {other} with amount.nuke" in p.stderr
    assert "nothing created: run again with --yes" in p.stderr
    assert {lim.amount for lim in farm.limits.values()} == before and p.stdout == ""

    p = cli(*args, "--yes", env=studio["env"])
    assert p.returncode == 0, p.stderr
    [katana] = [lim for lim in farm.limits.values() if lim.amount == "amount.katana"]
    assert katana.max_count == 1
    assert {(q, katana.limit_id) for q in (queue, other)} <= set(farm.associations)
    assert (other, next(x for x in farm.limits.values() if x.amount == "amount.nuke").limit_id) in (
        farm.associations
    )
    policy = yaml.safe_load(p.stdout)
    assert policy["pools"]["katana"]["features"] == [
        {"source": "flex", "feature": "render", "vendor": "adskflex"},
        {"source": "flex", "feature": "render", "vendor": "sidefx"},
    ]
    p = cli(*args, "--yes", env=studio["env"])  # again: nothing more is created
    assert p.returncode == 0, p.stderr
    assert "= amount.katana on" in p.stderr and "+ " not in p.stderr
    assert sum(lim.amount == "amount.katana" for lim in farm.limits.values()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "lic=27000"], "--source 'lic=27000'"),
        (["--source", "27000@lic1", "--farm", "farm-x"], "give NAME=SPEC"),
        (["--capture", "x=/nonexistent/lmstat.txt", "--farm", "farm-x"], "cannot read"),
        (["--farm", "farm-x"], "init needs something to read"),
        (["--against", "/nonexistent.db"], "no history at"),
        (["--against", "h.db", "--farm", "farm-x"], "not with --source, --capture or --farm"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    p = cli("init", *args, env=OFFLINE)
    assert p.returncode == 1 and message in p.stderr, p.stderr


def test_a_capture_that_is_no_status_output_says_what_to_do(tmp_path, studio):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    p = cli("init", "--capture", f"x={junk}", "--farm", studio["farm"].farm_id, env=studio["env"])
    assert p.returncode == 1
    assert "is not a status output init can read" in p.stderr and "x=rlm:" in p.stderr
    p = cli("init", "--source", "lic=27000@lic1", "--farm", studio["farm"].farm_id,
            env={**studio["env"], "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert p.returncode == 1 and "no AWS region: give --region" in p.stderr


def test_a_feature_named_for_a_limit_must_be_offered(studio):
    p = cli("init", *captures(), "--farm", studio["farm"].farm_id, "--create-limits",
            "--limit", "nuke=nuke_rr", "--region", "us-west-2", env=studio["env"])  # fmt: skip
    assert p.returncode == 1
    assert "no source offers a feature 'nuke_rr'; did you mean 'nuke_r'?" in p.stderr


def test_a_starter_counts_the_farms_workers_as_its_hosts_and_says_what_runs_around_the_limit(
    aws_env, tmp_path
):
    """The farm's workers hold 5 Nuke licenses, its limit counts the 2 of a job that
    declares amount.nuke: init writes `farm_selector: {workers: true}` and says 3 are
    used around the limit."""
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm
    from sync.fakes.license import FakeFeature, FakeLicenseServer
    from sync.fakes.templates import build, simple_template

    farm = FakeFarm(count_delay=0)
    farm.products = {"nuke": "amount.nuke"}
    queue, _ = farm.add_queue_with_limit("amount.nuke", 19)
    farm.add_job(queue, "comp", tasks=2, amount="amount.nuke", duration=10_000)
    farm.create_job(queue, build(simple_template("forgot", 3, command="nuke"), "JSON"))
    farm.tick(farm.now)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20, "amount.nuke")])
    lic.set_artists("nuke_r", 2)
    capture = tmp_path / "lmstat.txt"
    capture.write_text(lic.lmstat())
    out = tmp_path / "policy.yaml"
    with FakeDeadline(farm) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url}
        p = cli("init", "--capture", f"lic={capture}", "--farm", farm.farm_id,
                "--region", "us-west-2", "-o", str(out), env=env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    pool = load_policy(out).policy.pools["nuke"]
    assert pool.farm_selector is not None and pool.farm_selector.workers
    assert "outside the farm now: 2" in out.read_text()  # the artists, not the farm's 5
    assert "init: pool nuke: the farm's workers hold 5 of its licenses and its limits " in p.stderr
    assert "count 2: 3 used around them" in p.stderr


def test_a_starter_names_the_farms_hosts_as_the_server_shows_them(studio, tmp_path):
    """No farm holds a license now and its workers are unknown: the commented selector is
    the numbered host name the server shows (rndr-NNN), never one it does not (render-),
    nor the artists' workstations (ws-NNN)."""
    from sync.fakes.license import FakeFeature, FakeLicenseServer

    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    lic.set_artists("nuke_r", 4)  # on ws000 … ws003
    capture = lic.lmstat()
    rows = "".join(
        f"    render rndr-{n:03d} rndr-{n:03d} (v11.19) (lic1/27000 {n}), start Mon 12/1 9:00\n"
        for n in (4, 12, 31)
    )
    at = capture.index("    artist0 ")
    (tmp_path / "lmstat.txt").write_text(capture[:at] + rows + capture[at:])
    out = tmp_path / "policy.yaml"
    farm = ("--farm", studio["farm"].farm_id, "--region", "us-west-2")
    p = cli(
        "init",
        "--capture",
        f"lic={tmp_path / 'lmstat.txt'}",
        *farm,
        "-o",
        str(out),
        env=studio["env"],
    )
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert '# farm_selector: {hosts: ["^rndr-"]}  # a guess' in text, text
    assert "rndr-NNN" in text and "^render-" not in text and '"^ws' not in text
