"""The fake Deadline endpoint on loopback with a boto3 client whose own parameter
validation is off: what is rejected, the fake rejected."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def client_of(server: FakeDeadline):
    return boto3.session.Session().client(
        "deadline",
        region_name="us-west-2",
        endpoint_url=server.url,
        config=Config(
            inject_host_prefix=False, retries={"max_attempts": 1}, parameter_validation=False
        ),
    )


@pytest.fixture
def fake(aws_env):
    farm = FakeFarm(count_delay=0, now=T0)
    with FakeDeadline(farm) as server:
        yield farm, client_of(server), server
