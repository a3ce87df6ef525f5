"""The few numbers the CLI's `--help` shows and the service uses, in one place that
imports nothing: `--help` must not pay for the scheduler, botocore or SQLite."""

STOP_GRACE = 7.0  # seconds a cycle in flight has to end after SIGTERM (docker stop: 10)
# the history's tables of what each cycle saw and did (`history --table`), each pruned
# after `history.keep` by its time column
CYCLE_TABLES = {
    "observations": "at",
    "decisions": "at",
    "errors": "at",
    "job_changes": "at",
    "denials": "at",
    "undeclared": "at",
    "cycles": "started",
}
