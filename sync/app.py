"""Building the service from a policy file: the one factory `run`, `plan`, `explain`,
`restore` and the demo share."""

from __future__ import annotations

import logging
from typing import Any

from sync.deadline import factory_for
from sync.errors import HistoryError
from sync.history import History
from sync.metrics import Metrics
from sync.policy import LoadedPolicy
from sync.service import Service

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
) -> Service:
    """The service for `loaded`. `history=False`: nothing recorded (`plan`, `explain`);
    `endpoint_url` and `session`: Deadline elsewhere than AWS (the demo's fake)."""
    metrics = Metrics()
    hist = None
    if history:
        hist = open_history(loaded.policy.history.path, loaded.policy.history.keep, metrics)
    return Service(
        loaded,
        deadline_factory=factory_for(metrics, endpoint_url, session),
        metrics=metrics,
        history=hist,
        dry_run=dry_run,
        watch_policy=watch,
        adopt=adopt,
    )


def open_history(path: str, keep: float, metrics: Metrics) -> History | None:
    """The history, or None if it cannot be opened: limits still sync, jobs are not touched.
    A history another process holds (`HistoryLocked`) is not caught: do not start."""
    try:
        return History(path, keep, lock=True)
    except HistoryError as e:
        metrics.history_errors.inc()
        log.error("%s; syncing limits without a history: no job is capped until it opens", e)
        return None
