from __future__ import annotations

import pytest

from sync.licenses import rlm
from sync.values.errors import ParseError
from tests.conftest import fixture_text


def parse(name: str):
    return rlm.parse(fixture_text(f"rlm/{name}"))


def test_full_status():
    r = parse("full.txt")
    assert r.up
    assert [(s.host, s.port, s.status) for s in r.servers] == [("rlm1", 5053, "up")]
    assert {v.name: v.status for v in r.vendors} == {"foundry": "up", "sidefx": "down"}


def test_same_product_in_two_pools_is_summed_and_pools_kept():
    [f] = parse("full.txt").feature("nuke_r")
    assert (f.vendor, f.version, f.total, f.in_use, f.reserved) == (
        "foundry",
        "2024.0701",
        15,
        4,
        1,
    )
    assert f.pools == (12,)
    assert f.expires == "2026-12-31"


def test_usage_lines():
    [f] = parse("full.txt").feature("nuke_r")
    assert [(c.user, c.host, c.count, c.handle, c.start) for c in f.checkouts] == [
        ("ana", "ws042", 1, 0x36A5, "03/28 21:44"),
        ("render", "render-017", 2, 0x41, "03/28 22:01"),
        ("ben", "ws101", 1, 0x4A, "03/28 22:03"),
    ]


def test_token_based_license_has_no_total_and_counts_usage():
    [f] = parse("full.txt").feature("nuke_t")
    assert f.total is None
    assert f.in_use == 29  # the "29/0" usage line
    assert f.checkouts[0].count == 29


def test_isv_only_output():
    r = parse("isv_only.txt")
    assert r.up
    [f] = r.features
    assert (f.feature, f.total, f.in_use, f.expires) == ("mari_i", 4, 1, "2027-01-01")


def test_connection_error_is_down_with_reason():
    r = parse("down.txt")
    assert not r.up
    assert r.features == ()
    assert "Error connecting" in r.errors[0] and "Connection refused" in r.errors[0]


@pytest.mark.parametrize(
    "text", ["", "nothing to see\n", "Users of x: (Total of 1 license issued)"]
)
def test_not_rlmstat_output(text):
    with pytest.raises(ParseError):
        rlm.parse(text)


def test_crlf():
    text = fixture_text("rlm/full.txt")
    assert rlm.parse(text.replace("\n", "\r\n")) == rlm.parse(text)


def test_a_dashed_isv_table_header_still_finds_a_down_isv():
    text = fixture_text("rlm/full.txt").replace("   ISV servers:", "   --- ISV servers ---")
    assert {v.name: v.status for v in rlm.parse(text).vendors}["sidefx"] == "down"


def test_lines_outside_their_sections_are_errors_not_features():
    text = fixture_text("rlm/full.txt")
    # a usage line of a product no pool line counted; a product line before any pool header
    usage = "\thoudini v20.0: ana@ws001 1/0 at 03/28 21:00  (handle: 9)\n"
    text = text.replace("\tnuke_t v2024.0701: farm@", usage + "\tnuke_t v2024.0701: farm@")
    text = text.replace("\tfoundry ISV server", "\torphan v1.0\n\tfoundry ISV server")
    r = rlm.parse(text)
    assert r.up and not r.feature("houdini") and not r.feature("orphan")
    assert "usage of houdini v20.0 with no pool line" in r.errors
    assert any("'orphan v1.0' is outside any ISV's pool or usage section" in e for e in r.errors)
