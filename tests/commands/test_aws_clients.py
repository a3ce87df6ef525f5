"""AWS's own `deadline` CLI against the fake farm, as a TD points it at the demo: it lists
farms and queues, submits a job bundle the project ships, and the running service shares
the job it made (docs/cli.md, "AWS's clients against the demo")."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from sync.commands.demo import clients_banner
from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.world import BUNDLES
from tests.support.jobs import cycle, jobs_world, mwc

pytest.importorskip("deadline", reason="AWS's deadline client: pip install '.[test]'")


@pytest.fixture
def ticking(sim):
    """The farm's clock runs on its own, as the demo's does: CreateJob's steps appear
    `create_delay` after it answers, while the client waits for them."""
    sim.farm.create_delay = timedelta(seconds=1)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.1):
            sim.farm.tick(datetime.now(UTC))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield sim
    stop.set()
    thread.join()


@pytest.fixture
def world(sim, tmp_path):
    return jobs_world(sim, tmp_path)


def deadline_cli(sim: FakeDeadline, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    """`deadline ARGS` in a process of its own, with the environment the demo's banner
    prints and nothing of the user's configuration."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DEADLINE_CONFIG_FILE_PATH": str(tmp_path / "deadline.ini"),
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for line in clients_banner(sim.url, "f", "q").splitlines():
        if line.strip().startswith("export "):
            env.update(kv.split("=", 1) for kv in line.split()[1:])
    return subprocess.run(
        [sys.executable, "-m", "deadline", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deadline_cli_lists_submits_and_the_service_shares_its_job(world, ticking, tmp_path):
    w = world
    farm: FakeFarm = w.farm
    ids = ("--farm-id", farm.farm_id)
    listed = deadline_cli(w.sim, tmp_path, "farm", "list")
    assert listed.returncode == 0, listed.stderr
    assert farm.farm_id in listed.stdout
    queues = deadline_cli(w.sim, tmp_path, "queue", "list", *ids)
    assert queues.returncode == 0 and w.queue in queues.stdout, queues.stderr
    got = deadline_cli(w.sim, tmp_path, "queue", "get", *ids, "--queue-id", w.queue)
    assert got.returncode == 0 and "status:" in got.stdout, got.stderr
    other = farm.add_job(w.queue, "other", tasks=40, amount="amount.nuke")
    cycle(w)  # the service runs before the bundle comes
    bundle = str(BUNDLES / "nuke_comp")
    submit = ("bundle", "submit", bundle, *ids, "--queue-id", w.queue, "--yes")
    sent = deadline_cli(w.sim, tmp_path, *submit)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    job_id = next(j for j in farm.jobs if j in sent.stdout)
    assert farm.jobs[job_id].lifecycle_status == "CREATE_COMPLETE"  # the client waited
    assert farm.jobs[job_id].steps[0].amounts == [("amount.nuke", 1)]
    jobs = deadline_cli(w.sim, tmp_path, "job", "list", *ids, "--queue-id", w.queue)
    assert jobs.returncode == 0 and job_id in jobs.stdout, jobs.stderr
    for _ in range(2):  # within two cycles of its steps existing
        cycle(w)
    assert (mwc(w, other), mwc(w, job_id)) == (5, 5)
    fleets = deadline_cli(w.sim, tmp_path, "fleet", "list", *ids)
    fleet = farm.default_fleet
    assert fleets.returncode == 0 and fleet in fleets.stdout, fleets.stderr
    workers = deadline_cli(w.sim, tmp_path, "worker", "list", *ids, "--fleet-id", fleet)
    assert workers.returncode == 0, workers.stderr
    first = farm.fleets[fleet].workers[0]
    assert first.worker_id in workers.stdout and f"of {len(farm.fleets[fleet].workers)} " in (
        workers.stdout
    )


def test_the_demo_bundles_are_templates_the_fake_accepts(sim):
    """Every bundle the project ships makes a job through CreateJob."""
    q = sim.farm.add_queue()
    for bundle in sorted(BUNDLES.iterdir()):
        p = {"farmId": sim.farm.farm_id, "queueId": q, "priority": 50, "templateType": "YAML"}
        made = sim.farm.call("CreateJob", {**p, "template": (bundle / "template.yaml").read_text()})
        assert sim.farm.jobs[made["jobId"]].steps, bundle.name
