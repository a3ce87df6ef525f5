"""The service as a user runs it: `license-sync run` in a subprocess, the real boto3 client
against the simulated endpoint, a fake `lmutil` on PATH, /metrics over HTTP, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from tests.support.paths import FIXTURES as FIXTURES_DIR
from tests.support.policy import LIC, edit_policy, edit_source, pool, write_policy
from tests.support.policy import policy as policy_doc
from tests.support.process import (
    free_port,
    lm_env,
    metric,
    run_service,
    scrape,
    wait_for,
    write_atomic,
)


@pytest.fixture
def running(aws_env, tmp_path):
    farm = FakeFarm(count_delay=0)
    _, lid = farm.add_queue_with_limit("amount.nuke", 30)
    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    lic.set_artists("nuke_r", 2)
    status = tmp_path / "lmstat.txt"
    write_atomic(status, lic.lmstat())
    port = free_port()
    db = tmp_path / "history.db"
    policy = tmp_path / "policy.yaml"
    with FakeDeadline(farm) as server:
        source = {**LIC, "timeout": "10s"}
        nuke = pool(headroom=1, hysteresis={"settle": 1})
        doc = policy_doc(
            farm.farm_id, history=db, port=port, sources={"lic": source}, interval="1s"
        )
        write_policy(policy, {**doc, "pools": {"nuke": nuke}})
        proc = run_service(policy, lm_env(status, server.url))
        try:
            yield {
                "proc": proc,
                "port": port,
                "farm": farm,
                "limit": lid,
                "lic": lic,
                "status": status,
                "db": db,
                "policy": policy,
            }
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_service_end_to_end(running):
    r = running
    port, farm, lid = r["port"], r["farm"], r["limit"]
    text = wait_for(
        lambda: (
            (t := scrape(port))
            and metric(t, "license_sync_limit_max", pool="nuke") is not None
            and t
        ),
        what="first cycle",
    )
    # 20 total − 2 artists − 1 headroom
    wait_for(lambda: farm.limits[lid].max_count == 17, what="maxCount 17")
    assert metric(text, "license_sync_source_up", source="lic") == 1.0

    # an artist checks out 6 more licenses: the limit follows within two cycles
    before = metric(scrape(port), "license_sync_cycles_total", result="ok")
    r["lic"].set_artists("nuke_r", 8)
    write_atomic(r["status"], r["lic"].lmstat())
    wait_for(
        lambda: metric(scrape(port), "license_sync_limit_max", pool="nuke") == 11.0,
        what="maxCount 11 on /metrics",
    )
    assert farm.limits[lid].max_count == 11
    after = metric(scrape(port), "license_sync_cycles_total", result="ok")
    assert after - before <= 2 + 1  # the cycle in flight when the file changed, plus two
    text = scrape(port)
    assert metric(text, "license_sync_limit_max", pool="nuke") == 11.0
    assert metric(text, "license_sync_license_in_use_external", pool="nuke") == 8.0
    assert (
        metric(text, "license_sync_api_calls_total", operation="UpdateLimit", outcome="ok") == 2.0
    )

    # the history is in SQLite
    with sqlite3.connect(r["db"]) as db:
        rows = db.execute(
            "select current, new, reason from decisions where new is not null order by rowid"
        ).fetchall()
    assert [(c, n) for c, n, _ in rows] == [(30, 17), (17, 11)]
    assert "decrease 17 → 11" in rows[1][2]

    # SIGTERM: a clean exit
    r["proc"].send_signal(signal.SIGTERM)
    out, _ = r["proc"].communicate(timeout=30)
    assert r["proc"].returncode == 0, out
    assert "stopped cleanly" in out
    assert "Traceback" not in out


def test_bad_policy_edit_keeps_running(running):
    r = running
    farm, lid = r["farm"], r["limit"]
    wait_for(lambda: farm.limits[lid].max_count == 17, what="first write")
    r["policy"].write_text(r["policy"].read_text().replace("headroom: 1", "headroom: [1"))
    wait_for(
        lambda: (
            metric(scrape(r["port"]), "license_sync_policy_reloads_total", result="error") == 1.0
        ),
        what="reload error counted",
    )
    r["lic"].set_artists("nuke_r", 5)
    write_atomic(r["status"], r["lic"].lmstat())
    wait_for(lambda: farm.limits[lid].max_count == 14, what="still syncing")
    r["proc"].send_signal(signal.SIGINT)
    try:
        out, _ = r["proc"].communicate(timeout=30)
    except subprocess.TimeoutExpired:
        r["proc"].kill()
        out, _ = r["proc"].communicate()
        raise AssertionError(f"no exit after SIGINT:\n{out}") from None
    assert r["proc"].returncode == 0, out
    assert re.search(r"policy .* is invalid; keeping the last good policy", out)


def test_the_demo_says_when_an_edit_of_its_policy_is_taken(tmp_path):
    """A TD edits the demo's policy while it runs: one line says it was taken."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "demo", "--interval", "1", "--cycles", "6",
         "--address", f"127.0.0.1:{port}", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if " #1 " in line:  # the first cycle ran: edit the policy as a TD would
                policy = tmp_path / "policy.yaml"
                policy.write_text(policy.read_text().replace("headroom: 1", "headroom: 2", 1))
        proc.wait(30)
    finally:
        proc.kill()
    text = "".join(out)
    assert proc.returncode == 0, text
    assert text.count("policy reloaded: ") == 1, text


def test_the_demos_policy_never_reaches_aws_after_the_demo(tmp_path):
    """After Ctrl-C a user runs `restore` on the demo's policy, with no AWS credentials:
    it goes to the demo's loopback endpoint only (gone now: a clear error), never to AWS
    and never to the instance metadata for credentials."""
    port = free_port()
    demo = subprocess.run(
        [sys.executable, "-m", "sync", "demo", "--interval", "1", "--cycles", "1",
         "--address", f"127.0.0.1:{port}", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    with socket.socket() as imds:  # an instance metadata service that notes every caller
        imds.bind(("127.0.0.1", 0))
        imds.listen()
        imds.setblocking(False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://127.0.0.1:{imds.getsockname()[1]}"
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
        p = subprocess.run(
            [sys.executable, "-m", "sync", "restore", "--limits",
             "--config", str(tmp_path / "policy.yaml")],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        with pytest.raises(BlockingIOError):
            imds.accept()  # nobody asked it for credentials
    assert p.returncode == 1
    assert 'Could not connect to the endpoint URL: "http://127.0.0.1:' in p.stderr, p.stderr
    assert "amazonaws.com" not in p.stdout + p.stderr


STUDIO = """\
farms:
  - id: farm-0123456789abcdef0123456789abcdef
  - id: farm-fedcba9876543210fedcba9876543210
sources:
  adsk: {kind: flexlm, servers: ["27000@lic1,27000@lic2,27000@lic3"]}
  foundry: {kind: rlm, servers: ["5053@rlm1"]}
  lmx: {kind: command, command: ["/opt/lmx/report"]}
pools:
  maya:
    limits:
      - {farm: farm-0123456789abcdef0123456789abcdef, limit: amount.maya}
      - {farm: farm-fedcba9876543210fedcba9876543210, limit: amount.maya}
    features: [{source: adsk, feature: 87048MAYA_2024_0F}]
    reserve: 2
  nuke:
    farm: farm-0123456789abcdef0123456789abcdef
    limit: amount.nuke
    features: [{source: foundry, feature: nuke_r}]
    ceiling: 8
  vray:
    farm: farm-fedcba9876543210fedcba9876543210
    limit: V-Ray
    features: [{source: lmx, feature: vray_render}]
"""


def test_the_demo_runs_a_tds_own_policy_on_fakes_made_from_it(tmp_path):
    """Two farms on one endpoint, a triad answering a real capture, an RLM server from the
    policy's totals, a command source as static totals, a limit named by display name."""
    mine = tmp_path / "studio.yaml"
    mine.write_text(STUDIO)
    capture = FIXTURES_DIR / "flexlm/triad_one_down.txt"
    demo = subprocess.run(
        [sys.executable, "-m", "sync", "demo", "--policy", str(mine), "--capture",
         f"adsk={capture}", "--interval", "1", "--cycles", "2",
         "--address", f"127.0.0.1:{free_port()}", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    assert "error" not in out, out
    for farm in ("farm-0123456789abcdef0123456789abcdef", "farm-fedcba9876543210fedcba9876543210"):
        assert re.search(rf"#1 +maya/amount\.maya on {farm}: total=40 ", out), out  # the capture
    assert re.search(r"#1 +nuke/amount\.nuke: total=8 ", out)  # its ceiling, on the fake RLM
    assert re.search(r"#1 +vray/V-Ray: total=20 ", out)  # the command source's stand-in
    assert mine.read_text() == STUDIO  # the TD's file is only read
    copy = yaml.safe_load((tmp_path / "demo/policy.yaml").read_text())
    assert {f["fake_endpoint"] for f in copy["farms"]} == {re.search(r"http://\S+", out)[0]}
    assert copy["sources"]["lmx"] == {"kind": "static", "features": {"vray_render": 20}}


def test_a_capture_for_a_source_the_policy_lacks_is_refused(tmp_path):
    from tests.support.clirun import run_cli

    mine = tmp_path / "studio.yaml"
    mine.write_text(STUDIO)
    p = run_cli("demo", "--policy", str(mine), "--capture", f"flexlm={mine}",
                "--workdir", str(tmp_path / "d"))  # fmt: skip
    assert p.returncode == 1
    assert "--capture flexlm: the policy has no such source (its sources: adsk, foundry, lmx)" in (
        p.stderr
    )
    assert run_cli("demo", "--capture", f"adsk={mine}").returncode == 1


def seconds_until(limits: dict, lid: str, value: int, since: str) -> float:
    """Seconds from now until the fake farm's limit reads `value` (at most 10)."""
    written = time.monotonic()
    while limits[lid].max_count != value:
        assert time.monotonic() - written < 10, f"no cycle for {since}"
        time.sleep(0.05)
    took = time.monotonic() - written
    print(f"from {since} to the limit written: {took:.2f} s")
    return took


def test_an_artist_refused_brings_the_limit_down_within_seconds(farm_env, tmp_path):
    """The interval is a minute; an artist's refusal in the server's log starts a cycle at
    once, and the limit comes down within 5 s of the line (the real process)."""
    log = tmp_path / "foundry.log"
    log.write_text(" 9:00:00 (foundry) TIMESTAMP 12/3/2026\n")
    policy = Path(farm_env["policy"])
    port = free_port()
    edit_source(policy, log={"path": str(log)})
    edit_policy(policy, lambda doc: doc.update(metrics={"address": f"127.0.0.1:{port}"}))
    limits = farm_env["farm"].limits
    lid = farm_env["limit"]
    proc = run_service(policy, farm_env["env"])
    try:
        deadline = time.monotonic() + 30
        while limits[lid].max_count != 14:  # the first cycle: 20 − 5 artists − headroom 1
            assert time.monotonic() < deadline and proc.poll() is None, "no first cycle"
            time.sleep(0.05)
        why = "Licensed number of users already reached. (-4,342)"
        with log.open("a") as fh:
            fh.write(f'12:00:00 (foundry) DENIED: "nuke_r" bob@ws-077  ({why})\n')
        took = seconds_until(limits, lid, 13, "the refusal line")
        assert took < 5, took
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "its log refused an artist: a cycle now" in out, out


def test_artists_checkouts_leaving_less_free_than_the_pool_keeps_bring_the_limit_down(
    farm_env, tmp_path
):
    """No one is refused yet: four artists check out in the log and leave the pool 11
    free once the farm fills its limit of 3, where it keeps 15 (reserve 14, headroom 1)
    for them. That starts a cycle at once, and the limit comes down within seconds of
    the lines, not a minute later."""
    log = tmp_path / "foundry.log"
    log.write_text(" 9:00:00 (foundry) TIMESTAMP 12/3/2026\n")
    policy = Path(farm_env["policy"])
    port = free_port()
    edit_source(policy, log={"path": str(log)})

    def keep_fifteen(doc: dict) -> None:
        doc["metrics"] = {"address": f"127.0.0.1:{port}"}
        doc["pools"]["nuke"].update(reserve=14, farm_selector={"hosts": ["^render-"]})

    edit_policy(policy, keep_fifteen)
    farm_env["lic"].set_artists("nuke_r", 2)
    farm_env["status"].write_text(farm_env["lic"].lmstat())
    limits, lid = farm_env["farm"].limits, farm_env["limit"]
    proc = run_service(policy, farm_env["env"])
    try:
        deadline = time.monotonic() + 30
        while limits[lid].max_count != 3:  # 20 − 2 artists − reserve 14 − headroom 1
            assert time.monotonic() < deadline and proc.poll() is None, "no first cycle"
            time.sleep(0.05)
        farm_env["lic"].set_artists("nuke_r", 6)
        farm_env["status"].write_text(farm_env["lic"].lmstat())
        with log.open("a") as fh:  # a render node's checkout is the farm's: no news
            fh.write('12:00:00 (foundry) OUT: "nuke_r" render@render-40\n')
            fh.writelines(f'12:00:01 (foundry) OUT: "nuke_r" a{i}@ws-{i:02d}\n' for i in range(4))
        took = seconds_until(limits, lid, 1, "the checkout lines")
        assert took < 5, took
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    news = "pool nuke: artists took 4 since the last cycle, leaving 11 free of the 15 it keeps"
    assert f"{news}: a cycle now" in out, out
