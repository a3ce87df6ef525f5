"""`license-sync demo --policy MY.yaml`: a TD's own policy on a fake studio made from it —
each farm with the limits its pools name, queues and jobs needing those amounts, and a
fake license server at each `port@host` its sources name, answering from a capture or
from totals taken from the policy. The demo runs a copy of the policy pointed at them;
the TD's file is only read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sync.fakes.license import FakeFeature
from sync.fakes.world import FakeLimit, FakeServer, StudioWorld
from sync.licenses.kinds import TOOLS
from sync.policy import CommandSourceConfig, LoadedPolicy, Policy, ToolSourceConfig
from sync.values.errors import SyncError

DEFAULT_TOTAL = 20  # a feature's total when its pool sets no ceiling
# the most licenses a fake feature gets: a ceiling of 500,000,000 is a bound, not a studio,
# and a fake server holding that many checkouts would fill the memory
MOST_TOTAL = 1000


def studio_for(policy: Policy, captures: dict[str, str]) -> StudioWorld:
    """The fake studio `policy` asks for; `captures`: source name → the output to answer."""
    if unknown := sorted(set(captures) - set(policy.sources)):
        raise SyncError(
            f"--capture {', '.join(unknown)}: the policy has no such source "
            f"(its sources: {', '.join(policy.sources)})"
        )
    farms: dict[str, list[FakeLimit]] = {f.id: [] for f in policy.farms}
    held: dict[str, tuple[str, str]] = {}  # feature → (farm, amount) whose tasks hold it
    for name, pool in policy.pools.items():
        for t in pool.targets(policy.default_farm):
            lim = fake_limit(t.limit, name)
            farm_id = t.farm or next(iter(farms))
            if all(x.amount != lim.amount for x in farms[farm_id]):
                farms[farm_id].append(lim)
            for ref in pool.features:
                held.setdefault(ref.feature, (farm_id, lim.amount))
    servers: dict[str, FakeServer] = {}
    for source, cfg in policy.sources.items():
        if isinstance(cfg, ToolSourceConfig):
            features = _features(policy, source, cfg.kind, held)
            for spec in cfg.servers:
                servers[spec] = _server(spec, features, held, captures.get(source))
    return StudioWorld(farms, servers)


def fake_limit(ref: str, pool: str) -> FakeLimit:
    """A limit the policy names by amount, by id or by display name, made so it resolves."""
    if ref.lower().startswith("amount."):
        return FakeLimit(ref, ref.partition(".")[2])
    amount = "amount." + (re.sub(r"[^a-z0-9_]+", "_", pool.lower()) or "pool")
    if ref.startswith("limit-"):
        return FakeLimit(amount, pool, limit_id=ref)
    return FakeLimit(amount, ref)


def totals(policy: Policy, source: str) -> dict[str, int]:
    """Each feature the pools take from `source`, with the total the demo gives it."""
    out: dict[str, int] = {}
    for pool in policy.pools.values():
        for ref in pool.features:
            if ref.source == source:
                out.setdefault(ref.feature, min(pool.ceiling or DEFAULT_TOTAL, MOST_TOTAL))
    return out


def _features(
    policy: Policy, source: str, kind: str, held: dict[str, tuple[str, str]]
) -> list[FakeFeature]:
    vendors = {r.feature: r.vendor for p in policy.pools.values() for r in p.features}
    return [
        FakeFeature(name, total, held[name][1], vendors.get(name) or "demo", kind)
        for name, total in totals(policy, source).items()
    ]


def _server(
    spec: str, features: list[FakeFeature], held: dict[str, tuple[str, str]], captured: str | None
) -> FakeServer:
    port, _, host = spec.split(",")[0].strip().partition("@")
    farm = held[features[0].name][0] if features else None
    return FakeServer(host, int(port), features, farm, captured)


def demo_copy(
    loaded: LoadedPolicy, url: str, work: Path, address: str, interval: float | None
) -> str:
    """The TD's policy, pointed at the fakes: each farm at the endpoint, each tool source
    at the fake tools, a `command` source as the totals it would report, the history in
    the demo's folder. Comments are not kept: the TD's file is the one to edit."""
    raw: dict[str, Any] = yaml.safe_load(Path(loaded.path).read_text())
    raw["history"] = {**(raw.get("history") or {}), "path": str(work / "history.db")}
    raw["metrics"] = {**(raw.get("metrics") or {}), "address": address}
    if interval is not None:
        raw["interval"] = f"{interval:g}s"
    for farm in raw["farms"]:
        farm.update(fake_endpoint=url, region=farm.get("region") or "us-west-2")
    for name, cfg in loaded.policy.sources.items():
        if isinstance(cfg, ToolSourceConfig):
            raw["sources"][name]["executable"] = str(work / TOOLS[cfg.kind].executable)
        elif isinstance(cfg, CommandSourceConfig):
            raw["sources"][name] = {"kind": "static", "features": totals(loaded.policy, name)}
    head = (
        f"# The demo's copy of {loaded.path}, pointed at its fakes (license-sync demo "
        "--policy).\n# Edit this copy while the demo runs to watch it reload; yours is "
        "not touched.\n"
    )
    return head + yaml.safe_dump(raw, sort_keys=False)
