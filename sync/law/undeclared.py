"""Use around the limit, named: which farm host holds a pool's license beyond what its
task runs acquired, and which job and step runs there (docs/design.md, "Use around the
limit"). Pure: the runs come read, the names too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sync.law.limits import PoolPlan, apportion, farm_selector, pool_features
from sync.law.state import SourceState
from sync.licenses import Feature
from sync.policy import Pool
from sync.values.domain import HostRun, Undeclared, short_host

# named checkouts a pool and cycle at most: the count stays whole, the names are a sample
MOST_NAMED = 20


def farm_checkouts(
    pool: Pool, features: Iterable[Feature], workers: frozenset[str] = frozenset()
) -> Counter[str]:
    """Licenses of the pool's features each farm host holds (its short name), by the
    pool's farm_selector; empty without one."""
    selector = farm_selector(pool, workers)
    held: Counter[str] = Counter()
    if selector is None:
        return held
    for f in features:
        for c in f.checkouts:
            if selector(c.host or "", c.user or ""):
                held[short_host(c.host or "")] += c.count
    return held


def hosts_to_name(
    pool: Pool,
    sources: Mapping[str, SourceState],
    now: datetime,
    workers: frozenset[str] = frozenset(),
) -> Counter[str]:
    """The farm hosts whose runs are read to name a pool's undeclared use."""
    features, failures, _ = pool_features(pool, sources, now)
    return Counter() if failures else farm_checkouts(pool, features, workers)


def name_undeclared(
    pp: PoolPlan,
    held_by_host: Mapping[str, int],
    limit_ids: Iterable[str],
    runs: Sequence[HostRun],
) -> tuple[Undeclared, ...]:
    """Each host holding more of the pool's licenses than its runs acquired of the pool's
    limits, with the runs there that acquired none of them: a step that runs the product
    without declaring its amount, or a fleet that declares it as its own. A host with no
    such run is named alone (a session just ended, or a host the farm does not know)."""
    if pp.figures is None or not pp.figures.undeclared_seen:
        return ()
    ids = set(limit_ids)
    out: list[Undeclared] = []
    for host, n in sorted(held_by_host.items()):
        here = [r for r in runs if r.host == host]
        extra = n - sum(c for r in here for lid, c in r.acquired.items() if lid in ids)
        if extra <= 0:
            continue
        around = [r for r in here if not ids & set(r.acquired)]
        out += _shared(pp.pool, host, extra, around)
    return tuple(out[:MOST_NAMED])


def _shared(pool: str, host: str, extra: int, around: list[HostRun]) -> list[Undeclared]:
    """`extra` licenses over the runs `around` them: one each, the last takes the rest."""
    if not around:
        return [Undeclared(pool, host, extra)]
    named = around[:extra]
    counts = [1] * len(named)
    counts[-1] += extra - len(named)
    return [
        Undeclared(pool, host, c, r.worker_id, r.queue_id, r.job_id, r.step_id)
        for r, c in zip(named, counts, strict=True)
    ]


def by_limit(pp: PoolPlan) -> dict[str, int]:
    """The pool's undeclared use as its limits bear it: split as what nobody uses is
    split between them (largest remainders, so the parts add up to the whole)."""
    total = pp.figures.undeclared if pp.figures is not None else 0
    refs = [d.limit_ref for d in pp.decisions]
    if len(refs) <= 1:
        return dict.fromkeys(refs, total)
    weights = {s.limit_ref: s.weight for s in pp.splits} or dict.fromkeys(refs, 1.0)
    return dict(zip(refs, apportion(total, [weights.get(r, 0.0) for r in refs]), strict=True))
