"""A simulation scenario: the YAML file under sync/offline/simulation/scenarios/, as a model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sync.policy import Duration, Pool, parse_days, parse_hours, parse_model
from sync.values.errors import PolicyError


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Artists(_M):
    base: float = Field(2, ge=0, description="licenses artists hold at night")
    peak: float = Field(20, ge=0, description="licenses artists hold at the peak")
    peak_hours: str = "09:00-19:00"
    session: Duration = Field(2700, description="mean checkout length")
    days: str = "mon-fri"


class FarmModel(_M):
    workers: int = Field(60, ge=1)
    jobs_per_hour: float = Field(4, ge=0)
    tasks_per_job: tuple[int, int] = (20, 80)
    task_minutes: tuple[float, float] = (3, 12)
    checkout_delay: Duration = 20.0
    backlog_jobs: int = Field(3, ge=0, description="jobs waiting at the start")


class SyncModel(_M):
    interval: Duration = 60.0
    tool_latency: Duration = 2.0
    count_delay: Duration = 30.0
    # from an artist's DENIED line to the cycle it starts (the log peeked every second,
    # cycles it starts at least 3 s apart; measured under 1 s, tests/process/test_e2e.py)
    log_latency: Duration = 5.0
    # an artist's checkout read from the log starts a cycle where it leaves the pool less
    # free than it keeps (the service does); false: refusals alone, as before issue #39
    checkout_news: bool = True


class Outage(_M):
    start: Duration  # seconds from the start of the run
    end: Duration


class Scenario(_M):
    name: str
    seed: int = 1
    start: datetime = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
    duration: Duration = 86400.0
    step: Duration = 10.0
    total: int = Field(ge=1)
    artists: Artists = Artists()
    farm: FarmModel = FarmModel()
    sync: SyncModel = SyncModel()
    static_limit: int = Field(ge=1)
    policy: dict[str, Any] = {}
    outages: list[Outage] = []


def load_scenario(path: str | Path) -> Scenario:
    """A scenario file; its problems as file:line:col, as a policy's (`PolicyErrors`)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PolicyError(f"cannot read scenario {str(path)!r}: {e.strerror}") from e
    what = "a scenario must be a YAML mapping (name:, total:, static_limit:, …)"
    return parse_model(text, str(path), Scenario, what)[0]


def one_day(sc: Scenario) -> Scenario:
    """A week-long scenario swept one day at a time (the benchmarks' ten seeded days are
    ten days, not ten weeks); a shorter one as it is."""
    return sc.model_copy(update={"duration": 86400.0}) if sc.duration > 86400 else sc


def scenario_pool(sc: Scenario) -> Pool:
    """The scenario's policy as a pool of the real policy model."""
    return Pool.model_validate(
        {
            "limit": "amount.sim",
            "features": [{"source": "sim", "feature": "lic"}],
            "farm_selector": {"hosts": ["^render-"]},
            **sc.policy,
        }
    )


def artist_level(sc: Scenario, when: datetime) -> float:
    a = sc.artists
    start, end = parse_hours(a.peak_hours)
    if when.weekday() not in parse_days(a.days):
        return a.base
    h = when.hour + when.minute / 60
    s, e = start.hour + start.minute / 60, end.hour + end.minute / 60
    ramp = 1.0
    if h < s - ramp or h >= e + ramp:
        return a.base
    if h < s:
        return a.base + (a.peak - a.base) * (h - (s - ramp)) / ramp
    if h >= e:
        return a.peak - (a.peak - a.base) * (h - e) / ramp
    return a.peak
