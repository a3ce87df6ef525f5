"""`license-sync state copy`: the durable memory from one store to another — the history
file (`sqlite:PATH`) or a DynamoDB table (`dynamodb:TABLE`) — to move an installation
to two replicas, or back (docs/operations.md, "Two replicas")."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sync.commands import EXIT_OK
from sync.cycle.memory import Durable
from sync.edges.dynamo_state import open_table
from sync.edges.history import DURABLE_STATE, History
from sync.edges.lease import Lease
from sync.policy.models import LeaseConfig
from sync.values.errors import SyncError


def copy(args: argparse.Namespace) -> int:
    """Make the destination's durable memory the source's, whole: each state key and
    each job's original, and no job original the source lacks. Run twice, the second
    changes nothing."""
    source, _ = _open(args.source, args.region, write=False)
    target, lease = _open(args.to, args.region, write=True)
    now = datetime.now(UTC)
    try:
        values = {k: v for k in sorted(DURABLE_STATE) if (v := source.get_state(k)) is not None}
        for key, value in values.items():
            target.set_state(key, value, now)
        rows = source.job_originals()
        gone = set(target.job_originals()) - set(rows)
        target.save_job_originals(rows.values(), now)
        target.drop_job_originals(sorted(gone))
    finally:
        if lease is not None:
            lease.release()
    print(
        f"copied {len(values)} state key(s) and {len(rows)} job original(s) from "
        f"{source.path} to {target.path}"
        + (f"; {len(gone)} the source lacks removed" if gone else "")
    )
    return EXIT_OK


def _open(where: str, region: str | None, write: bool) -> tuple[Durable, Lease | None]:
    """`sqlite:PATH` or `dynamodb:TABLE`; a table written to under its writer's lease,
    waiting out a writer that died, refused while one runs."""
    kind, _, name = where.partition(":")
    if kind == "sqlite" and name:
        return (History(name, lock=True) if write else History.reading(name)), None
    if kind == "dynamodb" and name:
        seconds = LeaseConfig().duration
        table, lease = open_table(name, region, seconds if write else None)
        if lease is not None and not lease.take():
            raise SyncError(
                f"dynamodb:{name}: a license-sync replica holds its writer's lease: stop the "
                "service first, then copy"
            )
        return table, lease
    raise SyncError(f"{where!r}: say sqlite:PATH (a history file) or dynamodb:TABLE")
