"""A policy with sources and no pools: a license exporter only — no Deadline client, no
AWS at all — that a studio deploys first and turns control on later by adding pools."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sync.edges.http_endpoint import HealthServer
from sync.policy import load_policy
from sync.process.app import build_service
from tests.support.clirun import run_cli
from tests.support.paths import BIN, ROOT

CAPTURE = ROOT / "tests/fixtures/flexlm/two_vendors.txt"


def exporter(tmp_path: Path, checkouts: bool = False) -> Path:
    policy = tmp_path / "exporter.yaml"
    policy.write_text(f"""\
history: {{path: {tmp_path / "h.db"}}}
metrics: {{checkouts: {str(checkouts).lower()}}}
sources:
  lic: {{kind: flexlm, servers: ["27000@flex1"], executable: {BIN / "lmutil"}}}
""")
    return policy


def test_an_exporter_runs_with_no_aws_variables_and_asks_no_metadata(tmp_path):
    with socket.socket() as imds:  # a metadata service that would note any caller
        imds.bind(("127.0.0.1", 0))
        imds.listen()
        imds.setblocking(False)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_LM_OUTPUT": str(CAPTURE)}
        p = subprocess.run(
            [sys.executable, "-m", "sync", "run", "--once", "--config", str(exporter(tmp_path))],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        with pytest.raises(BlockingIOError):
            imds.accept()
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "source lic: up, 3 feature(s)"


def scrape(tmp_path: Path, checkouts: bool, monkeypatch) -> str:
    monkeypatch.setenv("FAKE_LM_OUTPUT", str(CAPTURE))
    svc = build_service(load_policy(exporter(tmp_path, checkouts)))
    result = svc.run_cycle()
    assert result.ok, result.errors
    server = HealthServer(svc.metrics, "127.0.0.1:0", svc.ready).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        return urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        server.stop()
        if svc.history is not None:
            svc.history.close()


def test_every_feature_of_every_source_is_exported_with_no_pool(tmp_path, monkeypatch):
    text = scrape(tmp_path, False, monkeypatch)
    # `render` is served by two vendor daemons: one series, summed (10 + 4, 3 + 1 in use)
    assert 'license_sync_license_issued{feature="render",pool="",source="lic"} 14.0' in text
    assert 'license_sync_license_in_use{feature="render",pool="",source="lic"} 4.0' in text
    assert 'license_sync_license_issued{feature="arnold",pool="",source="lic"} 25.0' in text
    assert 'license_sync_vendor_daemon_up{source="lic",vendor="sidefx"} 1.0' in text
    assert "license_sync_license_checkouts{" not in text  # personal data: off by default
    assert "license_sync_limit_max{" not in text


def test_per_user_checkouts_are_exported_only_when_asked(tmp_path, monkeypatch):
    text = scrape(tmp_path, True, monkeypatch)
    assert (
        'license_sync_license_checkouts{feature="render",host="ws042",source="lic",user="ana"} 3.0'
        in text
    )
    assert (
        'license_sync_license_checkouts{feature="render",host="ws100",source="lic",user="bob"} 1.0'
        in text
    )


def test_validate_says_what_an_exporter_is_and_what_pools_need(tmp_path):
    p = run_cli("validate", str(exporter(tmp_path)))
    assert p.returncode == 0
    assert "no pools: this policy runs as a license exporter only" in p.stdout
    bad = tmp_path / "pools-no-farm.yaml"
    bad.write_text(
        exporter(tmp_path).read_text()
        + "pools:\n  nuke:\n    limit: amount.nuke\n"
        + "    features: [{source: lic, feature: render}]\n"
    )
    p = run_cli("validate", str(bad))
    assert p.returncode == 1
    assert "pools set Deadline limits, so the policy needs its farms" in p.stderr


def test_control_is_turned_on_by_adding_pools_and_a_reload(tmp_path, monkeypatch, aws_env):
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm

    monkeypatch.setenv("FAKE_LM_OUTPUT", str(CAPTURE))
    policy = exporter(tmp_path)
    svc = build_service(load_policy(policy))
    svc.policy_quiet = 0  # the edit below is written whole
    assert svc.run_cycle().ok
    farm = FakeFarm(count_delay=0)
    _, lid = farm.add_queue_with_limit("amount.render", 30)
    with FakeDeadline(farm) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DEADLINE", server.url)
        policy.write_text(
            policy.read_text()
            + f"farms: [{{id: {farm.farm_id}, region: us-west-2}}]\n"
            + "pools:\n  render:\n    limit: amount.render\n"
            + "    features: [{source: lic, feature: arnold}]\n"
        )
        try:
            assert svc.run_cycle().ok  # the reload is taken at the cycle's start
        finally:
            if svc.history is not None:
                svc.history.close()
    assert farm.limits[lid].max_count == 25  # arnold: 25 issued, none in use: 30 → 25
