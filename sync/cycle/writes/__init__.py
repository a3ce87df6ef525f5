"""Each kind of write license-sync makes to Deadline, as one type (docs/development.md,
"A new Deadline write"). A write says what it overwrites (`original()`: what must be on
disk before it is sent, or `Nothing` and why), the call it makes, the words of its log
line and its `changes_total{kind}` label. `act.py` makes every kind the same way:
original → disk → send → count → log. The law says when to make one.

A write that does not say what it overwrites cannot be made: `original()` is abstract,
so mypy refuses to build such a class, and Python refuses at run time.
"""

from sync.cycle.writes.association import Pause, Resume
from sync.cycle.writes.base import JobRecords, Keep, LimitOriginal, Nothing, PausedQueues, Write
from sync.cycle.writes.job_caps import JobCaps, job_change_row
from sync.cycle.writes.limit import MaxCount
from sync.cycle.writes.requeue import TaskRequeue

WRITES: tuple[type[Write], ...] = (MaxCount, Pause, Resume, TaskRequeue, JobCaps)

__all__ = [
    "WRITES",
    "JobCaps",
    "JobRecords",
    "Keep",
    "LimitOriginal",
    "MaxCount",
    "Nothing",
    "Pause",
    "PausedQueues",
    "Resume",
    "TaskRequeue",
    "Write",
    "job_change_row",
]
