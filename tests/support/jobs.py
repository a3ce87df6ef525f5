"""The world of the job-sharing tests: one pool sharing a limit between jobs, its service
run in process against the fake Deadline over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync.cycle.service import Service
from sync.edges.deadline import Deadline, make_client
from sync.edges.history import History
from sync.edges.metrics import Metrics
from sync.policy import load_policy
from tests.support.fakes import Clock, FakeSource
from tests.support.policy import RENDER_HOSTS, policy, pool, write_policy


def jobs_policy(path: Path, farm: str, history: Path, **jobs: Any) -> Path:
    """The job-sharing pool: `fair` sharing between jobs, at least one worker each, manual
    caps respected; `jobs` changes any of these."""
    sharing = {"policy": "fair", "min_workers": 1, "respect_manual": True, **jobs}
    nuke = pool(farm_selector=RENDER_HOSTS, jobs=sharing)
    return write_policy(
        path, {"interval": "60s", **policy(farm, history=history, pools={"nuke": nuke})}
    )


class W:
    pass


def jobs_world(sim, tmp_path):
    """A farm of two queues, one associated with a limit of 10, a service sharing it
    between jobs (`fair`), a fake source of 10 licenses and a clock the test moves."""
    w = W()
    w.sim, w.farm = sim, sim.farm
    w.queue = w.farm.add_queue()
    w.other_queue = w.farm.add_queue()  # not associated with the limit
    w.limit = w.farm.add_limit("amount.nuke", 10)
    w.farm.associate(w.queue, w.limit)
    w.src = FakeSource("lic", total=10)
    w.policy = tmp_path / "policy.yaml"
    w.db = tmp_path / "h.db"
    jobs_policy(w.policy, w.farm.farm_id, w.db)
    w.clock = Clock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    w.metrics = Metrics()
    w.client_options = {}
    w.make = lambda: Service(
        load_policy(w.policy),
        deadline_factory=lambda f: Deadline(
            make_client("us-west-2", sim.url, **w.client_options),
            f.id,
            on_call=w.metrics.count_call,
        ),
        metrics=w.metrics,
        history=History(str(w.db)),
        clock=w.clock,
        source_factory=lambda name, cfg: w.src,
        policy_quiet=0,  # edits here are whole: reload them at once
    )
    w.svc = w.make()
    return w


def cycle(w):
    w.clock.advance(60)
    return w.svc.run_cycle()


def mwc(w, job_id):
    return w.farm.jobs[job_id].max_worker_count
