"""A DynamoDB-compatible server on loopback (moto's server mode) and the state table."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from tests.support.process import free_port

TABLE = "license-sync"


@contextmanager
def moto_server() -> Iterator[str]:
    """Its URL, for the time of the block."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def state_table(url: str, name: str = TABLE) -> Any:
    """A client of the server, emptied first (moto's backends outlive a server in this
    process), with the state table as `docs/operations.md` creates it."""
    reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=5).close()
    client = boto3.client("dynamodb", region_name="us-west-2", endpoint_url=url)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client
