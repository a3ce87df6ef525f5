"""The policy's models: every field, its default, its bounds and its words (the JSON
Schema `license-sync schema` prints comes from them)."""

from __future__ import annotations

import difflib
import math
import re
from datetime import datetime, time
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from sync.licenses.kinds import TOOLS
from sync.licenses.tool import Tool

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> float:
    """`90`, `"90s"`, `"5m"`, `"1h"`, `"30d"` → seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use e.g. 60s, 5m, 1h)")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"duration {value!r} is not a finite number of seconds")
        if value < 0:
            raise ValueError(f"duration {value!r} must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration (use e.g. 60s, 5m, 1h, 30d)")


# what an editor may accept for a duration: seconds, or a number with a unit
DurationText = Annotated[str, Field(pattern=_DURATION.pattern)]
Duration = Annotated[
    float, BeforeValidator(parse_duration, json_schema_input_type=float | DurationText)
]
# Bounds that keep a valid policy from wedging the service: a cycle at least once an hour,
# a history kept at most a year, a license tool given at most five minutes (SIGTERM must
# not wait longer), a source trusted stale for at most a week.
# the largest count Deadline takes (its limits' and jobs' counts are int32): a policy or a
# license server that says more is wrong, never acted on
INT32_MAX = 2**31 - 1
Interval = Annotated[Duration, Field(ge=1, le=3600)]
Retention = Annotated[Duration, Field(ge=60, le=366 * 86400)]
ToolTimeout = Annotated[Duration, Field(gt=0, le=300)]
StaleAfter = Annotated[Duration, Field(ge=0, le=7 * 86400)]


SERVER_RE = re.compile(r"^\d{1,5}@[A-Za-z0-9._-]+$")


def check_server_spec(spec: str) -> str:
    """Validate `port@host` (or a comma list of them, a FlexLM triad); return it stripped."""
    parts = [p.strip() for p in spec.split(",")]
    for p in parts:
        if not SERVER_RE.match(p) or not 0 < int(p.split("@")[0]) < 65536:
            raise ValueError(f"{p!r} is not port@host (e.g. 27000@lic1)")
    return ",".join(parts)


def _check_regex(value: str) -> str:
    if (glob := _as_glob(value)) is not None:
        raise ValueError(
            f"{value!r} reads as a shell glob, but names are matched as regular expressions: "
            f"for the names that glob means, write '{glob}'"
        )
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"{value!r} is not a valid regular expression: {e}") from e
    if re.search(r"\([^)]*[+*][^)]*\)[+*{]", value):
        # nested quantifiers like (a+)+ backtrack catastrophically on a long host name
        raise ValueError(f"{value!r} nests quantifiers (e.g. (a+)+); simplify it")
    return value


def _as_glob(value: str) -> str | None:
    """The regular expression a shell glob means (`render-*` -> `^render-`), when `value`
    is written as one: only name characters and wildcards, and a `*` that repeats nothing
    a regular expression would (not `.*`)."""
    if not re.fullmatch(r"[\w.\-*?]+", value) or "*" not in value:
        return None
    if not (value.startswith(("*", "?")) or re.search(r"[^.]\*", value)):
        return None
    body = value.strip("*")
    pattern = re.escape(body).replace(r"\-", "-").replace(r"\*", ".*").replace(r"\?", ".")
    return ("" if value.startswith("*") else "^") + pattern + ("" if value.endswith("*") else "$")


Regex = Annotated[str, BeforeValidator(lambda v: _check_regex(str(v)) if v is not None else v)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HistoryConfig(Model):
    """Where the SQLite history lives and how long it is kept."""

    path: str = Field("license-sync.db", description="SQLite file (created 0600)")
    keep: Retention = Field(30 * 86400, description="retention, e.g. 30d (at most 366d)")
    redact: bool = Field(
        True,
        description="hash artists' user, host and display names and job creators in the "
        "history (docs/operations.md, 'What the history holds')",
    )
    journal: Literal["wal", "rollback"] = Field(
        "wal",
        description="wal on a local disk; rollback on a network volume (NFS, EFS), where "
        "WAL does not work (docs/operations.md, 'The history on network storage')",
    )


class MetricsConfig(Model):
    address: str = Field("0.0.0.0:9462", description="host:port for /metrics, /healthz, /readyz")
    checkouts: bool = Field(
        False,
        description="a license_checkouts series per user and host holding a feature: "
        "personal data, so off unless asked for (docs/operations.md, 'Metrics')",
    )

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        _, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            if v.isdigit():
                raise ValueError(
                    f"{v!r} is a port alone: write 0.0.0.0:{v} to listen on every interface, "
                    f"or 127.0.0.1:{v} for this host only"
                )
            if sep and port.isdigit():
                raise ValueError(f"{v!r}: the port must be 1 to 65535 (e.g. 0.0.0.0:9462)")
            raise ValueError(f"{v!r} is not host:port (e.g. 0.0.0.0:9462)")
        return v


_FARM_ID = re.compile(r"^farm-[0-9a-f]{32}$")


def _farm_id(v: Any) -> Any:
    if isinstance(v, str) and not _FARM_ID.match(v):
        raise ValueError(
            f"{v!r} is not a Deadline farm id: 'farm-' and 32 hex digits, as the Deadline "
            "console and `aws deadline list-farms` show it "
            "(e.g. farm-0123456789abcdef0123456789abcdef)"
        )
    return v


class FarmConfig(Model):
    id: Annotated[str, BeforeValidator(_farm_id)] = Field(
        pattern=_FARM_ID.pattern, description="Deadline farm id"
    )
    region: str | None = Field(None, description="AWS region; default from the environment")
    read_threads: int = Field(
        8, ge=1, le=32, description="reads of this farm's jobs and steps in flight at once"
    )
    fake_endpoint: str | None = Field(
        None,
        pattern=r"^http://(127\.0\.0\.1|localhost|\[::1\]):\d{1,5}/?$",
        description="the loopback endpoint of `license-sync demo`'s fake farm: reached with "
        "throwaway credentials, never AWS or the instance metadata",
    )


def _executable(v: str) -> str:
    if not v or "\x00" in v or "\n" in v:
        raise ValueError(f"{v!r} is not a program path")
    if "/" in v and not v.startswith("/"):
        raise ValueError(f"{v!r}: give an absolute path, or a bare name looked up on PATH")
    return v


Executable = Annotated[str, AfterValidator(_executable)]

_SPEC = r"\d{1,5}@[A-Za-z0-9._-]+"
ServerSpec = Annotated[
    str,
    AfterValidator(check_server_spec),
    Field(description="port@host, or a comma list for a FlexLM triad"),
    # for editors: the shape; the check above also bounds the port and names the problem
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^\s*{_SPEC}(\s*,\s*{_SPEC})*\s*$",
            "description": "port@host, or a comma list for a FlexLM triad",
        }
    ),
]


class SourceLog(Model):
    """The server's debug log, for the refusals it records (docs/operations.md, "Denials")."""

    path: Annotated[str, Field(min_length=1, description="the log as the container sees it")]
    tz: Annotated[str, BeforeValidator(lambda v: _tz(v))] = Field(
        "UTC", description="the server's time zone: its log's times are local and dateless"
    )
    format: Literal["report", "debug"] | None = Field(
        None,
        description="which log it is (RLM: its REPORTLOG or its debug log; FlexLM: debug); "
        "left out, told from its lines",
    )


class ToolSourceConfig(Model):
    """A source read by a license manager's status tool: one model a `Tool` of TOOLS."""

    kind: str
    servers: Annotated[list[ServerSpec], Field(min_length=1)]
    executable: Executable
    timeout: ToolTimeout = 20.0
    log: SourceLog | None = Field(
        None,
        description="its server's log (FlexLM: the vendor daemon's debug log; RLM: the "
        "ISV server's REPORTLOG or debug log): denials counted from it",
    )

    @model_validator(mode="after")
    def _log_readable(self) -> ToolSourceConfig:
        if self.log is not None and not TOOLS[self.kind].reads_log:
            readable = ", ".join(k for k, t in TOOLS.items() if t.reads_log)
            raise ValueError(f"a {self.kind} source's log is not read (only {readable}'s)")
        logs = TOOLS[self.kind].logs
        if self.log is not None and self.log.format is not None and self.log.format not in logs:
            raise ValueError(
                f"a {self.kind} server writes no {self.log.format} log that is read: give "
                f"log.format {' or '.join(sorted(logs))}, or leave it out"
            )
        return self


def _tool_source_model(tool: Tool) -> type[ToolSourceConfig]:
    """The policy's entry for `tool`: its kind as the tag, its executable as the default."""
    return create_model(
        f"{tool.kind.capitalize()}SourceConfig",
        __base__=ToolSourceConfig,
        __module__=__name__,
        kind=(Literal[tool.kind], ...),  # type: ignore[arg-type]  # a tag known at run time
        executable=(Executable, tool.executable),
    )


TOOL_SOURCES = tuple(_tool_source_model(t) for t in TOOLS.values())


class CommandSourceConfig(Model):
    kind: Literal["command"]
    command: Annotated[list[str], Field(min_length=1, description="argv; no shell")]

    @field_validator("command")
    @classmethod
    def _program(cls, v: list[str]) -> list[str]:
        _executable(v[0])
        return v

    timeout: ToolTimeout = 20.0


class StaticSourceConfig(Model):
    kind: Literal["static"]
    features: dict[str, Annotated[int, Field(ge=0, le=INT32_MAX)]]


SourceConfig = Annotated[
    Union[(*TOOL_SOURCES, CommandSourceConfig, StaticSourceConfig)],  # type: ignore[valid-type]
    Field(discriminator="kind"),
]


class FeatureRef(Model):
    source: str
    feature: str
    vendor: str | None = None


class FarmSelector(Model):
    """Which checkouts are the farm's own: a host or user matching any regex, or a host
    that is one of the farm's Deadline workers."""

    hosts: list[Regex] = []
    users: list[Regex] = []
    workers: bool = Field(
        False,
        description="the farms' Deadline workers are the farm's hosts: their host names "
        "and IPv4 addresses (ListWorkers hostProperties), read each cycle",
    )


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _amount(v: Any) -> int | str:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number or percentage")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"{v!r} must not be negative")
        if v > INT32_MAX:
            raise ValueError(f"{v} is past what Deadline counts ({INT32_MAX:,})")
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)  # reserve: "3" is 3, as headroom: "3" is (pydantic reads both so)
    if isinstance(v, str) and (m := _PERCENT.match(v)):
        if float(m.group(1)) >= 100:
            raise ValueError(f"{v!r} keeps every license back: a percentage is below 100%")
        return v.strip()
    raise ValueError(f"{v!r} is not a count or a percentage like '10%'")


Percent = Annotated[str, Field(pattern=_PERCENT.pattern)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Amount = Annotated[int | str, BeforeValidator(_amount, json_schema_input_type=Count | Percent)]
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _days(v: str) -> str:
    parse_days(v)
    return v


def parse_days(spec: str) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `daily` → weekday numbers (Monday is 0)."""
    spec = spec.strip().lower()
    if spec in ("daily", "all", "*"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        if a not in _DAYS or (b and b not in _DAYS):
            raise ValueError(f"{spec!r} is not a day list like 'mon-fri' or 'sat,sun'")
        i, j = _DAYS.index(a), _DAYS.index(b or a)
        out.update(_DAYS.index(d) % 7 for d in (_DAYS * 2)[i : (j if j >= i else j + 7) + 1])
    return frozenset(out)


def parse_hours(spec: str) -> tuple[time, time]:
    m = re.match(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", spec)
    if not m:
        raise ValueError(f"{spec!r} is not an hour range like '09:00-19:00'")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"{spec!r} is not an hour range like '09:00-19:00'")
    start, end = time(h1 % 24, m1), time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    if start == end:  # 18:00-18:00, 24:00-00:00 (00:00-24:00 ends a moment before midnight)
        raise ValueError(
            f"{spec!r} opens and closes at the same minute: it is never open; "
            "for the whole day write '00:00-24:00'"
        )
    return start, end


# abbreviations people write for a zone; those that are also IANA keys (EST, MST, HST)
# are fixed offsets with no daylight saving time, which is not what they mean either
ZONE_OF_ABBREVIATION = {
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "HST": "Pacific/Honolulu",
    "AKST": "America/Anchorage",
    "BST": "Europe/London",
    "IST": "Asia/Kolkata",
    "CEST": "Europe/Paris",
    "JST": "Asia/Tokyo",
    "KST": "Asia/Seoul",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
    "NZST": "Pacific/Auckland",
    "NZDT": "Pacific/Auckland",
}


def _tz(v: str) -> str:
    zone = ZONE_OF_ABBREVIATION.get(str(v).upper())
    if zone is not None and str(v).upper() not in available_timezones():
        raise ValueError(
            f"{v!r} is an abbreviation, not a time zone: write the zone's IANA name, "
            f"e.g. {zone!r} (it follows daylight saving time as the clocks there do)"
        )
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as e:
        near = difflib.get_close_matches(str(v), sorted(available_timezones()), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else " (e.g. Europe/London, UTC)"
        raise ValueError(f"{v!r} is not a time zone{hint}") from e
    return v


class ReserveWindow(Model):
    days: Annotated[str, BeforeValidator(_days)] = "daily"
    hours: Annotated[str, BeforeValidator(lambda v: (parse_hours(v), v)[1])] = "00:00-24:00"
    tz: Annotated[str, BeforeValidator(_tz)] = "UTC"
    value: Amount

    def active(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.tz))
        start, end = parse_hours(self.hours)
        t = local.time()
        in_hours = start <= t < end if start <= end else (t >= start or t < end)
        day = local.weekday() if start <= end or t >= start else (local.weekday() - 1) % 7
        return in_hours and day in parse_days(self.days)


class LearnedReserve(Model):
    """A reserve learned from the history (docs/policy.md, "A learned reserve")."""

    drain: Annotated[Duration, Field(gt=0, le=86400)] = Field(
        900.0, description="how long the farm takes to give licenses back (task length)"
    )
    quantile: float = Field(0.9, ge=0.5, le=1.0, description="of the rise within `drain`")
    weeks: int = Field(4, ge=1, le=52, description="history the profile is learned from")
    min: int = Field(0, ge=0, le=INT32_MAX)
    max: int | None = Field(None, ge=0, le=INT32_MAX)
    samples: int = Field(
        6, ge=1, le=INT32_MAX, description="observations an hour needs before it is used"
    )
    tz: Annotated[str | None, BeforeValidator(lambda v: v if v is None else _tz(v))] = Field(
        None,
        description="the time zone whose hours of the week the profile keeps (a DST change "
        "does not shift it); by default the reserve schedule's, else UTC",
    )


class Reserve(Model):
    default: Amount = 0
    schedule: list[ReserveWindow] = []
    learn: LearnedReserve | None = None

    @property
    def learned_tz(self) -> str:
        """The zone the learned profile's hours are in: its own, the schedule's when all
        its windows share one, else UTC."""
        if self.learn is not None and self.learn.tz is not None:
            return self.learn.tz
        zones = {w.tz for w in self.schedule}
        return zones.pop() if len(zones) == 1 else "UTC"


class Preempt(Model):
    """Give licenses back to artists by requeueing the farm's youngest tasks (opt-in)."""

    enabled: bool = False
    max_per_cycle: int = Field(2, ge=1, le=100)
    younger_than: Annotated[Duration, Field(gt=0, le=86400)] = Field(
        600.0, description="never requeue a task that has run longer than this"
    )
    release: Annotated[Duration, Field(ge=0, le=3600)] = Field(
        120.0,
        description="how long a requeued task may keep its license before its process exits "
        "(the step's cancelation: OpenJD's notify period, 120 s by default for a task)",
    )


def _reserve(v: Any) -> Any:
    return {"default": v} if isinstance(v, int | str) and not isinstance(v, bool) else v


# a settle given as a time: with its unit, since a bare number is a count of cycles
_SETTLE_TIME = r"^\s*\d+(?:\.\d+)?\s*(?:s|m|h)\s*$"


def _settle(v: Any) -> int | str:
    """A count of cycles (1, 2, 3…) or a time with its unit, at most a day."""
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10_000:
        return v
    if isinstance(v, str) and re.match(_SETTLE_TIME, v) and parse_duration(v.strip()) <= 86400:
        return v
    raise ValueError(
        f"settle is a count of cycles (1: at once, 2: one interval, …) or a time with its "
        f"unit (90s, 5m), at most a day; got {v!r}"
    )


Settle = Annotated[
    Annotated[int, Field(ge=1, le=10_000)] | Annotated[str, Field(pattern=_SETTLE_TIME)],
    BeforeValidator(_settle),
]


class Hysteresis(Model):
    deadband: int = Field(
        1, ge=1, le=INT32_MAX, description="changes smaller than this are skipped"
    )
    settle: Settle = Field(
        2,
        description="how long an increase is wanted before it lands: a count of cycles "
        "read as intervals (2: one interval, 1: at once) or a time such as 90s; a cycle a "
        "refusal starts between two adds no more than the time it adds",
    )
    max_step: int | None = Field(
        None,
        ge=1,
        le=INT32_MAX,
        description="largest increase per interval, however many cycles run in it",
    )

    def settle_seconds(self, interval: float) -> float:
        """How long an increase must be wanted: `settle` cycles are `settle - 1`
        intervals, the time the periodic cycles take to reach the one it lands on."""
        if isinstance(self.settle, int):
            return (self.settle - 1) * interval
        return parse_duration(self.settle.strip())


_LIMIT_ID = re.compile(r"^limit-[0-9a-f]{32}$")
_AMOUNT = re.compile(r"^amount\.[A-Za-z0-9_.-]+$")


def _limit_ref(v: str) -> str:
    """A limit is named by its limitId, its amountRequirementName or its displayName; a
    reference that looks like one of the first two but is not one is a typo."""
    v = str(v).strip()
    if v.startswith("limit-") and not _LIMIT_ID.match(v):
        raise ValueError(f"{v!r} is not a limit id (limit- and 32 hex digits)")
    if v.lower().startswith("amount") and not _AMOUNT.match(v):
        raise ValueError(f"{v!r} is not an amount name (amount.<name>, e.g. amount.nuke)")
    if not v or len(v) > 100 or "\n" in v:
        raise ValueError(f"{v!r} is not a limit's id, amount name or display name")
    return v


LimitRef = Annotated[str, AfterValidator(_limit_ref)]


class LimitTarget(Model):
    farm: str | None = None
    limit: LimitRef
    share: float = Field(1.0, gt=0, description="weight of the free remainder")

    @property
    def farm_id(self) -> str:
        """The farm as `Pool.targets` fills it in (a valid policy always names one)."""
        return self.farm or ""

    @property
    def key(self) -> tuple[str, str]:
        """(farm, limit): how a cycle finds this limit's state and its memory."""
        return (self.farm_id, self.limit)


class Selector(Model):
    queue: str | None = None
    name: Regex | None = None
    user: str | None = None


class JobOverride(Selector):
    max_workers: int | None = Field(None, ge=1, le=INT32_MAX)
    min_workers: int | None = Field(None, ge=1, le=INT32_MAX)
    weight: float | None = Field(None, gt=0)


class JobsPolicy(Model):
    policy: Literal["none", "fixed", "fair", "weighted"] = "none"
    cap: int | None = Field(None, ge=1, le=INT32_MAX, description="the cap for policy: fixed")
    min_workers: int = Field(1, ge=1, le=INT32_MAX)
    weight_by: Literal["priority", "queue"] = "priority"
    queue_weights: dict[str, Annotated[float, Field(gt=0)]] = {}
    slack: int = Field(
        0,
        ge=0,
        le=INT32_MAX,
        description="policy fair or weighted: a job's cap is rewritten only when its share "
        "leaves the band from the cap less this to the cap; a job may run up to this many "
        "tasks above its share (the limit still bounds the pool)",
    )
    respect_manual: bool = True
    exempt: list[Selector] = []
    overrides: list[JobOverride] = []

    @model_validator(mode="after")
    def _fixed_needs_cap(self) -> JobsPolicy:
        if self.policy == "fixed" and self.cap is None:
            raise ValueError("policy 'fixed' needs 'cap'")
        return self


class Pool(Model):
    farm: str | None = Field(None, description="farm id (when the policy has several farms)")
    limit: LimitRef | None = Field(
        None, description="limitId, amountRequirementName or displayName"
    )
    limits: list[LimitTarget] = Field([], description="several limits sharing this pool")
    features: Annotated[list[FeatureRef], Field(min_length=1)]
    uncounted: int | None = Field(
        None, ge=0, le=INT32_MAX, description="total assumed for uncounted features"
    )
    farm_selector: FarmSelector | None = None
    reserve: Annotated[
        Reserve, BeforeValidator(_reserve, json_schema_input_type=Reserve | Amount)
    ] = Reserve()
    headroom: int = Field(0, ge=0, le=INT32_MAX)
    floor: int = Field(1, ge=1, le=INT32_MAX, description="never below this (Deadline rejects 0)")
    ceiling: int | None = Field(None, ge=1, le=INT32_MAX)
    hysteresis: Hysteresis = Hysteresis()
    on_stale: Literal["hold", "floor"] = "hold"
    stale_after: StaleAfter = 600.0
    on_exhausted: Literal["pause", "hold_one"] = "pause"
    preempt: Preempt = Preempt()
    jobs: JobsPolicy = JobsPolicy()

    def targets(self, default_farm: str | None) -> list[LimitTarget]:
        if self.limits:
            return [
                t if t.farm else t.model_copy(update={"farm": self.farm or default_farm})
                for t in self.limits
            ]
        assert self.limit is not None
        return [LimitTarget(farm=self.farm or default_farm, limit=self.limit)]

    @model_validator(mode="after")
    def _one_limit_form(self) -> Pool:
        if (self.limit is None) == (not self.limits):
            raise ValueError("give either 'limit' or 'limits' (a list), not both or neither")
        return self


MIN_WRITE_SECONDS = 1.0  # a write to Deadline with less than this left on the lease waits


class LeaseConfig(Model):
    """The writer's lease (docs/design.md, "Two replicas")."""

    duration: Annotated[Duration, Field(ge=2, le=600)] = Field(
        30.0, description="how long a lease not renewed stays its holder's, e.g. 30s"
    )
    heartbeat: Annotated[Duration, Field(gt=0, le=200)] = Field(
        5.0, description="how often the holder renews it, and a waiting replica looks"
    )
    margin: Annotated[Duration, Field(ge=0, le=300)] = Field(
        5.0, description="a write to Deadline is cut this long before the lease could pass"
    )

    @model_validator(mode="after")
    def _renewed_in_time(self) -> LeaseConfig:
        if self.heartbeat * 3 > self.duration:
            raise ValueError(
                f"heartbeat {self.heartbeat:g}s is over a third of the duration "
                f"{self.duration:g}s: one slow renewal would lose the lease"
            )
        if self.duration - self.heartbeat - self.margin < MIN_WRITE_SECONDS:
            raise ValueError(
                f"duration {self.duration:g}s less heartbeat and margin leaves under "
                f"{MIN_WRITE_SECONDS:g}s to send a write in: none would be sent"
            )
        return self


class StateConfig(Model):
    """Where the durable memory lives: the originals, the paused queues, the jobs left
    alone. `sqlite`: in the history file; `dynamodb`: in a table, shared by replicas."""

    store: Literal["sqlite", "dynamodb"] = Field(
        "sqlite", description="sqlite (in the history, one replica) or dynamodb (replicas)"
    )
    table: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]{3,255}$", description="the DynamoDB table"
    )
    region: str | None = Field(
        None, description="the table's AWS region; default the environment's"
    )
    lease: LeaseConfig = LeaseConfig()

    @model_validator(mode="after")
    def _a_table_for_dynamodb(self) -> StateConfig:
        if self.store == "dynamodb" and self.table is None:
            raise ValueError("state: {store: dynamodb} needs `table:`, the DynamoDB table")
        return self


class Policy(Model):
    interval: Interval = Field(60.0, description="seconds between cycles, e.g. 60s (1s to 1h)")
    history: HistoryConfig = HistoryConfig()
    state: StateConfig = StateConfig()
    metrics: MetricsConfig = MetricsConfig()
    farms: list[FarmConfig] = Field(
        [], description="the Deadline farms; none: a license exporter only, no AWS"
    )
    sources: dict[str, SourceConfig]
    pools: dict[str, Pool] = Field(
        {}, description="license pools and the limits they set; none: a license exporter only"
    )

    @property
    def exporter_only(self) -> bool:
        """No pools: the license metrics alone, no Deadline client (docs/operations.md)."""
        return not self.pools

    def farm(self, farm_id: str) -> FarmConfig:
        if (f := self.find_farm(farm_id)) is None:
            raise KeyError(f"farm {farm_id} is not in the policy")
        return f

    def find_farm(self, farm_id: str) -> FarmConfig | None:
        return next((f for f in self.farms if f.id == farm_id), None)

    @property
    def default_farm(self) -> str | None:
        return self.farms[0].id if len(self.farms) == 1 else None


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "license-sync policy"
    return schema
