"""A starter policy from what the license servers and the farms say now (`license-sync
init`): a pool per limit, fed by the features whose names match its amount name, with the
figures a TD needs to finish it in comments. Pure: what was read in, YAML text out; the
command validates the text before it writes it."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sync.licenses import Feature, Report
from sync.values.domain import LimitState, short_host

SURE, GUESS = 2, 1  # how well a feature's name matches a limit's amount name


@dataclass(frozen=True)
class SourceSeen:
    """A license source as init was given it, and what it said."""

    name: str
    kind: str  # a kind of TOOLS: flexlm, rlm
    servers: tuple[str, ...]  # as the policy writes them: "27000@a,27000@b,27000@c" a triad
    report: Report
    how: str = "read now"  # or "from FILE", "from HISTORY"
    named_itself: bool = False  # its servers are as the report named them, not as given


@dataclass(frozen=True)
class FarmSeen:
    farm_id: str
    region: str | None
    limits: tuple[LimitState, ...]
    queues: Mapping[str, str] = field(default_factory=dict)  # queue id → display name
    fake_endpoint: str | None = None
    # its workers' hosts (short names, IPv4 addresses); empty: not read
    workers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Fed:
    """A feature feeding a limit's pool; `sure` False: a guess from a part of its name."""

    source: str
    feature: Feature
    sure: bool
    vendor_needed: bool = False  # the source has this name under several vendors


@dataclass
class Matching:
    pools: dict[str, list[Fed]]  # amount key → its features
    ambiguous: list[tuple[str, Feature, list[str]]]  # (source, feature, the keys it matches)
    unmatched: list[tuple[str, Feature]]


def amount_key(amount: str) -> str:
    """`amount.nuke` → `nuke`: what a feature's name is matched against, case-insensitively."""
    return amount.removeprefix("amount.").lower()


def strength(key: str, feature: str) -> int:
    """SURE: the name is the key or begins with it as a word (`nuke_r`, `Nuke-i`); GUESS:
    the key is elsewhere in it (`foundry_nuke`, `nukex_i`); else 0."""
    name = feature.lower()
    words = [w for w in re.split(r"[^a-z0-9]+", name) if w]
    if name == key or (words and words[0] == key):
        return SURE
    return GUESS if key in name else 0


def match(
    keys: Sequence[str], sources: Sequence[SourceSeen], named: Mapping[str, Sequence[str]] = {}
) -> Matching:
    """Each feature of each source read up goes to the limit its name matches best; one
    that matches several equally is ambiguous and goes to none. `named`: features a TD
    gave a limit (`--limit nuke=nuke_r`): theirs, whatever the names say."""
    out = Matching({k: [] for k in keys}, [], [])
    given = {f.lower(): k for k, fs in named.items() if k in out.pools for f in fs}
    for s in sources:
        if not s.report.up:
            continue
        features = _distinct(s.report.features)
        names = [f.feature for f in features]
        for f in features:
            twice = names.count(f.feature) > 1
            if f.feature.lower() in given:
                out.pools[given[f.feature.lower()]].append(Fed(s.name, f, True, twice))
                continue
            _place(keys, s.name, f, twice, out)
    for fed in out.pools.values():  # the sure ones first, then the guesses
        fed.sort(key=lambda x: (not x.sure, x.source, x.feature.feature.lower()))
    return out


def _place(keys: Sequence[str], source: str, f: Feature, twice: bool, out: Matching) -> None:
    """A feature to the limit its name matches best; unmatched, or ambiguous on a tie."""
    scores = {k: strength(k, f.feature) for k in keys}
    best = max(scores.values(), default=0)
    winners = [k for k, v in scores.items() if v == best]
    if best == 0:
        out.unmatched.append((source, f))
    elif len(winners) > 1:
        out.ambiguous.append((source, f, winners))
    else:
        out.pools[winners[0]].append(Fed(source, f, best == SURE, twice))


def _distinct(features: Sequence[Feature]) -> list[Feature]:
    """One a (vendor, feature): a feature listed on several lines (versions) once."""
    seen: dict[tuple[str | None, str], Feature] = {}
    for f in features:
        seen.setdefault((f.vendor, f.feature), f)
    return list(seen.values())


def suggested_reserve(total: int) -> int:
    """A tenth of what is issued, at least 1: a start to tune from the history."""
    return max(1, math.ceil(total / 10))


def q(value: str) -> str:
    """A YAML scalar, quoted as JSON (JSON is YAML)."""
    return json.dumps(value)


class Starter(NamedTuple):
    text: str  # the policy, commented
    matching: Matching  # which features went to which limit, and what was left over
    limits: dict[str, list[tuple[FarmSeen, LimitState]]]  # amount key → each farm's limit
    around: Mapping[str, str] = {}  # pool → the use around its limit the workers show now


def starter(
    sources: Sequence[SourceSeen],
    farms: Sequence[FarmSeen],
    made: str,
    named: Mapping[str, Sequence[str]] = {},
) -> Starter:
    """The policy, commented, and how it matched. `made`: when and from what, for its
    first line; `named`: the features a TD gave each limit."""
    found: dict[str, list[tuple[FarmSeen, LimitState]]] = {}
    for farm in farms:
        for lim in farm.limits:
            found.setdefault(amount_key(lim.amount), []).append((farm, lim))
    matching = match(sorted(found), sources, named)
    lines = [
        f"# A starter policy, written by `license-sync init` {made}.",
        "# Read each comment, mend each line marked 'a guess', then:",
        "#   license-sync validate policy.yaml && license-sync plan -c policy.yaml",
        "# Every option: docs/policy.md (config/policy.example.yaml shows them all).",
        "interval: 60s",
        "# history: {path: /data/license-sync.db}  # the image's volume; default ./license-sync.db",
        "farms:",
    ]
    for farm in farms:
        lines.append(f"  - id: {farm.farm_id}")
        if farm.region:
            lines.append(f"    region: {farm.region}")
        if farm.fake_endpoint:
            lines.append(f"    fake_endpoint: {farm.fake_endpoint}  # the demo's fake farm")
    lines += ["sources:"] + [line for s in sources for line in _source_lines(s)]
    pools = [k for k in sorted(found) if matching.pools[k]]
    lines.append("pools:" if pools else "pools: {}  # no limit matched a feature: see below")
    around = {}
    for key in pools:
        pool_lines, said = _pool_lines(key, found[key], matching.pools[key], len(farms) > 1)
        lines += pool_lines
        if said:
            around[pool_lines[0].strip().rstrip(":")] = said
    lines += _left_over(matching, found, sources)
    return Starter("\n".join(lines) + "\n", matching, found, around)


def _source_lines(s: SourceSeen) -> list[str]:
    servers = ", ".join(q(x) for x in s.servers)
    lines = [f"  {s.name}:"]
    if not s.report.up:
        why = "; ".join(s.report.errors)[:200] or "down"
        lines.append(f"    # NOT READ ({s.how}): {why}; its features are not known yet")
    else:
        triad = any("," in x for x in s.servers)
        said = ", servers as it named itself" if s.named_itself else ""
        n = len({(f.vendor, f.feature) for f in s.report.features})
        lines.append(
            f"    # {s.how}{said}: {n} feature(s){'; a triad, one source' if triad else ''}"
        )
    return [*lines, f"    kind: {s.kind}", f"    servers: [{servers}]"]


def _pool_lines(
    key: str, limits: list[tuple[FarmSeen, LimitState]], fed: list[Fed], farms: bool
) -> tuple[list[str], str]:
    """The pool's entry, and what it says of use around its limit (or "")."""
    name = re.sub(r"[^a-z0-9_-]+", "_", key) or "pool"
    lines = [f"  {name}:", *_seen_lines(limits, fed), *_limit_lines(limits, farms)]
    farm_use = sum(lim.current_count for _, lim in limits)
    total = sum(f.feature.total or 0 for f in fed)
    in_use = sum(f.feature.in_use for f in fed)
    lines.append("    features:")
    for f in fed:
        guess = "" if f.sure else f"  # a guess: the name holds {key!r}; remove it if wrong"
        vendor = f", vendor: {q(f.feature.vendor)}" if f.vendor_needed and f.feature.vendor else ""
        lines.append(
            f"      - {{source: {q(f.source)}, feature: {q(f.feature.feature)}{vendor}}}{guess}"
        )
    selector, on_workers, around = _selector_lines(limits, fed, farm_use)
    external = max(0, in_use - (on_workers if on_workers else farm_use))
    lines.append(
        f"    reserve: {suggested_reserve(total)}  # suggested: a tenth of the {total} issued; "
        f"outside the farm now: {external}"
    )
    lines.append("    headroom: 1")
    return lines + selector, around


def _seen_lines(limits: list[tuple[FarmSeen, LimitState]], fed: list[Fed]) -> list[str]:
    """Comments: each limit as read, with its queues, and each feature fed to the pool."""
    lines = []
    for farm, lim in limits:
        queues = ", ".join(
            f"{qid} ({farm.queues[qid]})" if farm.queues.get(qid, qid) != qid else qid
            for qid in sorted(a.queue_id for a in lim.associations)
        )
        lines.append(
            f"    # {lim.amount} on {farm.farm_id}: maxCount {lim.max_count}, the farm holds "
            f"{lim.current_count}; queues: {queues or 'none associated'}"
        )
    for f in fed:
        lines.append(
            f"    # {f.feature.feature} ({f.source}): {count_of(f.feature.total)} issued, "
            f"{f.feature.in_use} in use now"
        )
    return lines


def _limit_lines(limits: list[tuple[FarmSeen, LimitState]], farms: bool) -> list[str]:
    """`limit:` (with `farm:` where the policy has several), or `limits:` over farms."""
    if len(limits) == 1 and not farms:
        return [f"    limit: {q(limits[0][1].amount)}"]
    if len(limits) == 1:
        return [f"    farm: {limits[0][0].farm_id}", f"    limit: {q(limits[0][1].amount)}"]
    return ["    limits:  # one pool of licenses shared by the farms"] + [
        f"      - {{farm: {f.farm_id}, limit: {q(lim.amount)}}}" for f, lim in limits
    ]


def _selector_lines(
    limits: list[tuple[FarmSeen, LimitState]], fed: list[Fed], counted: int
) -> tuple[list[str], int, str]:
    """`farm_selector: {workers: true}` where the farm's workers hold some of the pool's
    licenses now, and what they hold beyond what the limits count (use around them)."""
    workers = frozenset().union(*(farm.workers for farm, _ in limits))
    held = [c for f in fed for c in f.feature.checkouts if short_host(c.host or "") in workers]
    on_workers = sum(c.count for c in held)
    if not on_workers:
        return [_selector_guess(workers, fed)], 0, ""
    hosts = sorted({short_host(c.host or "") for c in held})
    lines = [
        f"    farm_selector: {{workers: true}}  # {on_workers} checkout(s) now on the farm's "
        f"workers ({', '.join(hosts[:3])}{', …' if len(hosts) > 3 else ''})"
    ]
    around = ""
    if on_workers > counted:
        around = (
            f"the farm's workers hold {on_workers} of its licenses and its limits count "
            f"{counted}: {on_workers - counted} used around them (steps that do not declare "
            "the amount, or a fleet that declares it: license-sync audit)"
        )
        lines.insert(0, f"    # {around}")
    return lines, on_workers, around


def _selector_guess(workers: frozenset[str], fed: list[Fed]) -> str:
    """A commented farm_selector when the farm holds none of the pool's licenses now: by
    the workers when they were read, else by the numbered host names the server shows
    (`rndr-012` → `^rndr-`), said to be a guess; never a name nothing shows."""
    why = "its checkouts are then counted on the server, not from currentCount, which "
    why += "Deadline updates late"
    if workers:
        named = _numbered_prefixes(workers)
        by_name = f'; or by name: {{hosts: ["^{named[0]}"]}}' if named else ""
        return f"    # farm_selector: {{workers: true}}  # the farm's workers{by_name}: {why}"
    hosts = {short_host(c.host or "") for f in fed for c in f.feature.checkouts if c.host}
    found = _numbered_prefixes(frozenset(hosts))
    farmlike = [p for p in found if p.rstrip("-_") not in WORKSTATION_NAMES]
    if not farmlike:
        return f"    # farm_selector: {{hosts: [...]}}  # name the farm's hosts: {why}"
    seen = ", ".join(f"{p}NNN" for p in found[:3])
    return (
        f'    # farm_selector: {{hosts: ["^{farmlike[0]}"]}}  # a guess: the server shows '
        f"numbered hosts {seen}; name the farm's: {why}"
    )


# how workstations are commonly named: never offered as the farm's hosts
WORKSTATION_NAMES = frozenset(
    {"ws", "wks", "workstation", "desk", "desktop", "pc", "mac", "laptop"}
)


def _numbered_prefixes(hosts: frozenset[str]) -> list[str]:
    """The names at least three of `hosts` share before their number (`rndr-` of
    rndr-001, rndr-002, rndr-003), most hosts first: how machines in rows are named."""
    counts: dict[str, int] = {}
    for h in hosts:
        m = re.fullmatch(r"([a-z][a-z0-9-]*?[-_]?)\d+", h)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return [p for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 3]


def count_of(total: int | None) -> str:
    return "uncounted" if total is None else str(total)


def _left_over(
    matching: Matching,
    found: Mapping[str, list[tuple[FarmSeen, LimitState]]],
    sources: Sequence[SourceSeen],
) -> list[str]:
    """Comments for what init could not place: a TD decides."""
    lines = []
    if matching.ambiguous:
        lines.append("# Features that match several limits equally (add each to one pool):")
        lines += [
            f"#   {src}: {f.feature} matches {', '.join('amount.' + k for k in keys)}"
            for src, f, keys in matching.ambiguous
        ]
    if matching.unmatched:
        lines.append("# Features no limit matches (a limit for them: init --create-limits):")
        lines += [
            f"#   {src}: {f.feature} ({count_of(f.total)} issued, {f.in_use} in use)"
            for src, f in matching.unmatched
        ]
    bare = [k for k in sorted(found) if not matching.pools[k]]
    if bare:
        lines.append("# Limits no feature matches (a pool needs its features named by hand):")
        lines += _unfed_lines(bare, found, sources)
    return lines


def _unfed_lines(
    bare: list[str],
    found: Mapping[str, list[tuple[FarmSeen, LimitState]]],
    sources: Sequence[SourceSeen],
) -> list[str]:
    """Each limit no feature went to, with the features whose names come close."""
    names = sorted({f.feature for s in sources if s.report.up for f in s.report.features})
    lines = []
    for key in bare:
        near = difflib.get_close_matches(key, [n.lower() for n in names], n=3, cutoff=0.4)
        hint = f"; close: {', '.join(near)}" if near else ""
        lines += [f"#   {lim.amount} on {farm.farm_id}{hint}" for farm, lim in found[key]]
    return lines
