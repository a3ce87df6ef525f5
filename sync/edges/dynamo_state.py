"""The durable memory in a DynamoDB table: what `MemoryStore` keeps in the history's
`state` and `job_originals` tables when `state: {store: sqlite}`, kept where any replica
can read it and only the lease's holder can write it.

One table, its key a string `pk`: `lease` (lease.py), `state#KEY` (a JSON value: the
limits' memory, their originals, the farms, the jobs left alone) and `job#ID` (a job's
original, the history's `job_originals` row as JSON). Every write is one transaction
with a ConditionCheck that the lease is still ours as last renewed: a deposed writer's
write cannot land over the new writer's memory.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sync.edges.lease import Lease
from sync.values.errors import StateError

BATCH = 99  # a transaction holds 100 items: the lease's condition and 99 writes


class DynamoState:
    """The history's durable-state interface (`get_state`, `set_state`, `job_originals`,
    `save_job_originals`, `drop_job_originals`) over a DynamoDB table."""

    def __init__(self, client: Any, table: str, lease: Lease | None):
        self.client = client
        self.table = table
        self.lease = lease  # None: read only (`restore`, `state copy` from it)
        self.path = f"dynamodb:{table}"  # how messages name it, as a history's path
        self.fresh = False

    def check(self) -> None:
        """The table exists and is keyed by a string `pk` alone; else one clear error
        naming the table and what to do."""
        try:
            t = self.client.describe_table(TableName=self.table)["Table"]
        except ClientError as e:
            raise StateError(f"{self.path}: {_why(e, 'dynamodb:DescribeTable')}") from e
        except BotoCoreError as e:
            raise StateError(f"{self.path}: cannot be reached: {e}") from e
        keys = [(k["AttributeName"], k["KeyType"]) for k in t.get("KeySchema", [])]
        types = {a["AttributeName"]: a["AttributeType"] for a in t.get("AttributeDefinitions", [])}
        if keys != [("pk", "HASH")] or types.get("pk") != "S":
            raise StateError(
                f"{self.path}: keyed by {keys}, not a string `pk` alone: not a license-sync "
                "state table (docs/operations.md, 'Two replicas', says how to create one)"
            )

    def get_state(self, key: str, default: Any = None) -> Any:
        ask = {
            "TableName": self.table,
            "Key": {"pk": {"S": f"state#{key}"}},
            "ConsistentRead": True,
        }
        item = self._call("GetItem", lambda: self.client.get_item(**ask)).get("Item")
        return default if item is None else json.loads(item["value"]["S"])

    def set_state(self, key: str, value: Any, now: datetime) -> None:
        self._write([_put(f"state#{key}", value, now)])

    def job_originals(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        start: dict[str, Any] | None = None
        while True:
            ask = {
                "TableName": self.table,
                "ConsistentRead": True,
                "FilterExpression": "begins_with(pk, :job)",
                "ExpressionAttributeValues": {":job": {"S": "job#"}},
                **({"ExclusiveStartKey": start} if start else {}),
            }
            page = self._call("Scan", partial(self.client.scan, **ask))
            for item in page.get("Items", []):
                row = json.loads(item["value"]["S"])
                rows[row["job_id"]] = row
            start = page.get("LastEvaluatedKey")
            if not start:
                return rows

    def save_job_originals(self, rows: Iterable[dict[str, Any]], now: datetime) -> None:
        stamped = [{**r, "updated": now.isoformat()} for r in rows]
        self._write([_put(f"job#{r['job_id']}", r, now) for r in stamped])

    def drop_job_originals(self, job_ids: Iterable[str]) -> None:
        self._write([{"Delete": {"Key": {"pk": {"S": f"job#{j}"}}}} for j in job_ids])

    def checkpoint(self) -> None:
        """Nothing to do: a DynamoDB write is durable when it is acknowledged."""

    def _write(self, ops: list[dict[str, Any]]) -> None:
        """`ops` in transactions of BATCH, each conditional on the lease: all of a batch
        or none of it. Raises StateError when they are not all written."""
        if self.lease is None:
            raise StateError(f"{self.path}: opened to read only")
        for i in range(0, len(ops), BATCH):
            items = [self.lease.condition()]
            for op in ops[i : i + BATCH]:
                kind, body = next(iter(op.items()))
                items.append({kind: {"TableName": self.table, **body}})
            write = partial(self.client.transact_write_items, TransactItems=items)
            self._call("TransactWriteItems", write)

    def _call(self, action: str, fn: Callable[[], Any], attempts: int = 3) -> Any:
        """One call, throttling retried (botocore's own retries first); any other
        failure, or a lease lost under the write, a StateError naming it."""
        for attempt in range(attempts):
            try:
                return fn()
            except ClientError as e:
                if _code(e) in _THROTTLED and attempt + 1 < attempts:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise StateError(f"{self.path}: {_why(e, f'dynamodb:{action}')}") from e
            except BotoCoreError as e:
                raise StateError(f"{self.path}: {action} failed: {e}") from e
        raise AssertionError("unreachable")


_THROTTLED = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
}


def _put(pk: str, value: Any, now: datetime) -> dict[str, Any]:
    return {
        "Put": {
            "Item": {
                "pk": {"S": pk},
                "value": {"S": json.dumps(value)},
                "updated": {"S": now.isoformat()},
            }
        }
    }


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _why(e: ClientError, action: str) -> str:
    """What a failed call means to the person who runs the service."""
    code, message = _code(e), e.response.get("Error", {}).get("Message", "")
    if code == "ResourceNotFoundException":
        return "no such table (docs/operations.md, 'Two replicas', says how to create it)"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{action} is not allowed to this role: {message}"
    if code == "TransactionCanceledException" and "ConditionalCheckFailed" in message:
        return "the lease passed to another replica: this write was refused, as it must be"
    return f"{action} failed: {code}: {message}"


def open_table(
    table: str, region: str | None, lease_seconds: float | None, endpoint_url: str | None = None
) -> tuple[DynamoState, Lease | None]:
    """The durable memory's table, checked, and this replica's lease on it (None for a
    reader: `plan`, `explain`). Raises StateError, saying what to do, when the table
    cannot be used."""
    import boto3
    from botocore.config import Config

    retries = {"mode": "adaptive", "total_max_attempts": 4}
    cfg = Config(
        retries=retries, connect_timeout=3, read_timeout=5, user_agent_extra="license-sync"
    )
    try:
        client = boto3.session.Session().client(
            "dynamodb", region_name=region, endpoint_url=endpoint_url, config=cfg
        )
    except BotoCoreError as e:  # no region, above all
        raise StateError(
            f"dynamodb:{table}: {e}: set `state.region` (or `--region`) or AWS_DEFAULT_REGION"
        ) from e
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lease = None if lease_seconds is None else Lease(client, table, owner, lease_seconds)
    state = DynamoState(client, table, lease)
    state.check()
    return state, lease
