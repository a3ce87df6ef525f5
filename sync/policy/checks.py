"""What a policy's fields cannot say alone: checks across fields and sources (errors)
and how it reads (notes for `validate`)."""

from __future__ import annotations

import difflib
from typing import Any

from sync.policy.models import (
    ZONE_OF_ABBREVIATION,
    Policy,
    Pool,
    ReserveWindow,
    StaticSourceConfig,
    parse_days,
    parse_hours,
)


def _reserve_above_total(
    name: str, pool: Pool, sources: dict[str, Any]
) -> list[tuple[tuple[Any, ...], str]]:
    """A count reserve, with the headroom, at or above a total the policy itself states
    (static sources): the farm would never be given a license."""
    cfgs = [sources.get(ref.source) for ref in pool.features]
    static = [c for c in cfgs if isinstance(c, StaticSourceConfig)]
    if len(static) < len(cfgs):
        return []
    total = sum(c.features.get(r.feature, 0) for c, r in zip(static, pool.features, strict=True))
    counts = [("default",), *(("schedule", i, "value") for i in range(len(pool.reserve.schedule)))]
    values = [pool.reserve.default, *(w.value for w in pool.reserve.schedule)]
    kept = [  # said where the reserve is written, or at the headroom when none is
        (("reserve", *where) if value else ("headroom",), value + pool.headroom)
        for where, value in zip(counts, values, strict=True)
        if isinstance(value, int)
    ] or [(("headroom",), pool.headroom)]
    return [
        (
            ("pools", name, *where),
            f"pool {name!r}: {_kept_words(pool, held)} at or above the pool's total "
            f"{total}: the farm would never get a license; keep less back",
        )
        for where, held in kept
        if held >= total > 0
    ]


def _kept_words(pool: Pool, held: int) -> str:
    reserve = held - pool.headroom
    if not pool.headroom or not reserve:
        return f"reserve {reserve} is" if reserve else f"headroom {held} is"
    return f"reserve {reserve} and headroom {pool.headroom} ({held} in all) are"


Found = list[tuple[tuple[Any, ...], str]]


def cross_check(policy: Policy) -> Found:
    """Checks that span sections: what one model cannot see on its own."""
    out: Found = []
    farm_ids = [f.id for f in policy.farms]
    for i, f in enumerate(policy.farms):
        if farm_ids.index(f.id) != i:
            out.append((("farms", i, "id"), f"farm {f.id!r} is listed twice"))
    if policy.pools and not policy.farms:
        why = (
            "pools set Deadline limits, so the policy needs its farms: list them under "
            "'farms:', or leave 'pools:' out to run as a license exporter only"
        )
        return [*out, (("pools",), why)]
    if not policy.sources:
        out.append((("sources",), "no sources: name a license server to read under 'sources:'"))
    owner: dict[tuple[str | None, str], str] = {}
    for name, pool in policy.pools.items():
        out += _unknown_sources(name, pool, policy)
        out += _reserve_above_total(name, pool, policy.sources) + _shadowed(name, pool)
        if pool.ceiling is not None and pool.floor > pool.ceiling:
            out.append(
                (
                    ("pools", name, "floor"),
                    f"pool {name!r}: floor {pool.floor} is above ceiling {pool.ceiling}",
                )
            )
        out += _targets(name, pool, policy, farm_ids, owner)
    return out


def _unknown_sources(name: str, pool: Pool, policy: Policy) -> Found:
    out: Found = []
    for j, ref in enumerate(pool.features):
        if ref.source not in policy.sources:
            hint = difflib.get_close_matches(ref.source, list(policy.sources), n=1)
            did = (
                f"; did you mean {hint[0]!r}?"
                if hint
                else (f"; defined: {', '.join(policy.sources) or 'none'}")
            )
            out.append(
                (
                    ("pools", name, "features", j, "source"),
                    f"pool {name!r} names source {ref.source!r}, which is not defined{did}",
                )
            )
    return out


def _targets(
    name: str,
    pool: Pool,
    policy: Policy,
    farm_ids: list[str],
    owner: dict[tuple[str | None, str], str],
) -> Found:
    """Each limit of the pool on a farm of the policy, and in no other pool."""
    out: Found = []
    for k, t in enumerate(pool.targets(policy.default_farm)):
        loc: tuple[Any, ...] = (
            ("pools", name, "limits", k) if pool.limits else ("pools", name, "limit")
        )
        if t.farm is None:
            out.append(
                (
                    ("pools", name),
                    f"pool {name!r} must name its 'farm': the policy has several farms",
                )
            )
            continue
        if t.farm not in farm_ids:
            out.append((loc, f"pool {name!r} names farm {t.farm!r}, which is not in 'farms'"))
        key = (t.farm, t.limit)
        if key in owner and owner[key] != name:
            out.append(
                (
                    loc,
                    f"limit {t.limit!r} of {t.farm} is already in pool "
                    f"{owner[key]!r}: a limit belongs to one pool only",
                )
            )
        owner.setdefault(key, name)
    return out


WEEK = 7 * 1440  # minutes


def _minutes(w: ReserveWindow) -> list[tuple[int, int]]:
    """The window as minutes of the week [start, end), a wrap past Sunday split in two."""
    start, end = parse_hours(w.hours)
    a = start.hour * 60 + start.minute
    b = 1440 if end.hour == 23 and end.microsecond else end.hour * 60 + end.minute
    b = b if b > a else b + 1440  # past midnight: it closes the next morning
    out = []
    for d in sorted(parse_days(w.days)):
        lo, hi = d * 1440 + a, d * 1440 + b
        out += [(lo, min(hi, WEEK))] + ([(0, hi - WEEK)] if hi > WEEK else [])
    return out


def _covered(part: tuple[int, int], by: list[tuple[int, int]]) -> int:
    """How many minutes of `part` lie in `by` (intervals that may overlap each other)."""
    marks = sorted((max(lo, part[0]), min(hi, part[1])) for lo, hi in by)
    total, reach = 0, part[0]
    for lo, hi in marks:
        if hi > max(lo, reach):
            total += hi - max(lo, reach)
            reach = hi
    return total


def _covered_whole(mine: list[tuple[int, int]], by: list[tuple[int, int]]) -> bool:
    """Whether the spans `by` cover every minute of the spans `mine`."""
    return bool(mine and by) and sum(_covered(p, by) for p in mine) == sum(
        hi - lo for lo, hi in mine
    )


def _shadowed(name: str, pool: Pool) -> list[tuple[tuple[Any, ...], str]]:
    """A reserve window that earlier ones (in the same zone) cover whole never applies:
    the first window that matches wins. Say it, rather than ignore it silently."""
    out, windows = [], pool.reserve.schedule
    minutes = [_minutes(w) for w in windows]  # each window's, once
    for j, w in enumerate(windows):
        earlier = [i for i in range(j) if windows[i].tz == w.tz]
        by = [m for i in earlier for m in minutes[i]]
        mine = minutes[j]
        if _covered_whole(mine, by):
            over = [windows[i] for i in earlier if any(_covered(p, minutes[i]) for p in mine)]
            names = ", ".join(f"{v.days} {v.hours}" for v in over)
            out.append(
                (
                    ("pools", name, "reserve", "schedule", j),
                    f"pool {name!r}: reserve window {w.days} {w.hours} never applies: the "
                    f"earlier window(s) {names} cover all of it, and the first window that "
                    "matches wins; remove it or move it before them",
                )
            )
    return out


def policy_warnings(policy: Policy) -> Found:
    """What is valid but almost surely not meant: a pool dropped to its floor by one
    missed read, a farm left on a simulator, a zone abbreviation with no summer time."""
    out: Found = []
    for i, farm in enumerate(policy.farms):
        if farm.fake_endpoint:
            out.append(
                (
                    ("farms", i, "fake_endpoint"),
                    f"farm {farm.id} talks to the simulator at {farm.fake_endpoint}, never to "
                    "AWS: remove fake_endpoint for a real farm",
                )
            )
    for name, pool in policy.pools.items():
        if pool.stale_after < policy.interval:
            out.append(
                (
                    ("pools", name, "stale_after"),
                    f"pool {name!r}: stale_after {pool.stale_after:g}s is shorter than the "
                    f"interval {policy.interval:g}s: one missed read makes it stale "
                    f"(on_stale: {pool.on_stale}); use at least {2 * policy.interval:g}s",
                )
            )
        for j, w in enumerate(pool.reserve.schedule):
            if w.tz.upper() in ZONE_OF_ABBREVIATION:
                out.append(
                    (
                        ("pools", name, "reserve", "schedule", j, "tz"),
                        f"pool {name!r}: tz {w.tz} is a fixed offset all year, with no "
                        f"daylight saving time; for the clocks of a place write its IANA "
                        f"name, e.g. {ZONE_OF_ABBREVIATION[w.tz.upper()]!r}",
                    )
                )
    return out


def explain_notes(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    """What a valid policy means where it may not read as meant: hour ranges that wrap
    midnight belong to the day they start on; a pool without a farm_selector counts the
    farm's use from the delayed currentCount."""
    out: list[tuple[tuple[Any, ...], str]] = []
    if policy.exporter_only:
        out.append(
            (
                ("sources",),
                "no pools: this policy runs as a license exporter only — every feature of "
                "its sources on /metrics, no Deadline client and no AWS credentials; add "
                "pools (and farms) to turn control on",
            )
        )
    for name, pool in policy.pools.items():
        sel = pool.farm_selector
        if sel is None or not (sel.hosts or sel.users or sel.workers):
            out.append(
                (
                    ("pools", name),
                    f"pool {name!r} has no farm_selector: the farm's use is the limits' "
                    "currentCount, which Deadline updates late, so a rise of external use the "
                    "farm's own burst could explain waits for a second read (unless an "
                    "artist is queued); name the farm's hosts or users to count its "
                    "checkouts on the server",
                )
            )
        for i, w in enumerate(pool.reserve.schedule):
            start, end = parse_hours(w.hours)
            if end < start:
                begin, until = (part.strip() for part in w.hours.split("-"))
                out.append(
                    (
                        ("pools", name, "reserve", "schedule", i, "hours"),
                        f"pool {name!r}: hours {w.hours} run past midnight: the window opens "
                        f"at {begin} on {w.days} ({w.tz}) and closes at {until} the next "
                        "morning, so the day it closes need not be in 'days'",
                    )
                )
    return out


# The regions whose Deadline Cloud endpoints AWS's endpoint page listed when this was
# written (docs/policy.md, "farms"); all in the `aws` partition. botocore's data for
# `deadline` resolves any region, so it cannot tell where the service runs.
DEADLINE_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ca-central-1",
        "eu-central-1",
        "eu-west-1",
        "eu-west-2",
    }
)


def region_problems(policy: Policy, regions: dict[str, str]) -> Found:
    """Each farm's region that is no AWS region, or one of a partition where Deadline
    Cloud does not run. `regions`: every region and its partition, from botocore's
    endpoint data (`validate` hands them in: the policy itself knows no AWS)."""
    out: Found = []
    for i, farm in enumerate(policy.farms):
        if farm.region is None or farm.fake_endpoint:
            continue
        where = ("farms", i, "region")
        partition = regions.get(farm.region)
        if partition is None:
            near = difflib.get_close_matches(farm.region, sorted(regions), n=1, cutoff=0.75)
            hint = f"; did you mean {near[0]!r}?" if near else " (e.g. us-west-2, eu-west-1)"
            out.append((where, f"farm {farm.id}: {farm.region!r} is not an AWS region{hint}"))
        elif partition != "aws":
            out.append(
                (
                    where,
                    f"farm {farm.id}: {farm.region!r} is in the {partition} partition, where "
                    "Deadline Cloud has no endpoint: its regions are "
                    f"{', '.join(sorted(DEADLINE_REGIONS))}. Should it come to {partition}, "
                    f"the IAM policy's ARNs must name that partition too (arn:{partition}:"
                    "deadline:…)",
                )
            )
    return out


def region_warnings(policy: Policy) -> Found:
    """A region of the `aws` partition that Deadline Cloud's endpoint list did not name:
    likely a mistake, possibly a region added since."""
    return [
        (
            ("farms", i, "region"),
            f"farm {farm.id}: Deadline Cloud had no endpoint in {farm.region!r} when "
            f"this release was made (its regions: {', '.join(sorted(DEADLINE_REGIONS))}); "
            "if AWS has added it since, ignore this",
        )
        for i, farm in enumerate(policy.farms)
        if farm.region and not farm.fake_endpoint and farm.region not in DEADLINE_REGIONS
    ]
