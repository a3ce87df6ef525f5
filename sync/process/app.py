"""Building the service from a policy file: the one factory `run`, `plan`, `explain`,
`restore` and the demo share."""

from __future__ import annotations

import logging
import os
from typing import Any

from sync.cycle.service import Service
from sync.edges.deadline import factory_for
from sync.edges.dynamo_state import DynamoState, open_table
from sync.edges.history import History
from sync.edges.lease import Lease
from sync.edges.metrics import Metrics
from sync.policy import LoadedPolicy
from sync.values.errors import HistoryError

log = logging.getLogger("license_sync")


def build_service(
    loaded: LoadedPolicy,
    *,
    dry_run: bool = False,
    history: bool = True,
    watch: bool = True,
    adopt: bool = False,
    endpoint_url: str | None = None,
    session: Any = None,
    read_only_ok: bool = False,
) -> Service:
    """The service for `loaded`. `history=False`: nothing recorded (`plan`, `explain`);
    `read_only_ok`: a history that cannot be written is read (`restore` from a copy);
    `endpoint_url` and `session`: Deadline elsewhere than AWS (the demo's fake)."""
    metrics = Metrics()
    hist = None
    if history:
        cfg = loaded.policy.history
        hist = open_history(cfg.path, cfg.keep, metrics, read_only_ok, cfg.journal)
    durable, lease = _state(loaded, writes=history and not dry_run)
    return Service(
        loaded,
        deadline_factory=factory_for(metrics, endpoint_url, session),
        metrics=metrics,
        history=hist,
        dry_run=dry_run,
        watch_policy=watch,
        adopt=adopt,
        durable=durable,
        lease=lease,
    )


def _state(loaded: LoadedPolicy, writes: bool) -> tuple[DynamoState | None, Lease | None]:
    """With `state: {store: dynamodb}`, the table and (for a service that writes) this
    replica's lease, tried once: a lone replica writes from its first cycle."""
    st = loaded.policy.state
    if st.store != "dynamodb":
        return None, None
    assert st.table is not None
    durable, lease = open_table(st.table, st.region, st.lease.duration if writes else None)
    if lease is not None:
        lease.beat()
    return durable, lease


def open_history(
    path: str, keep: float, metrics: Metrics, read_only_ok: bool = False, journal: str = "wal"
) -> History | None:
    """The history, or None if it cannot be opened: limits still sync, jobs are not touched.
    A history another process holds (`HistoryLocked`) is not caught: do not start.
    `read_only_ok`: a file that exists but cannot be written (a snapshot mounted read-only)
    is opened to read."""
    try:
        return History(path, keep, lock=True, journal=journal)
    except HistoryError as e:
        if read_only_ok and os.path.isfile(path):
            log.warning("%s; reading it as a read-only copy: nothing done is recorded", e)
            return History.reading(path)
        metrics.history_errors.inc()
        log.error("%s; syncing limits without a history: no job is capped until it opens", e)
        return None
