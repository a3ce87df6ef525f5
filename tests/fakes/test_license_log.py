"""The fake vendor daemon's debug log, as a FlexLM daemon writes one: what the demo's
service follows. Read back by the product's own parser."""

from __future__ import annotations

from datetime import UTC, datetime

from sync.fakes.license import FakeFeature, FakeLicenseServer
from sync.licenses import rlm_log
from sync.licenses.flexlm_log import parse_log


def test_the_fake_daemon_logs_checkouts_and_refusals(tmp_path):
    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 2)], seed=1)
    lic.log_path = str(tmp_path / "foundry.log")
    for _ in range(40):  # artists come and go; with two licenses some are refused
        lic.walk(datetime.now(UTC), peak=1.5)
    events = parse_log((tmp_path / "foundry.log").read_text()).events
    kinds = {e.kind for e in events}
    assert {"OUT", "DENIED"} <= kinds, kinds
    assert all(e.at is not None and e.feature == "nuke_r" for e in events)  # dated
    held = sum(1 if e.kind == "OUT" else -1 if e.kind == "IN" else 0 for e in events)
    assert held == len(lic.features["nuke_r"].artists)  # the log agrees with lmstat


def test_the_fake_isv_server_writes_a_report_log_its_parser_reads(tmp_path):
    lic = FakeLicenseServer(None, [FakeFeature("maya", 2, vendor="adskflex", kind="rlm")], seed=1)
    lic.report_log_path = str(tmp_path / "adskflex.rlmlog")
    lic.log_path = str(tmp_path / "foundry.log")  # a FlexLM log: nothing of RLM's goes there
    for _ in range(40):
        lic.walk(datetime.now(UTC), peak=1.5)
    events = rlm_log.parse_log((tmp_path / "adskflex.rlmlog").read_text()).events
    assert {"OUT", "DENIED"} <= {e.kind for e in events}
    assert all(e.at is not None and e.vendor == "adskflex" for e in events)  # START, ISV:
    held = sum(1 if e.kind == "OUT" else -1 if e.kind == "IN" else 0 for e in events)
    assert held == len(lic.features["maya"].artists)
    assert not (tmp_path / "foundry.log").exists()
