"""A reserve learned from the history (docs/policy.md, "A learned reserve"). Pure.

Licenses come back to artists only as the farm's tasks end, so the farm must keep back
what artists will take before it could give anything back: the rise of external use
within `drain`. The profile holds, for each hour of the week — local hours of the
studio's time zone, so 09:00 stays 09:00 across a DST change — a quantile of that rise
over the weeks observed. The reserve at a time is the largest rise of the hours from now
to `drain` ahead: the limit comes down one drain-time before the morning needs it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

HOURS = 7 * 24


@dataclass(frozen=True, slots=True)
class Profile:
    drain: float  # seconds
    quantile: float
    rise: tuple[float | None, ...]  # per hour of the week (Monday 00:00 local first)
    samples: tuple[int, ...]
    tz: str = "UTC"


@lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def hour_of_week(at: datetime, tz: str = "UTC") -> int:
    """The local hour of the week in `tz` (a naive time is UTC)."""
    local = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(_zone(tz))
    return local.weekday() * 24 + local.hour


def learn(
    points: Sequence[tuple[datetime, int]],
    drain: float,
    quantile: float,
    min_samples: int,
    tz: str = "UTC",
) -> Profile:
    """The profile of (time, external use) observations, oldest first, by local hour."""
    times = [t.timestamp() for t, _ in points]
    values = [v for _, v in points]
    by_hour: list[list[int]] = [[] for _ in range(HOURS)]
    for i, (at, v) in enumerate(points):
        end = bisect.bisect_right(times, times[i] + drain)
        if end - i < 2 or times[end - 1] - times[i] < drain / 2:
            continue  # not enough seen after it (the end of the history, a gap)
        by_hour[hour_of_week(at, tz)].append(max(values[i:end]) - v)
    rise = tuple(_quantile(sorted(r), quantile) if len(r) >= min_samples else None for r in by_hour)
    return Profile(drain, quantile, rise, tuple(len(r) for r in by_hour), tz)


def _quantile(ordered: list[int], q: float) -> float:
    """The nearest-rank quantile: a value that was seen."""
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


def reserve_at(profile: Profile, now: datetime) -> tuple[int | None, str]:
    """The reserve `now` needs (the largest rise of the hours until `drain` ahead) and the
    hours it rests on; None where the profile has too few observations to say."""
    tz = profile.tz
    ahead = [now + timedelta(seconds=s) for s in range(0, int(profile.drain) + 1, 600)]
    ahead.append(now + timedelta(seconds=profile.drain))
    hours = sorted({hour_of_week(at, tz) for at in ahead})
    known = [(profile.rise[h], h) for h in hours if profile.rise[h] is not None]
    if len(known) < len(hours):
        return None, "too few observations for these hours yet"
    value, hour = max(known)
    days = "Mon Tue Wed Thu Fri Sat Sun".split()
    at = f"{days[hour // 24]} {hour % 24:02d}:00"
    n = profile.samples[hour]
    return math.ceil(value or 0), (
        f"q{profile.quantile:g} of the rise within {profile.drain / 60:g} min, {at} {tz} "
        f"({n} observations)"
    )
