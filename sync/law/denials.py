"""Refusals a license server's log recorded, told apart: the farm's (a checkout its
`farm_selector` names) or an artist's, and the pool of the feature. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sync.law.limits import farm_selector
from sync.law.state import Denial
from sync.licenses.logs import REFUSED, LogEvent
from sync.policy import Policy, Pool


def denials(
    policy: Policy,
    source: str,
    events: Iterable[LogEvent],
    now: datetime,
    workers: frozenset[str] = frozenset(),
) -> list[Denial]:
    """Each refusal among `events`, once a pool that takes its feature from `source`.
    A pool without a farm_selector cannot tell the farm's checkouts: its refusals count as
    artists'. An event the log gave no date yet is dated `now`, when it was read."""
    pools = [
        (name, pool)
        for name, pool in policy.pools.items()
        if any(r.source == source for r in pool.features)
    ]
    out = []
    for e in events:
        if e.kind not in REFUSED:
            continue
        mine: list[tuple[str, Pool | None]] = [
            (name, pool) for name, pool in pools if _takes(pool, source, e)
        ]
        for name, pool in mine or [("", None)]:
            who = _who(pool, workers, e)
            reason = e.reason or e.kind
            out.append(Denial(e.at or now, source, name, e.feature, e.user, e.host, who, reason))
    return out


def _takes(pool: Pool, source: str, e: LogEvent) -> bool:
    """Whether `pool` takes the refused feature from `source` (of its vendor, if named)."""
    return any(
        r.source == source and r.feature == e.feature and r.vendor in (None, e.vendor)
        for r in pool.features
    )


def _who(pool: Pool | None, workers: frozenset[str], e: LogEvent) -> str:
    """farm when the pool's farm_selector takes the refused host or user for the farm's."""
    is_farm = farm_selector(pool, workers) if pool is not None else None
    return "farm" if is_farm is not None and is_farm(e.host, e.user) else "artist"
