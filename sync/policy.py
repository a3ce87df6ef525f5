"""The policy: YAML → pydantic v2 models, with every error as `file:line:col: message`."""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sync.errors import PolicyError

M = TypeVar("M", bound=BaseModel)

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
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"{value!r} is not a valid regular expression: {e}") from e
    if re.search(r"\([^)]*[+*][^)]*\)[+*{]", value):
        # nested quantifiers like (a+)+ backtrack catastrophically on a long host name
        raise ValueError(f"{value!r} nests quantifiers (e.g. (a+)+); simplify it")
    return value


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


class MetricsConfig(Model):
    address: str = Field("0.0.0.0:9462", description="host:port for /metrics, /healthz, /readyz")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        _, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{v!r} is not host:port (e.g. 0.0.0.0:9462)")
        return v


class FarmConfig(Model):
    id: str = Field(pattern=r"^farm-[0-9a-f]{32}$", description="Deadline farm id")
    region: str | None = Field(None, description="AWS region; default from the environment")
    read_threads: int = Field(
        8, ge=1, le=32, description="reads of this farm's jobs and steps in flight at once"
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


class FlexlmSourceConfig(Model):
    kind: Literal["flexlm"]
    servers: Annotated[list[ServerSpec], Field(min_length=1)]
    executable: Executable = "lmutil"
    timeout: ToolTimeout = 20.0


class RlmSourceConfig(Model):
    kind: Literal["rlm"]
    servers: Annotated[list[ServerSpec], Field(min_length=1)]
    executable: Executable = "rlmutil"
    timeout: ToolTimeout = 20.0


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
    features: dict[str, Annotated[int, Field(ge=0)]]


SourceConfig = Annotated[
    FlexlmSourceConfig | RlmSourceConfig | CommandSourceConfig | StaticSourceConfig,
    Field(discriminator="kind"),
]


class FeatureRef(Model):
    source: str
    feature: str
    vendor: str | None = None


class FarmSelector(Model):
    """Which checkouts are the farm's own: a host or user matching any regex."""

    hosts: list[Regex] = []
    users: list[Regex] = []


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _amount(v: Any) -> int | str:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a number or percentage")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"{v!r} must not be negative")
        return v
    if isinstance(v, str) and (m := _PERCENT.match(v)):
        if float(m.group(1)) >= 100:
            raise ValueError(f"{v!r} keeps every license back: a percentage is below 100%")
        return v.strip()
    raise ValueError(f"{v!r} is not a count or a percentage like '10%'")


Percent = Annotated[str, Field(pattern=_PERCENT.pattern)]
Count = Annotated[int, Field(ge=0)]
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
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    return time(h1 % 24, m1), end


def _tz(v: str) -> str:
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
    min: int = Field(0, ge=0)
    max: int | None = Field(None, ge=0)
    samples: int = Field(6, ge=1, description="observations an hour needs before it is used")
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


class Hysteresis(Model):
    deadband: int = Field(1, ge=1, description="changes smaller than this are skipped")
    settle: int = Field(2, ge=1, description="cycles an increase must hold before it applies")
    max_step: int | None = Field(None, ge=1, description="largest increase per cycle")


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


class Selector(Model):
    queue: str | None = None
    name: Regex | None = None
    user: str | None = None


class JobOverride(Selector):
    max_workers: int | None = Field(None, ge=1)
    min_workers: int | None = Field(None, ge=1)
    weight: float | None = Field(None, gt=0)


class JobsPolicy(Model):
    policy: Literal["none", "fixed", "fair", "weighted"] = "none"
    cap: int | None = Field(None, ge=1, description="the cap for policy: fixed")
    min_workers: int = Field(1, ge=1)
    weight_by: Literal["priority", "queue"] = "priority"
    queue_weights: dict[str, Annotated[float, Field(gt=0)]] = {}
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
    uncounted: int | None = Field(None, ge=0, description="total assumed for uncounted features")
    farm_selector: FarmSelector | None = None
    reserve: Annotated[
        Reserve, BeforeValidator(_reserve, json_schema_input_type=Reserve | Amount)
    ] = Reserve()
    headroom: int = Field(0, ge=0)
    floor: int = Field(1, ge=1, description="never below this (Deadline rejects 0)")
    ceiling: int | None = Field(None, ge=1)
    hysteresis: Hysteresis = Hysteresis()
    on_stale: Literal["hold", "floor"] = "hold"
    stale_after: StaleAfter = 600.0
    on_exhausted: Literal["pause", "hold_one"] = "hold_one"
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


class Policy(Model):
    interval: Interval = Field(60.0, description="seconds between cycles, e.g. 60s (1s to 1h)")
    history: HistoryConfig = HistoryConfig()
    metrics: MetricsConfig = MetricsConfig()
    farms: Annotated[list[FarmConfig], Field(min_length=1)]
    sources: dict[str, SourceConfig]
    pools: dict[str, Pool]

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if v < 1:
            raise ValueError(f"interval {v:g}s is too short (at least 1s)")
        return v

    def farm(self, farm_id: str) -> FarmConfig:
        if (f := self.find_farm(farm_id)) is None:
            raise KeyError(f"farm {farm_id} is not in the policy")
        return f

    def find_farm(self, farm_id: str) -> FarmConfig | None:
        return next((f for f in self.farms if f.id == farm_id), None)

    @property
    def default_farm(self) -> str | None:
        return self.farms[0].id if len(self.farms) == 1 else None


# -- loading with positions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PolicyErrors(PolicyError):
    """One or more problems in a policy file."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: str
    sha: str
    notes: tuple[Problem, ...] = ()  # valid, but worth saying how it reads (`validate`)


# Aliases may repeat a list, not multiply it a million-fold (a 340-byte alias bomb took
# 7 s and 1.4 GB before this check): what they add beyond the values written out is
# bounded, never the size of a plain policy (10,000 pools are written out, not a bomb).
MAX_NODES = 100_000


# libyaml's parser where PyYAML was built with it (its wheels are): a 10,000-pool policy
# is read in a second instead of fifteen
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _alias_growth(node: yaml.Node) -> int:
    """How many values aliases add to `node` once expanded."""
    return _expanded_size(node, {}) - _written(node)


def _written(node: yaml.Node) -> int:
    """The values written out in the text: each node once, however often aliased."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            stack += [x for kv in n.value for x in kv]
        elif isinstance(n, yaml.SequenceNode):
            stack += n.value
    return len(seen)


def _expanded_size(node: yaml.Node, memo: dict[int, int], bound: int = 1 << 62) -> int:
    """How many values `node` stands for once every alias is expanded (linear: memoized;
    counting stops past `bound`)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = bound + 1  # a node inside itself would expand forever
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, memo, bound) + _expanded_size(v, memo, bound) for k, v in node.value
        )
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(v, memo, bound) for v in node.value)
    memo[key] = min(size, bound + 1)
    return memo[key]


def _positions(
    node: yaml.Node,
    path: tuple[Any, ...],
    out: dict[tuple[Any, ...], tuple[int, int]],
    keys: dict[tuple[Any, ...], tuple[int, int]],
) -> None:
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            keys[(*path, key)] = (k.start_mark.line + 1, k.start_mark.column + 1)
            _positions(v, (*path, key), out, keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _positions(v, (*path, i), out, keys)


def _fields_at(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    """The keys allowed where `loc` points, walking the models' annotations."""
    from typing import Union, get_args, get_origin

    ann: Any = root
    for part in loc:
        while get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        origin = get_origin(ann)
        if origin in (dict, list):
            ann = get_args(ann)[-1]
            continue
        if origin in (Union, UnionType):
            models = [a for a in get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = next((m for m in models if part in m.model_fields), models[0] if models else None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        field = ann.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if get_origin(ann) in (Union, UnionType):
        return sorted(
            {
                f
                for a in get_args(ann)
                if isinstance(a, type) and issubclass(a, BaseModel)
                for f in a.model_fields
            }
        )
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return list(ann.model_fields)
    return []


def _friendly(err: dict[str, Any], loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    kind = err["type"]
    top = "policy" if root is Policy else root.__name__.lower()
    where = ".".join(str(p) for p in loc) or top
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _fields_at(loc[:-1], root)
        hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        did = (
            f"; did you mean {hint[0]!r}?"
            if hint
            else (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        )
        return f"unknown key {key!r} in {'.'.join(str(p) for p in loc[:-1]) or top}{did}"
    if kind == "missing":
        return f"{where}: required key missing"
    if kind == "union_tag_invalid":
        kind = err.get("input", {}).get("kind")
        return f"{where}: kind {kind!r} is not one of flexlm, rlm, command, static"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    if repr(value) in msg:
        shown = ""
    return f"{where}: {msg}{shown}"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts the union tag (e.g. 'flexlm') and validator names into loc
    out = []
    for p in loc:
        if isinstance(p, str) and (
            p in ("flexlm", "rlm", "command", "static") or p.startswith("function-")
        ):
            continue
        out.append(p)
    return tuple(out)


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read, parse and validate a policy file; `PolicyErrors` lists every problem found."""
    return parse_policy(read_policy_text(path), str(path))


def read_policy_text(path: str | Path) -> str:
    """The policy file's text; `PolicyErrors` when it cannot be read."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PolicyErrors(
            [Problem(str(path), 1, 1, f"cannot read the policy: {e.strerror}")]
        ) from e
    return raw.decode("utf-8", errors="replace")


def policy_sha(text: str) -> str:
    """The short hash that names a policy's text in logs, metrics and the history."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_policy(text: str, name: str = "<policy>") -> LoadedPolicy:
    sha = policy_sha(text)
    what = "the policy must be a YAML mapping (farms:, sources:, pools:)"
    policy, at = parse_model(text, name, Policy, what)
    problems = sorted(
        (Problem(name, *at(loc), msg) for loc, msg in cross_check(policy)),
        key=lambda p: (p.line, p.col),
    )
    if problems:
        raise PolicyErrors(problems)
    notes = tuple(Problem(name, *at(loc), f"note: {msg}") for loc, msg in explain_notes(policy))
    return LoadedPolicy(policy, name, sha, notes)


Locate = Callable[[tuple[Any, ...]], tuple[int, int]]


def parse_model(text: str, name: str, model: type[M], what: str) -> tuple[M, Locate]:
    """YAML text into `model`, every problem as file:line:col (`PolicyErrors`); also a
    function that gives the line and column of a path in the text."""
    try:
        node, data = _load_yaml(text, name, what)
        values: dict[tuple[Any, ...], tuple[int, int]] = {}
        keys: dict[tuple[Any, ...], tuple[int, int]] = {}
        _positions(node, (), values, keys)
    except RecursionError:  # the YAML reader and our walk recurse per level
        raise PolicyError(f"{name}: nested too deep to be a policy") from None

    def at(loc: tuple[Any, ...], key: bool = False) -> tuple[int, int]:
        if key and loc in keys:
            return keys[loc]
        while loc and loc not in values:
            loc = loc[:-1]
        return values.get(loc, (1, 1))

    try:
        return model.model_validate(data), at
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = _clean_loc(tuple(err["loc"]))
            line, col = at(loc, key=err["type"] in ("extra_forbidden",))
            problems.append(Problem(name, line, col, _friendly(dict(err), loc, model)))
        raise PolicyErrors(sorted(set(problems), key=lambda p: (p.line, p.col))) from e


def _load_yaml(text: str, name: str, what: str) -> tuple[yaml.Node, dict[str, Any]]:
    """The YAML's node tree and data: never an alias bomb, a duplicate key or a non-mapping."""
    try:
        node = yaml.compose(text, Loader=LOADER)
        # aliases share nodes: size them before anything walks the expanded tree
        # (no alias without a `*`: a plain policy, however large, is not walked twice)
        bomb = node is not None and "*" in text and _alias_growth(node) > MAX_NODES
        data = {} if bomb or node is None else LOADER("").construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = str(e.problem or e)
        lines = text.splitlines()
        where = lines[line - 1] if 0 < line <= len(lines) else ""
        if "'\\t'" in problem or "\t" in problem or "\t" in where[: col + 1]:
            problem += " (indent with spaces: YAML does not take tabs)"
        raise PolicyErrors([Problem(name, line, col, f"YAML: {problem}")]) from e
    except yaml.YAMLError as e:
        raise PolicyErrors([Problem(name, 1, 1, f"YAML: {e}")]) from e
    if bomb:
        raise PolicyErrors(
            [Problem(name, 1, 1, f"YAML: aliases add more than {MAX_NODES} values to this "
                     "policy; a policy needs nowhere near that many (an alias bomb?)")]
        )  # fmt: skip
    if node is None or not isinstance(data, dict):
        raise PolicyErrors([Problem(name, 1, 1, what)])
    duplicates = _duplicate_keys(node, name, set())
    if duplicates:
        raise PolicyErrors(duplicates)
    return node, data


def _duplicate_keys(node: yaml.Node, name: str, seen: set[int]) -> list[Problem]:
    """A key given twice in one mapping: YAML keeps the last silently, a policy must not
    (a second `nuke:` pool would replace the first)."""
    if id(node) in seen:
        return []
    seen.add(id(node))
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in first:
                    out.append(
                        Problem(
                            name, line, key.start_mark.column + 1,
                            f"duplicate key {key.value!r} (first at line {first[key.value]}): "
                            "give it once",
                        )
                    )  # fmt: skip
                first.setdefault(key.value, line)
            out += _duplicate_keys(value, name, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out += _duplicate_keys(item, name, seen)
    return out


def _reserve_above_total(
    name: str, pool: Pool, sources: dict[str, Any]
) -> list[tuple[tuple[Any, ...], str]]:
    """A count reserve at or above a total the policy itself states (static sources)."""
    cfgs = [sources.get(ref.source) for ref in pool.features]
    static = [c for c in cfgs if isinstance(c, StaticSourceConfig)]
    if len(static) < len(cfgs):
        return []
    total = sum(c.features.get(r.feature, 0) for c, r in zip(static, pool.features, strict=True))
    counts = [("default",), *(("schedule", i, "value") for i in range(len(pool.reserve.schedule)))]
    values = [pool.reserve.default, *(w.value for w in pool.reserve.schedule)]
    return [
        (
            ("pools", name, "reserve", *where),
            f"pool {name!r}: reserve {value} is at or above the pool's total {total}: "
            "the farm would never get a license",
        )
        for where, value in zip(counts, values, strict=True)
        if isinstance(value, int) and value >= total > 0
    ]


def cross_check(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    """Checks that span sections: what one model cannot see on its own."""
    out: list[tuple[tuple[Any, ...], str]] = []
    farm_ids = [f.id for f in policy.farms]
    for i, f in enumerate(policy.farms):
        if farm_ids.index(f.id) != i:
            out.append((("farms", i, "id"), f"farm {f.id!r} is listed twice"))
    owner: dict[tuple[str | None, str], str] = {}
    for name, pool in policy.pools.items():
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
        out += _reserve_above_total(name, pool, policy.sources)
        if pool.ceiling is not None and pool.floor > pool.ceiling:
            out.append(
                (
                    ("pools", name, "floor"),
                    f"pool {name!r}: floor {pool.floor} is above ceiling {pool.ceiling}",
                )
            )
        targets = pool.targets(policy.default_farm)
        for k, t in enumerate(targets):
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


def explain_notes(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    """What a valid policy means where it may not read as meant: hour ranges that wrap
    midnight belong to the day they start on; a pool without a farm_selector counts the
    farm's use from the delayed currentCount."""
    out: list[tuple[tuple[Any, ...], str]] = []
    for name, pool in policy.pools.items():
        sel = pool.farm_selector
        if sel is None or not (sel.hosts or sel.users):
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


def json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "license-sync policy"
    return schema
