"""`plan --against HISTORY` and `--at`: a policy change planned offline, as a policy
repository's CI runs it — no AWS credentials, no license server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.law.state import FarmRead, Observed, SourceState
from sync.licenses import Checkout, Feature, Report, Server
from sync.record import observation
from sync.values.domain import (
    PAUSED,
    Association,
    Decision,
    JobChange,
    JobInfo,
    JobOriginal,
    LimitState,
    StepAmounts,
)
from tests.support.clirun import run_cli as cli
from tests.support.paths import BIN
from tests.support.policy import policy as policy_doc
from tests.support.policy import pool, write_policy

OFFLINE = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # no lmutil, no credentials


@pytest.fixture
def recorded_run(farm_env, tmp_path):
    """One real cycle recorded in the history: maxCount 19 → 14."""
    p = cli("run", "--once", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 0, p.stderr
    assert farm_env["farm"].limits[farm_env["limit"]].max_count == 14
    return farm_env


def edited(farm_env, tmp_path: Path, old: str, new: str) -> str:
    text = Path(farm_env["policy"]).read_text()
    assert old in text
    path = tmp_path / "new.yaml"
    path.write_text(text.replace(old, new))
    return str(path)


def test_the_running_policy_plans_no_change_against_its_own_history(recorded_run):
    db = str(recorded_run["db"])
    p = cli(
        "plan", "-c", recorded_run["policy"], "--against", db, "--detailed-exitcode", env=OFFLINE
    )
    assert p.returncode == 0, p.stdout + p.stderr
    head = p.stdout.splitlines()[0]  # which cycle it planned against, and how old it is
    assert re.fullmatch(
        rf"Planned against {re.escape(db)}: the farm as its cycle of \S+ left it \(0m \d+s ago\)",
        head,
    ), head
    assert "nuke/amount.nuke: no change (maxCount 14)" in p.stdout  # the write folded in
    assert "No changes." in p.stdout


def test_a_policy_edit_shows_what_merging_it_would_change(recorded_run, tmp_path):
    new = edited(recorded_run, tmp_path, "headroom: 1", "headroom: 4")
    db = str(recorded_run["db"])
    p = cli("plan", "-c", new, "--against", db, "--detailed-exitcode", env=OFFLINE)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "~ nuke/amount.nuke: maxCount 14 → 11" in p.stdout
    assert "headroom 4" in p.stdout
    p = cli("plan", "-c", new, "--against", db, env=OFFLINE)
    assert p.returncode == 0  # without --detailed-exitcode, a plan made is a success
    assert recorded_run["farm"].limits[recorded_run["limit"]].max_count == 14  # offline


def test_explain_against_a_history(recorded_run, tmp_path):
    new = edited(recorded_run, tmp_path, "headroom: 1", "headroom: 4")
    p = cli("explain", "-c", new, "--against", str(recorded_run["db"]), "nuke", env=OFFLINE)
    assert p.returncode == 0, p.stderr
    assert "free      = 20 − 5 − 0 − 4 = 11" in p.stdout


def test_at_evaluates_schedules_at_another_time(recorded_run, tmp_path):
    new = edited(
        recorded_run,
        tmp_path,
        "headroom: 1",
        "headroom: 1\n    reserve:\n      schedule:\n"
        "        - {days: mon-fri, hours: '22:00-06:00', tz: Europe/Paris, value: 3}",
    )
    db = str(recorded_run["db"])

    def target(at: str) -> str:
        p = cli("explain", "-c", new, "--against", db, "--at", at, "nuke", env=OFFLINE)
        assert p.returncode == 0, p.stderr
        return next(line for line in p.stdout.splitlines() if "target =" in line)

    assert target("2026-12-01T23:30+01:00").endswith("= 11")  # a Tuesday night in Paris
    assert target("2026-12-02T05:59+01:00").endswith("= 11")  # the window runs past midnight
    assert target("2026-12-02T06:00+01:00").endswith("= 14")
    assert target("2026-12-05T23:30+01:00").endswith("= 14")  # Saturday night: no window


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "tomorrow"], "--at 'tomorrow': not a time; give e.g. 2026-12-01T09:30"),
        (["--at", "+2 weeks"], "--at +2 weeks:"),
    ],
)
def test_bad_at_is_a_clear_error(recorded_run, args, message):
    p = cli("plan", "-c", recorded_run["policy"], "--against", str(recorded_run["db"]), *args)
    assert p.returncode == 1
    assert message in p.stderr


def test_a_history_without_an_observation_is_a_clear_error(farm_env, tmp_path):
    from sync.edges.history import History

    empty = tmp_path / "empty.db"
    History(str(empty)).close()
    p = cli("plan", "-c", farm_env["policy"], "--against", str(empty), env=OFFLINE)
    assert p.returncode == 1
    assert "no observation recorded" in p.stderr
    p = cli("plan", "-c", farm_env["policy"], "--against", str(tmp_path / "nope.db"))
    assert p.returncode == 1 and "no history at" in p.stderr
    assert not (tmp_path / "nope.db").exists()  # not created by asking


def test_reading_a_copy_of_the_history_writes_nothing(recorded_run, tmp_path):
    import hashlib
    import sqlite3

    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    copy = copy_dir / "history.db"
    live, out = sqlite3.connect(recorded_run["db"]), sqlite3.connect(copy)
    live.backup(out)  # as `sqlite3 history.db ".backup copy.db"` makes it
    out.execute("DROP INDEX idx_cycles_started")  # as a history from an older version
    out.commit()
    out.close()  # the last connection: its WAL goes into the file
    live.close()
    assert sorted(f.name for f in copy_dir.iterdir()) == ["history.db"]
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    policy = recorded_run["policy"]
    for args in (
        ["plan", "-c", policy, "--against", str(copy)],
        ["explain", "-c", policy, "--against", str(copy), "nuke"],
        ["history", "--db", str(copy), "--all"],
        ["replay", "--history", str(copy), "-c", policy],
    ):
        p = cli(*args, env=OFFLINE)
        assert p.returncode == 0, (args, p.stdout + p.stderr)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    # SQLite may add its WAL index beside a WAL-mode file to read it, but no page is written
    wal = copy_dir / "history.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert {f.name for f in copy_dir.iterdir()} <= {
        "history.db",
        "history.db-wal",
        "history.db-shm",
    }


def test_offline_means_no_credentials_and_no_license_tool(recorded_run):
    assert not any(k.startswith("AWS_") for k in OFFLINE)
    assert not any((Path(d) / "lmutil").exists() for d in OFFLINE["PATH"].split(os.pathsep))
    p = cli("plan", "-c", recorded_run["policy"], env=OFFLINE)  # live: nothing to read
    assert "source lic: DOWN" in p.stdout


# -- what is recorded: the farm as the cycle left it -------------------------------------------


def observed() -> Observed:
    at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    report = Report(
        "flexlm",
        True,
        servers=(Server("lic1", 27000, "up", True),),
        features=(
            Feature(
                "foundry",
                "nuke_r",
                "2026.1",
                20,
                2,
                checkouts=(
                    Checkout(
                        "ann", "ws-1", "ws-1", "v1", "lic1", 27000, 101, "Mon 11/30 8:00", 2,
                        None, None,
                    ),
                ),
            ),
        ),
    )  # fmt: skip
    limit = LimitState(
        "farm-1", "limit-1", "nuke", "amount.nuke", 19, 3,
        (Association("q-1", "ACTIVE"), Association("q-2", "ACTIVE")),
    )  # fmt: skip
    job = JobInfo(
        "q-1", "job-1", "comp", 50, "READY", "CREATE_COMPLETE", {"READY": 4}, -1, at, "ann"
    )
    farm = FarmRead(
        "farm-1",
        {"amount.nuke": limit, "amount.gone": "limit not found in the farm"},
        jobs=(job,),
        unread=2,
        steps={"job-1": (StepAmounts("step-1", {"amount.nuke": 1.0}, 4),)},
    )
    sources = {"lic": SourceState(report, at - timedelta(minutes=1), 0.25)}
    return Observed(sources, {"farm-1": farm}, ("a read failed",))


def test_an_observation_survives_the_round_trip():
    at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    back, when, first_look = observation.load(observation.dump(observed(), at, first_look=True))
    assert (back, when, first_look) == (observed(), at, True)


def test_the_writes_that_landed_are_folded_in():
    at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    d = Decision("nuke", "farm-1", "amount.nuke", "limit-1", 19, 0, 0, (), pause=("q-2",))
    rec = JobOriginal("job-1", "farm-1", "q-1", "nuke", "limit-1", -1)
    cap = JobChange(at, rec, -1, 3, "cap")
    back, _, _ = observation.load(observation.dump(observed(), at, [d], [cap]))
    limit = back.farms["farm-1"].limits["amount.nuke"]
    assert isinstance(limit, LimitState)
    assert limit.max_count == 0
    assert dict((a.queue_id, a.status) for a in limit.associations) == {
        "q-1": "ACTIVE",
        "q-2": PAUSED,
    }
    jobs = back.farms["farm-1"].jobs
    assert jobs is not None and jobs[0].max_worker_count == 3


def test_what_another_version_wrote_is_refused():
    with pytest.raises(observation.RecordedError, match="version 99"):
        observation.load({"version": 99})
    data = observation.dump(observed(), datetime(2026, 11, 30, tzinfo=UTC))
    del data["farms"]["farm-1"]["jobs"]
    with pytest.raises(observation.RecordedError, match=r"cannot be read.*records it anew"):
        observation.load(data)


def test_a_feature_its_source_does_not_offer_is_an_error_not_a_floor(recorded_run, tmp_path):
    typo = edited(recorded_run, tmp_path, "feature: nuke_r", "feature: nuke_rr")
    p = cli("plan", "-c", typo, "--against", str(recorded_run["db"]), "--detailed-exitcode",
            env=OFFLINE)  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.strip() == (
        f"{typo}: pools.nuke.features.0: source 'lic' offers no feature 'nuke_rr'; "
        "did you mean 'nuke_r'?"
    )


def test_plan_as_json_for_a_bot(recorded_run, tmp_path):
    import json

    new = edited(recorded_run, tmp_path, "headroom: 1", "headroom: 4")
    db = str(recorded_run["db"])
    p = cli("plan", "-c", new, "--against", db, "--format", "json", "--detailed-exitcode",
            env=OFFLINE)  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    doc = json.loads(p.stdout)  # nothing else on stdout
    assert doc["version"] == 1 and doc["complete"] is True
    assert doc["against"]["live"] is False and doc["against"]["history"] == db
    assert doc["against"]["age_seconds"] >= 0
    [limit] = doc["limits"]
    assert (limit["pool"], limit["limit"], limit["max_count"], limit["new"]) == (
        "nuke", "amount.nuke", 14, 11,
    )  # fmt: skip
    assert limit["changes"] is True and limit["why"] == "decrease 14 → 11 applied at once"
    assert limit["reasons"] and all("kind" in r for r in limit["reasons"])
    assert doc["changes"] == {"limits": 1, "jobs": 0}
    same = cli("plan", "-c", recorded_run["policy"], "--against", db, "--format", "json",
               "--detailed-exitcode", env=OFFLINE)  # fmt: skip
    assert same.returncode == 0 and json.loads(same.stdout)["changes"] == {"limits": 0, "jobs": 0}


# -- what the edit changes, against the old policy ---------------------------------------------


def held_rise(farm_env) -> None:
    """A second recorded cycle: artists give licenses back, the rise 14 → 17 waits its
    settle (held 1/2), so the next cycle makes it whatever the policy says."""
    farm_env["lic"].set_artists("nuke_r", 2)
    farm_env["status"].write_text(farm_env["lic"].lmstat())
    p = cli("run", "--once", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 0, p.stderr
    assert farm_env["farm"].limits[farm_env["limit"]].max_count == 14


def test_a_rise_both_policies_make_is_not_the_edits(recorded_run, tmp_path):
    held_rise(recorded_run)
    db, policy = str(recorded_run["db"]), recorded_run["policy"]
    alone = cli("plan", "-c", policy, "--against", db, "--detailed-exitcode", env=OFFLINE)
    assert alone.returncode == 2  # the unchanged policy: the settled rise is due
    assert "~ nuke/amount.nuke: maxCount 14 → 17" in alone.stdout
    same = cli("plan", "-c", policy, "--baseline", policy, "--against", db,
               "--detailed-exitcode", env=OFFLINE)  # fmt: skip
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.rstrip().endswith(
        f"Against the baseline {policy}: the edit changes nothing."
    )

    new = edited(recorded_run, tmp_path, "headroom: 1", "headroom: 2")
    p = cli("plan", "-c", new, "--baseline", policy, "--against", db, "--detailed-exitcode",
            env=OFFLINE)  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    tail = p.stdout.rstrip().splitlines()[-2:]
    assert tail == [
        f"Against the baseline {policy}, the edit changes:",
        "  limit amount.nuke: baseline target 17, maxCount 14 → 17; "
        "edit target 16, maxCount 14 → 16",
    ]
    j = cli("plan", "-c", new, "--baseline", policy, "--against", db, "--format", "json",
            "--detailed-exitcode", env=OFFLINE)  # fmt: skip
    assert j.returncode == 2
    base = json.loads(j.stdout)["baseline"]
    assert base["changes"] == {"limits": 1, "jobs": 0}
    [limit] = base["limits"]
    assert (limit["baseline"]["new"], limit["edit"]["new"]) == (17, 16)


def test_errors_the_recorded_cycle_had_are_reported_apart(recorded_run, tmp_path):
    from sync.edges.history import History

    db = str(recorded_run["db"])
    h = History(db)
    data = h.get_state("observed")
    farm_id = next(iter(data["farms"]))
    data["farms"][farm_id].update(error="ListLimits: AccessDeniedException", limits={})
    data["errors"] = [f"farm {farm_id}: ListLimits: AccessDeniedException"]
    h.set_state("observed", data, datetime.now(UTC))
    h.close()
    args = ("plan", "-c", recorded_run["policy"], "--against", db, "--detailed-exitcode")
    p = cli(*args, env=OFFLINE)
    assert p.returncode == 0, p.stdout + p.stderr  # not the policy's error: CI passes
    assert (
        f"recorded error (of the recorded cycle, not the policy): farm {farm_id}: ListLimits"
        in p.stderr
    )
    assert cli(*args, "--recorded-errors", "fail", env=OFFLINE).returncode == 1
    doc = json.loads(cli(*args, "--format", "json", env=OFFLINE).stdout)
    assert doc["complete"] is True and doc["errors"] == []
    assert any("AccessDenied" in e for e in doc["recorded_errors"])
    # a limit the policy names that the farm does not have is the policy's own error
    typo = edited(recorded_run, tmp_path, "limit: amount.nuke", "limit: amount.nuk")
    h = History(db)
    data["farms"][farm_id].update(error=None, limits={"amount.nuk": "limit not found"})
    data["errors"] = []
    h.set_state("observed", data, datetime.now(UTC))
    h.close()
    p = cli("plan", "-c", typo, "--against", db, env=OFFLINE)
    assert p.returncode == 1, p.stdout + p.stderr


def test_a_new_farm_selector_sees_the_farms_hosts_or_says_what_it_cannot_know(aws_env, tmp_path):
    """The running policy has no farm_selector; a pull request adds one. The history
    hashed the artists, but kept the Deadline workers' hosts in clear: `workers: true`
    plans as a live cycle would (farm 5, artists 6). A host pattern is planned with the
    workers it matches, and says that the hashed hosts count as artists' whatever it
    would make of them: a recorded error, which fails under --recorded-errors fail."""
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm
    from sync.fakes.license import FakeFeature, FakeLicenseServer

    farm = FakeFarm(count_delay=0)
    q, _ = farm.add_queue_with_limit("amount.nuke", 19)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", 20, "amount.nuke")])
    lic.set_artists("nuke_r", 6)
    farm.add_job(q, "comp", tasks=5, amount="amount.nuke", duration=3600)
    farm.tick(farm.now + timedelta(seconds=30))
    status, db = tmp_path / "lmstat.txt", tmp_path / "h.db"
    status.write_text(lic.lmstat())
    hosts = {w.host_name for f in farm.fleets.values() for w in f.workers}
    assert len(hosts) == 5 and all(h in status.read_text() for h in hosts)
    running = write_policy(
        tmp_path / "policy.yaml", policy_doc(farm.farm_id, history=db, pools={"nuke": pool()})
    )
    with FakeDeadline(farm) as server:
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "FAKE_LM_OUTPUT": str(status)}
        p = cli(
            "run",
            "--once",
            "--config",
            str(running),
            env={**env, "AWS_ENDPOINT_URL_DEADLINE": server.url},
        )
        assert p.returncode == 0, p.stderr
    kept = sqlite_text(db)
    assert all(h in kept for h in hosts) and "artist" not in kept  # workers clear, people not

    def planned(selector: dict) -> subprocess.CompletedProcess[str]:
        new = tmp_path / "new.yaml"
        write_policy(
            new, policy_doc(farm.farm_id, history=db, pools={"nuke": pool(farm_selector=selector)})
        )
        return cli("plan", "-c", str(new), "--against", str(db), env=OFFLINE)

    p = planned({"workers": True})
    assert p.returncode == 0 and "recorded error" not in p.stderr, p.stderr
    assert "external 6, farm 5 (selector)" in p.stdout, p.stdout
    prefix = next(iter(hosts)).rsplit("-", 1)[0]
    p = planned({"hosts": [f"^{prefix}-"]})
    assert "external 6, farm 5 (selector)" in p.stdout, p.stdout  # the workers, in clear
    assert "pool nuke: its farm_selector is new to this history" in p.stderr
    assert "6 license(s) checked out on such hosts count here as artists'" in p.stderr
    new = tmp_path / "new.yaml"
    args = ("plan", "-c", str(new), "--against", str(db), "--recorded-errors", "fail")
    assert cli(*args, env=OFFLINE).returncode == 1


def sqlite_text(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return "\n".join(str(row) for row in conn.iterdump())
