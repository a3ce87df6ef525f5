"""A log's refusals told apart: whose (the farm's, by the pool's farm_selector, or an
artist's) and which pool's. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from sync.law.denials import denials
from sync.law.state import Denial
from sync.licenses.logs import LogEvent
from sync.policy import Policy
from tests.support.policy import RENDER_HOSTS, policy, pool

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 12, 1, 11, 59, tzinfo=UTC)
LIC2 = {"kind": "flexlm", "servers": ["27000@lic2"]}


def refused(
    feature="nuke_r",
    host="ws-1",
    user="ann",
    kind="DENIED",
    at=EARLIER,
    vendor="foundry",
    reason="no licenses",
) -> LogEvent:
    return LogEvent(at, vendor, kind, feature, user, host, reason)


def studio(**pools) -> Policy:
    return Policy.model_validate(
        policy(
            sources={"lic": {"kind": "flexlm", "servers": ["27000@lic1"]}, "lic2": LIC2},
            pools=pools,
        )
    )


def test_each_refusal_is_the_farms_or_an_artists_by_the_pools_selector():
    p = studio(nuke=pool(farm_selector={"hosts": ["^render-"], "users": ["^svc$"]}))
    events = [
        refused(host="render-0", kind="OUT"),  # a checkout that was served: not a refusal
        refused(host="render-1"),
        refused(host="ws-1"),
        refused(host="ws-2", user="svc"),
        refused(host="ws-3", kind="UNSUPPORTED", reason=None),
        refused(host="render-2", kind="QUEUED"),  # waits: not a refusal
        refused(host="render-3", kind="OUT"),
    ]
    assert denials(p, "lic", events, NOW) == [
        Denial(EARLIER, "lic", "nuke", "nuke_r", "ann", "render-1", "farm", "no licenses"),
        Denial(EARLIER, "lic", "nuke", "nuke_r", "ann", "ws-1", "artist", "no licenses"),
        Denial(EARLIER, "lic", "nuke", "nuke_r", "svc", "ws-2", "farm", "no licenses"),
        Denial(EARLIER, "lic", "nuke", "nuke_r", "ann", "ws-3", "artist", "UNSUPPORTED"),
    ]


def test_the_workers_hosts_are_the_farms_when_the_selector_says_workers():
    p = studio(nuke=pool(farm_selector={"workers": True}))
    got = denials(
        p,
        "lic",
        [refused(host="rndr-7.farm.local"), refused(host="ws-1")],
        NOW,
        frozenset({"rndr-7"}),
    )
    assert [d.who for d in got] == ["farm", "artist"]
    without = studio(nuke=pool(farm_selector={"hosts": ["^x"]}))
    assert [
        d.who for d in denials(without, "lic", [refused(host="rndr-7")], NOW, frozenset({"rndr-7"}))
    ] == ["artist"]


def test_without_a_selector_every_refusal_is_an_artists():
    got = denials(studio(nuke=pool()), "lic", [refused(host="render-1")], NOW)
    assert [(d.pool, d.who) for d in got] == [("nuke", "artist")]


def test_a_refusal_goes_to_each_pool_of_its_feature_source_and_vendor_or_to_none():
    p = studio(
        nuke=pool(farm_selector=RENDER_HOSTS),
        nuke2=pool(
            "amount.nuke2", features=[{"source": "lic", "feature": "nuke_r", "vendor": "foundry"}]
        ),
        other_vendor=pool(
            "amount.nx", features=[{"source": "lic", "feature": "nuke_r", "vendor": "rlm"}]
        ),
        elsewhere=pool("amount.ny", features=[{"source": "lic2", "feature": "nuke_r"}]),
    )
    got = denials(p, "lic", [refused(host="render-1")], NOW)
    assert [(d.pool, d.who) for d in got] == [("nuke", "farm"), ("nuke2", "artist")]
    nobody = denials(p, "lic", [refused(feature="maya")], NOW)
    assert [(d.pool, d.feature, d.who) for d in nobody] == [("", "maya", "artist")]
    assert [d.pool for d in denials(p, "lic3", [refused()], NOW)] == [""]


def test_a_refusal_the_log_has_not_dated_yet_is_dated_when_read():
    [d] = denials(studio(nuke=pool()), "lic", [refused(at=None)], NOW)
    assert d.at == NOW
