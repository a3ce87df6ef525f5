"""`license-sync simulate`: a day of artists and farm jobs sharing one license pool,
run under several strategies on the same seeded world (a discrete-time simulation).

The world: artists check licenses out and in on a daily curve; jobs arrive with tasks
that check a license out `checkout_delay` after they start (the check-to-checkout race:
a task that finds no license then fails, a *denial*, and is retried); Deadline starts a
task only while the limit's running tasks are below its maxCount, and reports
currentCount `count_delay` late; the sync polls every `interval` and sees the license
server `tool_latency` late.

Strategies: `static` (a hand-set limit), `naive` (maxCount = total − in_use +
currentCount at every poll), `license-sync` (the real control law with the
scenario's policy), `license-sync-denials` (the same, also reading the server's log: an
artist's refusal counts as a license wanted and starts a cycle `log_latency` later), each
with preemption too, and the two oracles (the bounds).

scenario.py holds what a scenario file says, world.py the day it describes, strategies.py
who sets maxCount and how, report.py the tables and the plot.
"""

STRATEGIES = (
    "static",
    "naive",
    "license-sync",
    "license-sync-preempt",
    "license-sync-denials",
    "license-sync-denials-preempt",
    "causal-oracle",
    "oracle",
)
