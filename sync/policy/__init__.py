"""The policy: YAML → pydantic v2 models, with every error as `file:line:col: message`
(models.py: the fields; positions.py: reading YAML with positions; checks.py: across
fields)."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sync.policy.checks import (
    cross_check,
    explain_notes,
    policy_warnings,
    region_problems,
    region_warnings,
)
from sync.policy.models import (
    CommandSourceConfig,
    Duration,
    FarmConfig,
    FeatureRef,
    Hysteresis,
    JobsPolicy,
    LearnedReserve,
    LimitTarget,
    Policy,
    Pool,
    Selector,
    StateConfig,
    StaticSourceConfig,
    ToolSourceConfig,
    check_server_spec,
    json_schema,
    parse_days,
    parse_duration,
    parse_hours,
)
from sync.policy.positions import PolicyErrors, Problem, parse_model

__all__ = [
    "CommandSourceConfig",
    "Duration",
    "FarmConfig",
    "FeatureRef",
    "Hysteresis",
    "JobsPolicy",
    "LearnedReserve",
    "LimitTarget",
    "LoadedPolicy",
    "Policy",
    "PolicyErrors",
    "Pool",
    "Problem",
    "Selector",
    "StateConfig",
    "StaticSourceConfig",
    "ToolSourceConfig",
    "check_server_spec",
    "json_schema",
    "load_policy",
    "parse_days",
    "parse_duration",
    "parse_hours",
    "parse_model",
    "parse_policy",
    "policy_sha",
    "read_bounded",
    "read_policy_text",
]


# a policy is a few kilobytes; a file far past that is not the one meant, and reading it
# whole each cycle would hold the service's memory hostage (docs/operations.md, "Faults")
POLICY_MAX_BYTES = int(os.environ.get("LICENSE_SYNC_POLICY_MAX_BYTES", 1 << 20))


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: str
    sha: str
    notes: tuple[Problem, ...] = ()  # valid, but worth saying how it reads (`validate`)


def load_policy(path: str | Path, regions: dict[str, str] | None = None) -> LoadedPolicy:
    """Read, parse and validate a policy file; `PolicyErrors` lists every problem found.
    `regions`: the AWS regions a farm's `region:` must be one of (`validate`)."""
    return parse_policy(read_policy_text(path), str(path), regions)


def read_policy_text(path: str | Path) -> str:
    """The policy file's text; `PolicyErrors` when it cannot be read, is no regular file
    (a FIFO would block every cycle, a device never end) or is over POLICY_MAX_BYTES."""
    try:
        raw = read_bounded(path, POLICY_MAX_BYTES, "the policy")
    except ValueError as e:
        raise PolicyErrors([Problem(str(path), 1, 1, str(e))]) from e
    return raw.decode("utf-8", errors="replace")


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """A file a person named (a policy, a capture), read only if it is a regular file and
    not over `limit` bytes: a FIFO opens without blocking and is refused, as is a device
    (/dev/zero would never end). ValueError saying which."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise ValueError(f"cannot read {what}: {e.strerror}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(
                f"{what} is not a regular file (a FIFO, a device or a directory): give the "
                "path of a file"
            )
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (data := os.read(fd, min(left, 1 << 16))):
            chunks.append(data)
            left -= len(data)
    except OSError as e:
        raise ValueError(f"cannot read {what}: {e.strerror}") from e
    finally:
        os.close(fd)
    if left <= 0:
        raise ValueError(
            f"{what} is over {limit // 1024} KiB: this is likely not the file meant"
            + (" (LICENSE_SYNC_POLICY_MAX_BYTES raises the bound)" if what == "the policy" else "")
        )
    return b"".join(chunks)


def policy_sha(text: str) -> str:
    """The short hash that names a policy's text in logs, metrics and the history."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_policy(
    text: str, name: str = "<policy>", regions: dict[str, str] | None = None
) -> LoadedPolicy:
    sha = policy_sha(text)
    what = "the policy must be a YAML mapping (farms:, sources:, pools:)"
    policy, at = parse_model(text, name, Policy, what)
    found = cross_check(policy) + (region_problems(policy, regions) if regions else [])
    problems = sorted(
        (Problem(name, *at(loc), msg) for loc, msg in found),
        key=lambda p: (p.line, p.col),
    )
    if problems:
        raise PolicyErrors(problems)
    warnings = policy_warnings(policy) + (region_warnings(policy) if regions else [])
    notes = tuple(
        [Problem(name, *at(loc), f"warning: {msg}") for loc, msg in warnings]
        + [Problem(name, *at(loc), f"note: {msg}") for loc, msg in explain_notes(policy)]
    )
    return LoadedPolicy(policy, name, sha, notes)
