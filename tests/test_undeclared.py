"""Licenses the farm uses around its limit, through the real process: `license-sync run`
against the fake Deadline, a fake `lmutil` printing what the fake license server holds,
and a job that runs Nuke without declaring amount.nuke. Declared tasks plus undeclared use
plus artists never pass the total once the service has seen it."""

from __future__ import annotations

from datetime import timedelta

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from sync.fakes.templates import build, simple_template
from tests.test_e2e import free_port, lm_env, metric, run_service, scrape, wait_for, write_atomic

TOTAL, ARTISTS, SNEAKY = 20, 4, 4


def test_undeclared_use_is_subtracted_so_nothing_passes_the_total(aws_env, tmp_path):
    farm = FakeFarm(count_delay=0)
    farm.products = {"nuke": "amount.nuke"}  # its command runs Nuke, whatever it declares
    q, lid = farm.add_queue_with_limit("amount.nuke", 19)
    lic = FakeLicenseServer(farm, [FakeFeature("nuke_r", TOTAL, "amount.nuke")])
    lic.set_artists("nuke_r", ARTISTS)
    sneaky = build(simple_template("sneaky", SNEAKY, command="nuke"), "JSON")
    farm.create_job(q, sneaky, duration=10_000)  # holds its licenses all along
    farm.add_job(q, "comp", tasks=200, amount="amount.nuke", duration=30)
    status, port = tmp_path / "lmstat.txt", free_port()

    def step(seconds: int) -> None:  # the farm moves on, and lmutil says so
        farm.tick(farm.now + timedelta(seconds=seconds))
        write_atomic(status, lic.lmstat())

    step(0)
    with FakeDeadline(farm) as server:
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"""\
interval: 1s
history: {{path: {tmp_path / "h.db"}}}
metrics: {{address: "127.0.0.1:{port}"}}
farms: [{{id: {farm.farm_id}, region: us-west-2}}]
sources:
  lic: {{kind: flexlm, servers: ["27000@lic1"], timeout: 10s}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: lic, feature: nuke_r}}]
    farm_selector: {{hosts: ["^render-"]}}
    hysteresis: {{settle: 1}}
""")
        proc = run_service(policy, lm_env(status, server.url))
        try:
            # what is free for declared tasks: the total less artists and the undeclared use
            wait_for(lambda: farm.limits[lid].max_count == TOTAL - ARTISTS - SNEAKY, 60, "12")
            text = scrape(port)
            assert metric(text, "license_sync_undeclared_in_use", pool="nuke") == SNEAKY
            refused = farm.denials
            for _ in range(4):  # frames end and start again under the limit: none refused
                cycles = metric(scrape(port), "license_sync_cycles_total", result="ok") or 0
                step(30)
                wait_for(
                    lambda c=cycles: (
                        (metric(scrape(port), "license_sync_cycles_total", result="ok") or 0)
                        > c + 1
                    ),
                    what="a cycle after the farm moved",
                )
                assert farm.in_use(lid) + SNEAKY + ARTISTS <= TOTAL
            assert farm.denials == refused
            assert farm.limits[lid].max_count == TOTAL - ARTISTS - SNEAKY
        finally:
            proc.kill()
            out = proc.communicate()[0]
    assert "Traceback" not in out, out
