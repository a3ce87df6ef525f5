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


class StallingProxy:
    """A TCP proxy to `url` on a free loopback port that can be cut: from then on it
    forwards nothing either way and answers nothing (a partition, not a refusal)."""

    def __init__(self, url: str) -> None:
        import socket
        import threading

        self.target = url.removeprefix("http://").rsplit(":", 1)
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                if not self.cut.is_set():
                    dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
