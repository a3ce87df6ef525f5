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
with preemption too, and the bounds: the oracle, clairvoyant, and causal ones that know
the present at once, from what no server allows down to what a real one does (`LEGENDS`).

scenario.py holds what a scenario file says, world.py the day it describes, strategies.py
who sets maxCount and how, report.py the tables and the plot.
"""

# each strategy in a line: what it knows, and what the license server allows it
LEGENDS = {
    "static": "a hand-set maxCount, never moved",
    "naive": "maxCount = total − in use + currentCount at every poll, nothing else",
    "license-sync": "the real control law with the scenario's policy, polling the server",
    "license-sync-preempt": "the same, requeueing the farm's youngest tasks for artists",
    "license-sync-denials": "the law also reading the server's log: a refusal starts a cycle",
    "license-sync-denials-preempt": "the same, with preemption",
    "causal-oracle": "knows the present at once and serves an artist at request time by "
    "taking a task's license back first: no license server allows that",
    "causal-refused": "knows the present at once; frees a license the instant the server "
    "refuses an artist, who gets it at their next try",
    "causal-h1": "as causal-refused, keeping one license free and re-freeing it the "
    "instant an artist takes it",
    "causal-h1-race": "as causal-h1, its tasks checking out `checkout_delay` after they "
    "start as real ones do: the bound a real server allows",
    "oracle": "knows every artist session of the day: bounds the farm's task-hours, not "
    "artist-minutes (its tasks are never requeued)",
}
STRATEGIES = tuple(LEGENDS)
# the strategies no controller can be: they bound what one can do
BOUNDS = frozenset({"causal-oracle", "causal-refused", "causal-h1", "causal-h1-race", "oracle"})
