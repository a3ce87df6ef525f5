"""`license-sync audit` through the real command against the fake Deadline: each setup
mistake that lets licenses be used around a limit is found with its fix, and a farm set
up right passes. The service does the same at start and after a reload."""

from __future__ import annotations

import json
import os

import pytest

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.templates import build, simple_template
from tests.support.clirun import run_cli
from tests.support.policy import policy as policy_doc
from tests.support.policy import pool, write_policy

MAYA = {"maya": pool("amount.maya", "maya")}


def audit(farm: FakeFarm, tmp_path, more: dict | None = None, fmt: str = "json") -> tuple[int, str]:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, policy_doc(farm.farm_id, pools={"nuke": pool(), **(more or {})}))
    with FakeDeadline(farm) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url}
        p = run_cli("audit", "-c", str(policy), "--format", fmt, env=env)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout


def job(farm: FakeFarm, queue: str, name: str, amount: str, *also: str) -> None:
    farm.create_job(queue, build(simple_template(name, 4, amount, also=also), "JSON"))


@pytest.fixture
def farm(aws_env):
    farm = FakeFarm(count_delay=0)
    farm.queue, farm.nuke = farm.add_queue_with_limit("amount.nuke", 10)
    return farm


def test_a_farm_set_up_right_passes(farm, tmp_path):
    job(farm, farm.queue, "comp", "amount.nuke")
    code, text = audit(farm, tmp_path, fmt="text")
    assert (code, text) == (0, "0 finding(s) on 1 farm(s) read\n")


def test_every_mistake_that_defeats_a_limit_is_found_with_its_fix(farm, tmp_path):
    own = farm.add_fleet("own", 2, amounts=(("AMOUNT.NUKE", 0, 1), ("amount.katana", 0, 1)))
    farm.link_fleet(farm.queue, own)  # its tasks bypass the nuke limit
    other = farm.add_queue()
    farm.link_fleet(other, own)
    job(farm, other, "lighting", "amount.nuke")  # a queue the limit does not govern
    job(farm, farm.queue, "fx", "amount.nuke", "amount.katana")  # katana: no limit has it
    farm.add_limit("amount.maya", 4)  # no queue, and no job asks for it
    code, out = audit(farm, tmp_path, MAYA)
    found = json.loads(out)
    assert code == 1
    kinds = [(f["kind"], f["pool"]) for f in found]
    assert kinds == [
        ("fleet_declares_amount", "nuke"),
        ("limit_without_queue", "maya"),
        ("queue_not_associated", "nuke"),
        ("amount_without_limit", "nuke"),
        ("limit_unused", "maya"),
    ]
    said = {f["kind"]: f for f in found}
    assert own in said["fleet_declares_amount"]["what"]
    assert f"--queue-id {other}" in said["queue_not_associated"]["fix"]
    assert "amount.katana" in said["amount_without_limit"]["what"]


def test_a_farm_it_cannot_read_is_an_error_not_a_pass(aws_env, tmp_path):
    farm = FakeFarm(count_delay=0)
    policy = tmp_path / "policy.yaml"
    write_policy(policy, policy_doc("farm-" + "0" * 32))
    with FakeDeadline(farm) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url}
        p = run_cli("audit", "-c", str(policy), env=env)
    assert p.returncode == 1
    assert "setup not read" in p.stderr and "Traceback" not in p.stderr
