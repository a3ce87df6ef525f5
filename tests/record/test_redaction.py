"""The history names no artist (issue: nothing lost, nothing leaked): with `history.redact`
(the default) an artist's user, workstation and display and a job's creator are hashed in
what a copy of the history carries to CI, and `plan --against` still plans as the service
did — the farm's own checkouts are kept, the policy's `user:` selectors still match."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from sync.record.redact import hashed, hashes_of, quiet, unhash
from tests.support.clirun import run_cli as cli
from tests.support.paths import BIN
from tests.support.policy import RENDER_HOSTS, pool, write_policy
from tests.support.policy import policy as policy_doc

OFFLINE = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
ARTIST, WORKSTATION, CREATOR = "jsmith", "ws-jsmith", "jsmith@studio"


@pytest.fixture
def studio(aws_env, tmp_path):
    """A farm whose two jobs share a pool, one created by an artist the policy names; an
    lmstat with that artist's checkout beside a render node's."""
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm
    from sync.fakes.license import FakeFeature, FakeLicenseServer

    farm = FakeFarm(count_delay=0)
    queue, _ = farm.add_queue_with_limit("amount.nuke", 19)
    for who in (CREATOR, "akim@studio"):
        farm.add_job(queue, "comp", tasks=10, amount="amount.nuke", created_by=who)
    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    lic.features["nuke_r"].artists = [(ARTIST, WORKSTATION, 2), ("render", "render-007", 1)]
    status = tmp_path / "lmstat.txt"
    status.write_text(lic.lmstat())
    with FakeDeadline(farm) as server:
        yield {
            "farm": farm,
            "status": status,
            "db": tmp_path / "h.db",
            "env": {
                **os.environ,
                "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                "FAKE_LM_OUTPUT": str(status),
                "AWS_ENDPOINT_URL_DEADLINE": server.url,
            },
        }


def policy(studio, tmp_path: Path, redact: str = "") -> str:
    path = tmp_path / f"policy{redact}.yaml"
    sharing = {"policy": "fair", "overrides": [{"user": CREATOR, "max_workers": 2}]}
    nuke = pool(farm_selector=RENDER_HOSTS, jobs=sharing)
    kept = {"redact": redact} if redact else {}
    farm = studio["farm"].farm_id
    write_policy(
        path, policy_doc(farm, history=studio["db"], history_settings=kept, pools={"nuke": nuke})
    )
    return str(path)


def kept(db: Path) -> str:
    """Everything the history file holds, as text."""
    with sqlite3.connect(db) as conn:
        return "\n".join(str(row) for row in conn.iterdump())


def test_a_copy_of_the_history_names_no_artist_and_plans_as_the_service_did(studio, tmp_path):
    p = policy(studio, tmp_path)
    r = cli("run", "--once", "--config", p, env=studio["env"])
    assert r.returncode == 0, r.stderr
    caps = sorted(j.max_worker_count for j in studio["farm"].jobs.values())
    assert caps[0] == 2  # the override matched the artist's job
    text = kept(studio["db"])
    for name in (ARTIST, WORKSTATION, CREATOR):
        assert name not in text
    assert hashed(CREATOR, bytes(16)) not in text  # keyed per service, not a plain hash
    assert "render-007" in text  # the farm's own checkout, counted as the farm's offline
    assert "akim" not in text
    plan = cli("plan", "-c", p, "--against", str(studio["db"]), "--detailed-exitcode", env=OFFLINE)
    assert plan.returncode == 0, plan.stdout + plan.stderr  # the override still matches
    assert "No changes." in plan.stdout


def test_redact_false_keeps_the_names(studio, tmp_path):
    p = policy(studio, tmp_path, redact="false")
    assert cli("run", "--once", "--config", p, env=studio["env"]).returncode == 0
    text = kept(studio["db"])
    assert ARTIST in text and WORKSTATION in text and CREATOR in text


def test_a_quoted_line_of_tool_output_is_dropped_from_errors():
    message = "lic: unrecognised checkout line under 'nuke_r': '    jsmith ws-jsmith ws-jsmith'"
    assert quiet(message) == "lic: unrecognised checkout line under 'nuke_r': '…'"
    assert quiet("limit 'amount.nuke' not found") == "limit 'amount.nuke' not found"
    assert "jsmith" not in quiet('line "jsmith ws \\" x" not understood')


def test_a_hash_is_matched_only_to_the_name_it_came_from():
    key = os.urandom(16)
    mark = hashed(CREATOR, key)
    assert mark.startswith("~") and CREATOR not in mark
    assert unhash(mark, hashes_of(key, ["akim@studio", CREATOR])) == CREATOR
    assert unhash(mark, hashes_of(key, ["akim@studio"])) == mark
    assert unhash(mark, hashes_of(os.urandom(16), [CREATOR])) == mark
    assert unhash("plain", hashes_of(key, [CREATOR])) == "plain"
