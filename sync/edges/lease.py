"""The writer's lease: one item of a DynamoDB table, held by one replica at a time.

The algorithm is the Amazon DynamoDB Lock Client's. The holder renews the item's record
version number (`rvn`, a fresh UUID) every heartbeat, each renewal conditional on the
item still naming it and the version it last wrote. A replica that wants the lease
reads the item; it takes the lease over only once it has seen the *same* version for a
whole lease duration, timed on its own monotonic clock, with a write conditional on
that version. No two hosts' clocks are ever compared.

What the holder may rely on: a renewal sent at monotonic time `t` and acknowledged means
no other replica can take the lease before `t + duration` on the holder's clock (a
waiting replica starts its count only after it reads that version, which is after the
write). So `remaining()` counts from when the last acknowledged renewal was *sent*.
docs/design.md, "Two replicas", says what that bounds and what it cannot.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sync.values.errors import StateError

log = logging.getLogger("license_sync")
LEASE_KEY = "lease"


@dataclass
class _Seen:
    rvn: str
    at: float  # our monotonic time when we first read this version


class Lease:
    """One replica's view of the lease item in `table` (key attribute `pk`)."""

    def __init__(
        self,
        client: Any,
        table: str,
        owner: str,
        duration: float,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.client = client
        self.table = table
        self.owner = owner
        self.duration = duration
        self.monotonic = monotonic
        self.rvn: str | None = None  # the version we wrote, while we hold the lease
        self.renewed_at = 0.0  # when the last acknowledged renewal was sent
        self.seen: _Seen | None = None  # another's version, and since when unchanged

    @property
    def held(self) -> bool:
        return self.rvn is not None and self.remaining() > 0

    def remaining(self) -> float:
        """Seconds left before another replica could take the lease over (0: not ours)."""
        if self.rvn is None:
            return 0.0
        return max(0.0, self.duration - (self.monotonic() - self.renewed_at))

    def beat(self) -> bool:
        """Renew the lease if held, else try to take it; True while it is ours."""
        return self._renew() if self.rvn is not None else self._try_take()

    def take(self, sleep: Callable[[float], None] = time.sleep) -> bool:
        """The lease for a one-off writer (`restore`, `state copy`): taken at once where
        it is free, or after a whole duration where its holder stopped renewing it; False
        while a running replica renews it."""
        if self.held or self.beat():
            return True
        sleep(self.duration + 0.5)  # the version first seen must stay the same this long
        return self.beat()

    def release(self) -> None:
        """Give the lease up at once (a clean stop): the next replica need not wait."""
        if self.rvn is None:
            return
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": LEASE_KEY}},
                ConditionExpression="#o = :me AND rvn = :rvn",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}, ":rvn": {"S": self.rvn}},
            )
        except ClientError as e:
            if _code(e) != "ConditionalCheckFailedException":
                log.warning("the lease was not released: %s", e)
        except BotoCoreError as e:
            log.warning("the lease was not released: %s", e)
        self.rvn = None

    def condition(self) -> dict[str, Any]:
        """A transaction's ConditionCheck that the lease is still ours, as last renewed:
        a write of durable memory made with it cannot land once the lease has passed."""
        if self.rvn is None:
            raise StateError("the lease is not held: the durable memory is not written")
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": {"pk": {"S": LEASE_KEY}},
                "ConditionExpression": "#o = :me AND rvn = :rvn",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {
                    ":me": {"S": self.owner},
                    ":rvn": {"S": self.rvn},
                },
            }
        }

    def _renew(self) -> bool:
        assert self.rvn is not None
        new, sent = uuid.uuid4().hex, self.monotonic()
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": LEASE_KEY}},
                UpdateExpression="SET rvn = :new, #d = :d",
                ConditionExpression="#o = :me AND rvn = :rvn",
                ExpressionAttributeNames={"#o": "owner", "#d": "duration"},
                ExpressionAttributeValues={
                    ":new": {"S": new},
                    ":d": {"N": str(self.duration)},
                    ":me": {"S": self.owner},
                    ":rvn": {"S": self.rvn},
                },
            )
        except ClientError as e:
            if _code(e) == "ConditionalCheckFailedException":
                log.error("the lease was taken over by another replica: this one writes nothing")
                self.rvn = None
                return False
            return self._kept_for_now(e)
        except BotoCoreError as e:
            return self._kept_for_now(e)
        self.rvn, self.renewed_at = new, sent
        return True

    def _kept_for_now(self, e: Exception) -> bool:
        """A renewal that did not get through: the lease is ours until it runs out."""
        left = self.remaining()
        log.warning("the lease was not renewed (%s): %.0fs of it left", e, left)
        if left <= 0:
            self.rvn = None
        return left > 0

    def _try_take(self) -> bool:
        try:
            item = self._read()
        except (ClientError, BotoCoreError) as e:
            # nothing to take over from a read that failed: the count starts again
            log.warning("the lease could not be read: %s", e)
            self.seen = None
            return False
        now = self.monotonic()
        if item is None:
            return self._put(None, now)
        # one that names us is waited out like any other: it may be a writer of ours from
        # before a restart, still running somewhere
        rvn = item["rvn"]["S"]
        if self.seen is None or self.seen.rvn != rvn:
            self.seen = _Seen(rvn, now)
            return False
        their = float(item.get("duration", {}).get("N", self.duration))
        if now - self.seen.at < their:
            return False
        return self._put(rvn, now)

    def _read(self) -> dict[str, Any] | None:
        """The lease item, or None where there is none; raises what the call raised."""
        got = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": LEASE_KEY}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = got.get("Item")
        return item

    def _put(self, expected: str | None, sent: float) -> bool:
        """Write the lease as ours: where none is, or over the version seen unchanged."""
        new = uuid.uuid4().hex
        cond: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if expected is None
            else {
                "ConditionExpression": "rvn = :seen",
                "ExpressionAttributeValues": {":seen": {"S": expected}},
            }
        )
        item = {
            "pk": {"S": LEASE_KEY},
            "owner": {"S": self.owner},
            "rvn": {"S": new},
            "duration": {"N": str(self.duration)},
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, **cond)
        except ClientError as e:
            if _code(e) != "ConditionalCheckFailedException":
                log.warning("the lease could not be taken: %s", e)
            self.seen = None
            return False
        except BotoCoreError as e:
            log.warning("the lease could not be taken: %s", e)
            return False
        self.rvn, self.renewed_at, self.seen = new, sent, None
        log.info("this replica holds the lease now: it writes to the farms")
        return True


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))
