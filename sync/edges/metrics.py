"""Prometheus metrics and the /metrics, /healthz, /readyz endpoint (docs/design.md).

Per-pool values come from a collector that builds fresh families from the last cycle on
every scrape, so a pool that leaves the policy leaves /metrics with it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from sync import __version__

P = "license_sync_"


@dataclass
class Snapshot:
    """What the last cycle saw, as plain rows; replaced whole after every cycle."""

    features: list[dict[str, Any]] = field(default_factory=list)  # pool feature source total...
    pools: list[dict[str, Any]] = field(default_factory=list)  # pool farm external reserve ...
    limits: list[dict[str, Any]] = field(default_factory=list)  # pool limit max target current
    sources: list[dict[str, Any]] = field(default_factory=list)  # source up duration
    jobs: list[dict[str, Any]] = field(default_factory=list)  # pool jobs demand overrides
    servers: list[dict[str, Any]] = field(default_factory=list)  # source host master up
    vendors: list[dict[str, Any]] = field(default_factory=list)  # source vendor up
    checkouts: list[dict[str, Any]] = field(default_factory=list)  # source feature user host
    logs: list[dict[str, Any]] = field(default_factory=list)  # source up: each source's log


def _number(v: Any) -> float | None:
    return None if v is None else float(v)  # None: no sample; True/False: 1/0


def _flag(v: Any) -> float:
    return 1.0 if v else 0.0  # absent reads as 0


def _count(v: Any) -> float:
    return float(v or 0)  # a count, absent reading as 0


@dataclass(frozen=True)
class GaugeSpec:
    """A gauge of what the last cycle saw: a sample for each row of the snapshot's `rows`
    list, labelled by those columns of the row, valued by `value(row[column])`."""

    name: str
    help: str
    rows: str  # a field of Snapshot
    labels: tuple[str, ...]
    column: str
    value: Callable[[Any], float | None] = _number


FEATURE, POOL, LIMIT, SOURCE = (
    ("pool", "feature", "source"),
    ("pool",),
    ("pool", "limit"),
    ("source",),
)
HOST, VENDOR = ("source", "host", "master"), ("source", "vendor")
CHECKOUT = ("source", "feature", "user", "host")


def _expiry_ts(expires: str | None) -> float | None:
    if not expires or expires == "permanent":
        return None
    try:
        d = date.fromisoformat(expires)
    except ValueError:
        return None
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()  # not the host's zone


# A new gauge of what a cycle saw is one line here (and its column, where record.py's
# snapshot() builds that row, if the row lacks it).
GAUGES = [
    GaugeSpec(
        "license_issued",
        "Licenses issued for a feature (uncounted: absent)",
        "features",
        FEATURE,
        "total",
    ),
    GaugeSpec(
        "license_in_use", "Licenses in use, from the license server", "features", FEATURE, "in_use"
    ),
    GaugeSpec(
        "license_reserved",
        "Licenses held by RESERVATIONs on the server",
        "features",
        FEATURE,
        "reserved",
    ),
    GaugeSpec("license_queued", "Licenses queued for on the server", "features", FEATURE, "queued"),
    GaugeSpec(
        "license_expiry_timestamp_seconds",
        "When the feature's licenses expire",
        "features",
        FEATURE,
        "expires",
        _expiry_ts,
    ),
    GaugeSpec(
        "license_in_use_farm",
        "Licenses the farm holds (selector or currentCount)",
        "pools",
        POOL,
        "farm_use",
    ),
    GaugeSpec(
        "license_in_use_external", "Licenses held outside the farm", "pools", POOL, "external"
    ),
    GaugeSpec(
        "undeclared_in_use",
        "Licenses farm hosts hold around the pool's limits, taken from this limit",
        "limits",
        LIMIT,
        "undeclared",
    ),
    GaugeSpec(
        "pool_reserve", "Licenses kept back by the policy's reserve now", "pools", POOL, "reserve"
    ),
    GaugeSpec("pool_headroom", "The policy's headroom", "pools", POOL, "headroom"),
    GaugeSpec(
        "limit_max",
        "The limit's maxCount after this cycle (-1 unlimited)",
        "limits",
        LIMIT,
        "max_count",
    ),
    GaugeSpec("limit_target", "What the control law asks for", "limits", LIMIT, "target"),
    GaugeSpec(
        "pool_exhausted",
        "1 while no license is free for the farm (target below 1)",
        "limits",
        LIMIT,
        "exhausted",
        _flag,
    ),
    GaugeSpec(
        "limit_in_use",
        "The limit's currentCount as Deadline reports it",
        "limits",
        LIMIT,
        "current_count",
    ),
    GaugeSpec(
        "limit_queues_paused",
        "Queues license-sync stopped on the limit (on_exhausted: pause)",
        "limits",
        LIMIT,
        "paused",
        _count,
    ),
    GaugeSpec("pool_jobs", "Active jobs that need the pool", "jobs", POOL, "jobs"),
    GaugeSpec(
        "pool_demand", "Units the pool's jobs want now (tasks × units)", "jobs", POOL, "demand"
    ),
    GaugeSpec(
        "pool_job_overrides",
        "Jobs whose maxWorkerCount someone else changed",
        "jobs",
        POOL,
        "overrides",
    ),
    GaugeSpec(
        "source_up", "1 if the license source was read this cycle", "sources", SOURCE, "up", _flag
    ),
    GaugeSpec("source_duration_seconds", "Time to read the source", "sources", SOURCE, "duration"),
    GaugeSpec(
        "source_last_success_timestamp_seconds",
        "When the source was last read up",
        "sources",
        SOURCE,
        "last_success",
    ),
    GaugeSpec(
        "license_server_up",
        "1 if this server of the source (one of a triad) is up",
        "servers",
        HOST,
        "up",
        _flag,
    ),
    GaugeSpec(
        "vendor_daemon_up",
        "1 if the vendor daemon (or RLM ISV server) is up",
        "vendors",
        VENDOR,
        "up",
        _flag,
    ),
    GaugeSpec(
        "source_log_up",
        "1 while the source's debug log is read (log: of the policy)",
        "logs",
        SOURCE,
        "up",
        _flag,
    ),
    GaugeSpec(
        "license_checkouts",
        "Licenses a user holds from a host (metrics.checkouts)",
        "checkouts",
        CHECKOUT,
        "count",
    ),
]


class _SnapshotCollector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self.metrics.snapshot
        for g in GAUGES:
            fam = GaugeMetricFamily(P + g.name, g.help, labels=list(g.labels))
            for row in getattr(snap, g.rows):
                value = g.value(row.get(g.column))
                if value is not None:
                    fam.add_metric([str(row[k]) for k in g.labels], value)
            yield fam


class Metrics:
    """Every metric of the service, on one registry (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        # no `_created` series beside every counter: they double the series a scrape
        # stores and nothing here reads them (a switch of the library, for the process)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it untyped
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Gauge(P + "build_info", "The running version", ["version", "python"], registry=r).labels(
            __version__, platform.python_version()
        ).set(1)
        self.snapshot = Snapshot()
        self._cycle_families(r)
        self._api_families(r)
        self._policy_families(r)
        self._history_families(r)
        r.register(_SnapshotCollector(self))

    def _cycle_families(self, r: CollectorRegistry) -> None:
        self.cycle_duration = Histogram(
            P + "cycle_duration_seconds",
            "Time one cycle took",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
        )
        self.cycles = Counter(P + "cycles", "Cycles run, by result", ["result"], registry=r)
        for result in ("ok", "error", "over_budget"):
            self.cycles.labels(result)
        self.last_success = Gauge(
            P + "last_success_timestamp_seconds",
            "When the last cycle without errors ended",
            registry=r,
        )
        self.jobs_unread = Gauge(
            P + "jobs_unread",
            "Jobs that can run whose steps are not read yet (not capped until they are)",
            registry=r,
        )

    def _api_families(self, r: CollectorRegistry) -> None:
        self.api_calls = Counter(
            P + "api_calls", "Deadline API calls", ["operation", "outcome"], registry=r
        )
        self.throttles = Counter(
            P + "api_throttles", "Throttled API attempts, retried or not", ["operation"], registry=r
        )
        self.changes = Counter(P + "changes", "Writes made, by kind", ["kind"], registry=r)
        self.log_lines_skipped = Counter(
            P + "log_lines_skipped",
            "Lines of a source's log over the length bound (LICENSE_SYNC_LOG_MAX_LINE), "
            "skipped unread",
            ["source"],
            registry=r,
        )
        self.http_cut = Counter(
            P + "http_connections_cut",
            "Connections to this endpoint closed by a bound (deadline: not done within "
            "LICENSE_SYNC_HTTP_DEADLINE; per_client, total: the oldest closed for a new one)",
            ["bound"],
            registry=r,
        )
        for bound in ("deadline", "per_client", "total"):  # a series from the first scrape
            self.http_cut.labels(bound)
        self.denials = Counter(
            P + "denials",
            "Checkouts a license server's log recorded as refused, by pool and who was "
            "refused (artist | farm, by the pool's farm_selector)",
            ["pool", "who"],
            registry=r,
        )
        self.preempt_skipped = Counter(
            P + "preempt_skipped",
            "Running task runs preemption passed over, by reason (chunked: a chunk's run "
            "names no task; unread: its session action could not be read)",
            ["reason"],
            registry=r,
        )

    def _policy_families(self, r: CollectorRegistry) -> None:
        self.reloads = Counter(
            P + "policy_reloads", "Policy file loads, by result", ["result"], registry=r
        )
        for result in ("ok", "error"):
            self.reloads.labels(result)
        self.policy_info = Gauge(
            P + "policy_info", "The policy in force (sha256 prefix)", ["sha"], registry=r
        )
        self.interval = Gauge(
            P + "interval_seconds", "The policy's interval between cycles", registry=r
        )
        self.policy_file_valid = Gauge(
            P + "policy_file_valid",
            "0 while the policy file holds an edit that failed validation",
            registry=r,
        )
        self.policy_file_valid.set(1)

    def _history_families(self, r: CollectorRegistry) -> None:
        self.history_errors = Counter(
            P + "history_errors", "History writes that failed", registry=r
        )
        self.history_lost = Gauge(
            P + "history_lost",
            "1 while the history file the service opened is removed or replaced: "
            "no job cap is written until a restart",
            registry=r,
        )
        self.leader = Gauge(
            P + "leader",
            "1 while this replica holds the writer's lease on `table` (or runs alone, "
            'table=""); 0: a replica in waiting, serving metrics and writing nothing',
            ["table"],
            registry=r,
        )
        self.lease_lost = Counter(
            P + "lease_lost_total",
            "Times this replica lost the writer's lease it held (taken over, or not renewed "
            "in time)",
            registry=r,
        )
        self.setup_findings = Gauge(
            P + "setup_findings",
            "Mistakes in the farm's setup that defeat a pool's limit, by kind, as the last "
            "audit found them (`license-sync audit`; at start and after a policy reload)",
            ["kind"],
            registry=r,
        )
        self.jobs_unadopted = Gauge(
            P + "jobs_unadopted",
            "Capped jobs found by a new history and left alone until `run --adopt`",
            registry=r,
        )

    def count_call(self, operation: str, outcome: str) -> None:
        self.api_calls.labels(operation, outcome).inc()

    def count_throttle(self, operation: str) -> None:
        self.throttles.labels(operation).inc()

    def set_policy(self, sha: str) -> None:
        self.policy_info.clear()
        self.policy_info.labels(sha).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
