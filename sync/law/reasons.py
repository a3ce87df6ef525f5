"""Reasons into words: the one place `plan`, `explain`, `history`, the logs, the demo and
`replay` take their text from. A reason is data (`domain.Reason`); this renders it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sync.values.domain import Reason


def count(v: Any) -> str:
    """A maxCount or cap as people read it: -1 is unlimited, None is nothing."""
    return "unlimited" if v == -1 else "—" if v is None else str(v)


def duration(seconds: float) -> str:
    """How long, the way the policy spells durations: `600` → `10m`, `90` → `90s`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _since(r: Reason) -> str:
    age = r["age"]
    return "never read" if age is None else f"last good {duration(int(age))} ago"


_TEXT: dict[str, Callable[[Reason], str]] = {
    # a limit's maxCount
    "at_target": lambda r: f"maxCount {count(r['current'])} is already the target",
    "decrease": lambda r: f"decrease {count(r['current'])} → {count(r['target'])} applied at once",
    "decrease_in_deadband": lambda r: (
        f"decrease {r['current']} → {r['target']} is within the deadband {r['deadband']}; kept"
    ),
    "increase_in_deadband": lambda r: (
        f"increase {r['current']} → {r['target']} is within the deadband {r['deadband']}; kept"
    ),
    "increase_waits": lambda r: (
        f"increase {r['current']} → {count(r['target'])} waits: wanted "
        f"{r['wanted']:.0f}s of the {r['settle']:.0f}s it settles"
    ),
    "increase_paced": lambda r: (
        f"increase {r['current']} → {count(r['target'])} waits: at most +{r['max_step']} "
        f"every {r['interval']:g}s"
    ),
    "increase_limited": lambda r: (
        f"increase {r['current']} → {count(r['target'])} limited to +{r['max_step']} "
        f"this cycle: {r['current'] + r['max_step']}"
    ),
    "increase": lambda r: (
        f"increase {r['current']} → {count(r['target'])} after {r['wanted']:.0f}s wanted"
    ),
    "exhausted": lambda r: (
        f"licenses exhausted (raw target {r['raw']:g} < 1): "
        + ("queues paused" if r["action"] == "pause" else "held at 1")
    ),
    "pausing": lambda r: f"pausing {r['queues']} queue association(s)",
    "preempting": lambda r: (
        f"artists refused or about to be ({r['queued']} queued, {r['free']} free, reserve "
        f"{r['reserve']}): requeueing the farm's {r['tasks']} youngest task(s)"
    ),
    "queues_taken": lambda r: (
        f"queue(s) {r['queues']} written by someone else since we paused them: theirs to reopen"
    ),
    "resuming": lambda r: f"licenses back: resuming {r['queues']} queue association(s)",
    # a source or limit that could not be read
    "source_not_read": lambda r: f"source {r['source']!r} was not read",
    "source_down": lambda r: f"source {r['source']!r} down: {r['error']}",
    "feature_missing": lambda r: f"feature {r['feature']!r} not in source {r['source']!r}",
    "feature_error": lambda r: f"feature {r['feature']!r}: {r['error']}",
    "holding": lambda r: (
        f"{_since(r)}: holding maxCount {count(r['current'])} "
        + (
            "(at or below floor)"
            if r["stale"]
            else f"until stale after {duration(r['stale_after'])}"
        )
    ),
    "to_floor": lambda r: (
        f"{_since(r)}, stale after {duration(r['stale_after'])}: falling to floor {r['floor']}"
    ),
    "external_held": lambda r: (
        f"external use read {r['read']}, counted as {r['held']} until a second read shows it "
        "(the farm's use is currentCount, which Deadline updates late)"
    ),
    "limit_unreadable": lambda r: r["error"],
    "nothing_written": lambda r: "nothing written",
    # a job's maxWorkerCount
    "exempt": lambda r: "exempt by the policy",
    "fixed_cap": lambda r: f"fixed cap {r['cap']}",
    "unlimited_limit": lambda r: "the limit is unlimited",
    "share": lambda r: (
        f"{r['policy']}: {r['units']} of {r['capacity']} units for demand "
        f"{r['tasks'] * r['per_task']} ({r['tasks']} tasks × {r['per_task']}), "
        f"weight {r['weight']:g}"
    ),
    "own_ceiling": lambda r: f"held at the job's own maxWorkerCount {r['ceiling']}",
    "unlicensed_tasks": lambda r: (
        f"plus {r['tasks']} active task(s) of steps that need no license of the pool"
    ),
    "job_gone": lambda r: "gone",
    "job_taken_over": lambda r: (
        "changed by someone else"
        + (f" ({r['value']})" if r["value"] is not None else "")
        + "; left alone"
    ),
    "job_archived": lambda r: "archived: Deadline takes no write to it",
    "job_already_original": lambda r: f"already {r['original']}",
    "job_released": lambda r: "no longer needs the pool",
    "preempted": lambda r: (
        f"task {r['task']} requeued after {duration(r['ran'])} to give back {r['units']} license(s)"
    ),
}


def text(why: Iterable[Reason]) -> str:
    """The reason parts of one decision, in words, joined as one sentence."""
    return "; ".join(_TEXT[r.kind](r) for r in why)


def data(why: Iterable[Reason]) -> list[dict[str, Any]]:
    """The reason parts as JSON-ready data, for the history and `replay`."""
    return [r.as_dict() for r in why]
