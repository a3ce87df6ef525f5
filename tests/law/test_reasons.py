"""The words of every reason, as `plan`, `explain`, `history` and the logs print them.

A reason is data; these sentences are what a wrangler reads in `explain` and what
docs/operations.md quotes, so each kind's wording is pinned here, one row a kind."""

import pytest

from sync.law.reasons import count, data, duration, text
from sync.values.domain import Reason

R = Reason.of

SENTENCES = [
    (R("at_target", current=4), "maxCount 4 is already the target"),
    (R("decrease", current=-1, target=3), "decrease unlimited → 3 applied at once"),
    (
        R("decrease_in_deadband", current=5, target=4, deadband=1),
        "decrease 5 → 4 is within the deadband 1; kept",
    ),
    (
        R("increase_in_deadband", current=4, target=5, deadband=2),
        "increase 4 → 5 is within the deadband 2; kept",
    ),
    (
        R("increase_waits", current=3, target=8, wanted=30.4, settle=60.0),
        "increase 3 → 8 waits: wanted 30s of the 60s it settles",
    ),
    (
        R("increase_paced", current=3, target=12, max_step=4, interval=60.0),
        "increase 3 → 12 waits: at most +4 every 60s",
    ),
    (
        R("increase_limited", current=3, target=-1, max_step=2),
        "increase 3 → unlimited limited to +2 this cycle: 5",
    ),
    (R("increase", current=3, target=8, wanted=60.0), "increase 3 → 8 after 60s wanted"),
    (
        R("exhausted", raw=0.5, action="pause"),
        "licenses exhausted (raw target 0.5 < 1): queues paused",
    ),
    (
        R("exhausted", raw=-2.0, action="hold_one"),
        "licenses exhausted (raw target -2 < 1): held at 1",
    ),
    (R("pausing", queues=2), "pausing 2 queue association(s)"),
    (
        R("preempting", queued=1, free=0, reserve=2, tasks=3),
        "artists refused or about to be (1 queued, 0 free, reserve 2): "
        "requeueing the farm's 3 youngest task(s)",
    ),
    (
        R("queues_taken", queues="queue-1"),
        "queue(s) queue-1 written by someone else since we paused them: theirs to reopen",
    ),
    (R("resuming", queues=1), "licenses back: resuming 1 queue association(s)"),
    (R("source_not_read", source="flex"), "source 'flex' was not read"),
    (R("source_down", source="flex", error="timed out"), "source 'flex' down: timed out"),
    (R("feature_missing", feature="nuke", source="flex"), "feature 'nuke' not in source 'flex'"),
    (R("feature_error", feature="nuke", error="no total"), "feature 'nuke': no total"),
    (
        R("holding", age=120, current=6, stale=False, stale_after=600),
        "last good 2m ago: holding maxCount 6 until stale after 10m",
    ),
    (
        R("holding", age=None, current=-1, stale=True, stale_after=600),
        "never read: holding maxCount unlimited (at or below floor)",
    ),
    (
        R("to_floor", age=900, stale_after=600, floor=0),
        "last good 15m ago, stale after 10m: falling to floor 0",
    ),
    (
        R("external_held", read=5, held=2),
        "external use read 5, counted as 2 until a second read shows it "
        "(the farm's use is currentCount, which Deadline updates late)",
    ),
    (R("limit_unreadable", error="AccessDenied on GetLimit"), "AccessDenied on GetLimit"),
    (R("nothing_written"), "nothing written"),
    (R("exempt"), "exempt by the policy"),
    (R("fixed_cap", cap=4), "fixed cap 4"),
    (R("unlimited_limit"), "the limit is unlimited"),
    (
        R("share", policy="fair", units=3, capacity=10, tasks=4, per_task=2, weight=1.5),
        "fair: 3 of 10 units for demand 8 (4 tasks × 2), weight 1.5",
    ),
    (R("own_ceiling", ceiling=2), "held at the job's own maxWorkerCount 2"),
    (
        R("unlicensed_tasks", tasks=3),
        "plus 3 active task(s) of steps that need no license of the pool",
    ),
    (R("job_gone"), "gone"),
    (R("job_taken_over", value=7), "changed by someone else (7); left alone"),
    (R("job_taken_over", value=None), "changed by someone else; left alone"),
    (R("job_archived"), "archived: Deadline takes no write to it"),
    (R("job_already_original", original=5), "already 5"),
    (R("job_released"), "no longer needs the pool"),
    (
        R("preempted", task="task-9", ran=90, units=1),
        "task task-9 requeued after 90s to give back 1 license(s)",
    ),
]


@pytest.mark.parametrize(("reason", "sentence"), SENTENCES, ids=lambda v: getattr(v, "kind", ""))
def test_each_reason_reads_as_documented(reason: Reason, sentence: str) -> None:
    assert text([reason]) == sentence


def test_the_parts_of_one_decision_read_as_one_sentence_and_keep_their_data() -> None:
    why = [R("pausing", queues=1), R("exhausted", raw=0.0, action="pause")]
    assert text(why) == (
        "pausing 1 queue association(s); licenses exhausted (raw target 0 < 1): queues paused"
    )
    assert data(why) == [
        {"kind": "pausing", "queues": 1},
        {"kind": "exhausted", "raw": 0.0, "action": "pause"},
    ]


@pytest.mark.parametrize(("value", "said"), [(-1, "unlimited"), (None, "—"), (0, "0"), (12, "12")])
def test_a_count_reads_unlimited_nothing_or_the_number(value: int | None, said: str) -> None:
    assert count(value) == said


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (90, "90s"),
        (3600, "1h"),
        (5400, "90m"),
        (86400, "1d"),
        (90000, "25h"),
        (1.5, "1.5s"),
    ],
)
def test_a_duration_reads_in_the_largest_whole_unit(seconds: float, said: str) -> None:
    assert duration(seconds) == said
