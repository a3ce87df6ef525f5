"""The learned reserve: a profile of how external use rises within the drain time, by
hour of the week, and the reserve it asks for ahead of the rise. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sync.law.learn import learn, reserve_at
from sync.law.limits import resolve_reserve
from sync.policy import Pool

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)


def mornings(weeks: int = 4, ramp_at: int = 9, to: int = 12) -> list[tuple[datetime, int]]:
    """External use of 2 all day, jumping to `to` at `ramp_at`:00 every Monday."""
    points = []
    for w in range(weeks, 0, -1):
        day = MONDAY - timedelta(weeks=w)
        for minute in range(0, 24 * 60, 1):
            at = day + timedelta(minutes=minute)
            points.append((at, to if ramp_at * 60 <= minute < 17 * 60 else 2))
    return points


def test_the_rise_within_the_drain_time_is_learned_for_the_hour_it_comes():
    profile = learn(mornings(), drain=900, quantile=0.9, min_samples=6)
    # in the quarter hour before 9:00 external use rises by 10; at noon it does not
    assert profile.rise[8] == 10  # Monday 08:xx
    assert profile.rise[12] == 0
    assert profile.samples[8] == 4 * 60


def test_the_reserve_comes_one_drain_time_ahead_of_the_rise():
    profile = learn(mornings(), drain=900, quantile=0.9, min_samples=6)
    early, ahead = MONDAY.replace(hour=7, minute=30), MONDAY.replace(hour=8, minute=50)
    assert reserve_at(profile, early)[0] == 0
    value, why = reserve_at(profile, ahead)
    assert value == 10
    assert "q0.9 of the rise within 15 min, Mon 08:00 UTC" in why


def test_too_little_history_says_so_and_learns_nothing():
    profile = learn(mornings(weeks=1)[:100], drain=900, quantile=0.9, min_samples=6)
    value, why = reserve_at(profile, MONDAY.replace(hour=8, minute=50))
    assert value is None and "too few observations" in why


@pytest.mark.parametrize(("static", "maxi", "expect"), [(1, None, 10), (12, None, 12), (1, 4, 4)])
def test_the_static_reserve_is_the_floor_and_max_the_ceiling(static, maxi, expect):
    pool = Pool.model_validate(
        {
            "limit": "amount.nuke",
            "features": [{"source": "s", "feature": "f"}],
            "reserve": {"default": static, "learn": {"drain": "15m", "max": maxi}},
        }
    )
    profile = learn(mornings(), drain=900, quantile=0.9, min_samples=6)
    value, source = resolve_reserve(pool, 30, MONDAY.replace(hour=8, minute=50), profile)
    assert value == expect
    assert "learned" in source


def test_learn_min_raises_a_learned_reserve_below_it():
    """An hour whose learned rise is 0 still reserves `learn.min` above a lower static
    reserve (a mutant ignoring min survived every test)."""
    pool = Pool.model_validate(
        {
            "limit": "amount.nuke",
            "features": [{"source": "s", "feature": "f"}],
            "reserve": {"default": 1, "learn": {"drain": "15m", "min": 3}},
        }
    )
    profile = learn(mornings(), drain=900, quantile=0.9, min_samples=6)
    quiet = MONDAY.replace(hour=7, minute=30)  # learned 0 here
    assert reserve_at(profile, quiet)[0] == 0
    assert resolve_reserve(pool, 30, quiet, profile)[0] == 3


def test_without_a_profile_the_static_reserve_stands_and_says_why():
    pool = Pool.model_validate(
        {
            "limit": "amount.nuke",
            "features": [{"source": "s", "feature": "f"}],
            "reserve": {"default": 2, "learn": {}},
        }
    )
    assert resolve_reserve(pool, 30, MONDAY, None) == (2, "default; learned: no history read yet")


def london_mornings() -> list[tuple[datetime, int]]:
    """Four winter Mondays (GMT) of artists arriving at 09:00 London time."""
    london = ZoneInfo("Europe/London")
    points = []
    for day in (2, 9, 16, 23):  # March 2026; the clocks go forward on the 29th
        start = datetime(2026, 3, day, tzinfo=london)
        for minute in range(0, 24 * 60):
            at = (start + timedelta(minutes=minute)).astimezone(UTC)
            points.append((at, 12 if 9 * 60 <= minute < 17 * 60 else 2))
    return points


def test_the_profile_keeps_local_hours_across_a_dst_change():
    """Learned in GMT, used in BST: the rise still comes at 09:00 London time, an hour
    earlier in UTC. Keyed by UTC hour, the reserve came an hour late and stayed an hour
    too long."""
    profile = learn(london_mornings(), 900, 0.9, 6, tz="Europe/London")
    summer = datetime(2026, 3, 30, tzinfo=ZoneInfo("Europe/London"))  # a Monday, BST
    value, why = reserve_at(profile, summer.replace(hour=8, minute=30))  # 07:30 UTC
    assert value == 10 and "Mon 08:00 Europe/London" in why
    assert reserve_at(profile, summer.replace(hour=9, minute=30))[0] == 0  # 08:30 UTC
    assert reserve_at(profile, summer.replace(hour=7, minute=30))[0] == 0


def test_the_learned_reserve_takes_the_schedules_time_zone_unless_it_names_one():
    def pool(reserve: dict) -> Pool:
        return Pool.model_validate(
            {"limit": "amount.nuke", "features": [{"source": "s", "feature": "f"}], **reserve}
        )

    windows = [{"days": "mon-fri", "hours": "09:00-18:00", "tz": "Europe/London", "value": 2}]
    learned = {"learn": {"drain": "15m"}}
    assert pool({"reserve": {"schedule": windows, **learned}}).reserve.learned_tz == (
        "Europe/London"
    )
    assert pool({"reserve": learned}).reserve.learned_tz == "UTC"
    tokyo = {"learn": {"drain": "15m", "tz": "Asia/Tokyo"}, "schedule": windows}
    assert pool({"reserve": tokyo}).reserve.learned_tz == "Asia/Tokyo"
    with pytest.raises(ValueError, match="not a time zone"):
        pool({"reserve": {"learn": {"tz": "Europe/Londn"}}})
