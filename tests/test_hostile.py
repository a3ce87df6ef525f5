"""What a hostile or broken host does to the running service, through the real process:
files put in the place of its policy or a followed log that are no files (a FIFO blocks
a reader for ever, a device never ends) or far too large. Each is refused, said, and the
service goes on with what it had (docs/operations.md, "Faults it survives")."""

from __future__ import annotations

import os
import signal

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from tests.test_e2e import free_port, lm_env, metric, run_service, scrape, wait_for, write_atomic


def cycles(port: int) -> float:
    return metric(scrape(port), "license_sync_cycles_total", result="ok") or 0.0


def test_a_fifo_or_a_huge_file_in_place_of_the_policy_or_a_log_stops_no_cycle(aws_env, tmp_path):
    farm = FakeFarm(count_delay=0)
    _, lid = farm.add_queue_with_limit("amount.nuke", 30)
    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    lic.set_artists("nuke_r", 2)
    status, log, port = tmp_path / "lmstat.txt", tmp_path / "foundry.log", free_port()
    write_atomic(status, lic.lmstat())
    log.write_text(" 9:00:00 (foundry) TIMESTAMP 12/3/2026\n")
    policy = tmp_path / "policy.yaml"
    with FakeDeadline(farm) as server:
        policy.write_text(f"""\
interval: 1s
history: {{path: {tmp_path / "h.db"}}}
metrics: {{address: "127.0.0.1:{port}"}}
farms: [{{id: {farm.farm_id}, region: us-west-2}}]
sources:
  lic: {{kind: flexlm, servers: ["27000@lic1"], timeout: 10s, log: {{path: {log}}}}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: lic, feature: nuke_r}}]
    headroom: 1
""")
        good = policy.read_text()
        proc = run_service(policy, lm_env(status, server.url))
        try:
            wait_for(lambda: farm.limits[lid].max_count == 17, what="first write")
            log.unlink()
            os.mkfifo(log)  # opened to read, it would wait for a writer for ever
            seen = cycles(port)
            wait_for(lambda: cycles(port) > seen + 2, what="cycles with a FIFO as the log")
            assert metric(scrape(port), "license_sync_source_log_up", source="lic") == 0
            policy.unlink()
            os.mkfifo(policy)
            seen = cycles(port)
            wait_for(lambda: cycles(port) > seen + 2, what="cycles with a FIFO as the policy")
            assert metric(scrape(port), "license_sync_policy_file_valid") == 0
            policy.unlink()
            policy.write_text(good + "# padding\n" * 150_000)  # 1.5 MiB, valid YAML
            seen = cycles(port)
            wait_for(lambda: cycles(port) > seen + 2, what="cycles with a huge policy")
            assert metric(scrape(port), "license_sync_policy_file_valid") == 0
            lic.set_artists("nuke_r", 5)  # the last good policy still syncs
            write_atomic(status, lic.lmstat())
            wait_for(lambda: farm.limits[lid].max_count == 14, what="still syncing")
        finally:
            proc.send_signal(signal.SIGINT)
            out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert out.count("not a regular file") == 2, out  # the log's and the policy's, once each
    assert "the policy is over 1024 KiB" in out, out
    assert "Traceback" not in out, out
