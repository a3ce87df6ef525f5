from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.policy import policy as policy_doc
from tests.support.policy import pool, write_policy

FIXTURES = Path(__file__).parent / "fixtures"

# An environment with PYTHONDONTWRITEBYTECODE (this machine's, and CI's) made every xdist
# worker re-rewrite each test module's asserts and recompile sync/ on every run, and every
# `python -m sync` child recompile sync/: a tenth of the suite's CPU. The caches are
# gitignored (__pycache__/); collection went from 3.7 s to 1.7 s a worker.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def fixture_text(name: str) -> str:
    """A fixture file's text, line endings untouched."""
    return (FIXTURES / name).read_bytes().decode("utf-8")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def aws_env(monkeypatch):
    """Throwaway credentials, and no real AWS endpoint or profile reachable."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DEADLINE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def sim(aws_env):
    """A simulated farm behind the real HTTP endpoint, with one queue and one limit."""
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm(count_delay=0)
    with FakeDeadline(farm) as server:
        yield server


@pytest.fixture
def retry_sleeps(monkeypatch):
    """botocore's back-off between retries and its adaptive rate limiter's waits, recorded
    instead of slept: the retries still happen, the test does not wait for them. Returns
    the list of back-off delays asked for."""
    import types

    import botocore.endpoint
    import botocore.retries.bucket

    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=slept.append))
    monkeypatch.setattr(botocore.retries.bucket.TokenBucket, "_sleep_amount", lambda *a: 0)
    return slept


@pytest.fixture
def farm_env(aws_env, tmp_path):
    """A farm behind the fake endpoint, a captured lmstat the fake lmutil prints, and a
    policy syncing one pool: what the command tests run against."""
    import os

    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm
    from sync.fakes.license import FakeFeature, FakeLicenseServer

    farm = FakeFarm(count_delay=0)
    _, lid = farm.add_queue_with_limit("amount.nuke", 19)
    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    lic.set_artists("nuke_r", 5)
    status = tmp_path / "lmstat.txt"
    status.write_text(lic.lmstat())
    with FakeDeadline(farm) as server:
        policy = tmp_path / "policy.yaml"
        nuke = pool(headroom=1)
        write_policy(
            policy, policy_doc(farm.farm_id, history=tmp_path / "h.db", pools={"nuke": nuke})
        )
        env = {
            **os.environ,
            "PATH": f"{Path(__file__).parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LM_OUTPUT": str(status),
            "AWS_ENDPOINT_URL_DEADLINE": server.url,
        }
        yield {
            "env": env,
            "policy": str(policy),
            "farm": farm,
            "limit": lid,
            "lic": lic,
            "status": status,
            "db": tmp_path / "h.db",
        }


@pytest.fixture(scope="session")
def moto_url():
    """A DynamoDB-compatible server (moto's server mode) on a free loopback port, one a
    test process; each test empties it first (`tests.support.dynamo.state_table`)."""
    from tests.support.dynamo import moto_server

    with moto_server() as url:
        yield url
