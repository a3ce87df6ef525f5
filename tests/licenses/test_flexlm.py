from __future__ import annotations

import pytest

from sync.licenses import flexlm
from sync.values.errors import ParseError
from tests.conftest import fixture_text


def parse(name: str):
    return flexlm.parse(fixture_text(f"flexlm/{name}"))


def by_name(report, feature, vendor=None):
    [f] = report.feature(feature, vendor)
    return f


@pytest.mark.parametrize(
    ("fixture", "feature", "total", "in_use", "reserved", "queued", "n_checkouts"),
    [
        ("single_server.txt", "nuke_r", 20, 7, 0, 2, 4),
        ("single_server.txt", "nukex_i", 1, 1, 0, 0, 1),  # singular "1 license"
        ("single_server.txt", "mari_i", 50, 0, 50, 0, 0),  # reservations
        ("triad_one_down.txt", "87048MAYA_2024_0F", 40, 12, 0, 0, 2),
        ("versions.txt", "katana_r", 12, 5, 0, 0, 2),  # two version sub-blocks
        ("junk_before_banner.txt", "nuke_r", 3, 1, 0, 0, 1),
        ("junk_before_banner.txt", "nukex_i", 2, 0, 0, 0, 0),  # last block, no blank line
        ("crlf_windows.txt", "86985MAYA_2022_0F", 5, 2, 0, 0, 2),
        ("uncounted_error.txt", "MATLAB", None, 0, 0, 0, 1),  # uncounted, still lists users
        ("uncounted_error.txt", "Signal_Toolbox", 5, 0, 0, 0, 0),
        ("identities.txt", "houdini", 30, 9, 0, 0, 7),
    ],
)
def test_feature_counts(fixture, feature, total, in_use, reserved, queued, n_checkouts):
    f = by_name(parse(fixture), feature)
    assert (f.total, f.in_use, f.reserved, f.queued, len(f.checkouts)) == (
        total,
        in_use,
        reserved,
        queued,
        n_checkouts,
    )


def test_checkout_fields_from_the_right():
    f = by_name(parse("single_server.txt"), "nuke_r")
    ana, render4, ben, render_pid = f.checkouts
    assert ana._asdict() == {
        "user": "ana",
        "host": "ws042",
        "display": "ws042",
        "client_version": "v2024.0701",
        "server": "lic1",
        "port": 27000,
        "handle": 1234,
        "start": "Fri 10/20 14:12",
        "count": 1,
        "linger": None,
        "pid": None,
    }
    assert (render4.display, render4.count) == ("/dev/pts/0", 4)
    assert (ben.display, ben.linger, ben.count) == ("ws101:0.0", 885098, 1)
    assert (render_pid.pid, render_pid.count) == (2593569, 1)


@pytest.mark.parametrize(
    ("index", "user", "host", "display", "count"),
    [
        (0, "svc_render", "node12", None, 1),  # two tokens
        (1, "John Smith", "WS-JS", "WS-JS", 1),  # user name with a space
        (2, '"Mary Ann"', "ws5", "ws5", 1),  # quotes
        (3, "kim", "ws6", "kim|pipe|display", 1),  # pipes
        (4, "DOMAIN\\lee", "ws7", "C:\\Program Files\\Side Effects", 1),  # backslashes, spaces
        (5, "raj", "ws8", "50% done", 2),  # percent, and ", 2 licenses"
        (6, "zoe", "ws9", "ws9", 1),
    ],
)
def test_identities(index, user, host, display, count):
    c = by_name(parse("identities.txt"), "houdini").checkouts[index]
    assert (c.user, c.host, c.display, c.count) == (user, host, display, count)


def test_linger_and_pid_together():
    c = by_name(parse("identities.txt"), "houdini").checkouts[6]
    assert (c.linger, c.pid, c.start) == (60, 42, "Sat 10/21 1:11")


def test_in_use_is_the_headers_number_not_the_lines_sum():
    f = by_name(parse("identities.txt"), "houdini")
    assert sum(c.count for c in f.checkouts) == 8
    assert f.in_use == 9


def test_triad_with_one_member_down_is_up():
    r = parse("triad_one_down.txt")
    assert r.up
    assert [(s.host, s.port, s.status, s.master) for s in r.servers] == [
        ("lic1", 27000, "up", True),
        ("lic2", 27000, "up", False),
        ("lic3", 27000, "down", False),
    ]
    assert "Cannot connect" in r.servers[2].message


def test_triad_with_two_members_down_is_down():
    r = parse("triad_two_down.txt")
    assert not r.up
    assert [s.status for s in r.servers] == ["up", "down", "down"]
    assert r.errors


@pytest.mark.parametrize("fixture", ["server_down.txt", "lmgrd_not_running.txt"])
def test_whole_server_down(fixture):
    r = parse(fixture)
    assert not r.up
    assert r.features == ()
    assert any("Cannot connect" in e or "lmgrd is not running" in e for e in r.errors)


def test_lmgrd_not_running_marks_listed_server_down():
    r = parse("lmgrd_not_running.txt")
    assert [(s.host, s.port, s.status) for s in r.servers] == [("lic9", 27000, "down")]


def test_same_feature_under_two_vendors_are_two_entries():
    r = parse("two_vendors.txt")
    assert [(f.vendor, f.feature) for f in r.features] == [
        ("adskflex", "render"),
        ("adskflex", "arnold"),
        ("sidefx", "render"),
    ]
    assert by_name(r, "render", "adskflex").in_use == 3
    assert by_name(r, "render", "sidefx").total == 4


def test_vendor_daemon_down_is_reported():
    r = parse("two_vendors.txt")
    status = {v.name: (v.status, v.version) for v in r.vendors}
    assert status == {
        "adskflex": ("up", "v11.18.1"),
        "sidefx": ("up", "v11.18.1"),
        "MLM": ("down", None),
    }
    assert r.up


def test_per_feature_error_header():
    f = by_name(parse("uncounted_error.txt"), "Simulink")
    assert f.error == "1 licenses, unsupported by licensed server"
    assert f.total is None and f.in_use == 0


def test_versions_and_earliest_expiry():
    f = by_name(parse("versions.txt"), "katana_r")
    assert f.version == "6.0,7.0"
    assert f.expires == "2025-09-30"
    assert [c.client_version for c in f.checkouts] == ["v6.0", "v7.0"]


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("30-dec-2026", "2026-12-30"),
        ("1-jan-0", "permanent"),
        ("01-jan-0000", "permanent"),
        ("permanent(no expiration date)", "permanent"),
        ("5-Mar-25", "2025-03-05"),
        ("sometime", "sometime"),
    ],
)
def test_normalise_expiry(text, iso):
    assert flexlm.normalise_expiry(text) == iso


def test_reservations_of_every_kind_are_kept():
    f = by_name(parse("single_server.txt"), "mari_i")
    assert [(r.count, r.kind, r.name) for r in f.reservations] == [
        (48, "GROUP", "NAME"),
        (1, "USER", "ana"),
        (1, "HOST", "ws042"),
    ]


@pytest.mark.parametrize(
    "kind", ["USER", "GROUP", "HOST", "HOST_GROUP", "INTERNET", "DISPLAY", "PROJECT"]
)
def test_reservation_kinds(kind):
    text = fixture_text("flexlm/junk_before_banner.txt").replace(
        "Users of nukex_i:", f"  2 RESERVATIONs for {kind} someone (lic1/27000)\nUsers of nukex_i:"
    )
    f = flexlm.parse(text).feature("nuke_r")[0]
    assert (f.reserved, f.reservations[0].kind) == (2, kind)


def test_crlf_and_missing_blank_lines_equal_the_unix_form():
    crlf = fixture_text("flexlm/crlf_windows.txt")
    assert "\r\n" in crlf
    assert flexlm.parse(crlf) == flexlm.parse(crlf.replace("\r\n", "\n"))
    squeezed = "\n".join(ln for ln in crlf.replace("\r\n", "\n").split("\n") if ln.strip())
    assert flexlm.parse(squeezed).to_dict()["features"] == flexlm.parse(crlf).to_dict()["features"]


def test_indentation_does_not_matter():
    text = fixture_text("flexlm/single_server.txt")
    flat = "\n".join(ln.strip() for ln in text.split("\n"))
    assert flexlm.parse(flat) == flexlm.parse(text)


def test_an_odd_checkout_line_is_read_by_the_slow_path():
    text = fixture_text("flexlm/junk_before_banner.txt").replace(
        "ana ws042 ws042 (v2024.0701)", "ana (admin) ws042 ws042 (v2024.0701)"
    )
    [c] = flexlm.parse(text).feature("nuke_r")[0].checkouts
    assert (c.user, c.host, c.display, c.handle) == ("ana (admin)", "ws042", "ws042", 1234)


def test_unrecognised_checkout_line_is_an_error_not_a_crash():
    text = fixture_text("flexlm/junk_before_banner.txt").replace(
        "(lic1/27000 1234), start Fri 10/20 14:12", "(lic1/27000 1234), start whenever"
    )
    r = flexlm.parse(text)
    assert r.up
    assert r.feature("nuke_r")[0].checkouts == ()
    assert any("unrecognised checkout line" in e for e in r.errors)


@pytest.mark.parametrize("text", ["", "hello world\n", "$ ls\nfoo bar\n", "\x00\x01\x02"])
def test_not_lmstat_output_raises_parse_error(text):
    with pytest.raises(ParseError, match="no lmstat output"):
        flexlm.parse(text)


@pytest.mark.parametrize("fixture", ["expiry_i.txt", "expiry_i_vendor_first.txt"])
def test_expiry_listing_detected(fixture):
    assert flexlm.looks_like_expiry(fixture_text(f"flexlm/{fixture}"))
    assert not flexlm.looks_like_expiry(fixture_text("flexlm/single_server.txt"))


def test_expiry_listing_expires_then_vendor():
    rows = flexlm.parse_expiry(fixture_text("flexlm/expiry_i.txt"))
    assert [(e.feature, e.version, e.licenses, e.expires, e.vendor) for e in rows] == [
        ("nuke_r", "2024.0701", 20, "2026-12-30", "foundry"),
        ("nuke_r", "2024.0701", 5, "2025-03-31", "foundry"),  # same feature, two expiries
        ("mari_i", "5.0", None, "permanent", "foundry"),  # uncounted; date with a space
    ]


def test_expiry_listing_vendor_then_expires():
    rows = flexlm.parse_expiry(fixture_text("flexlm/expiry_i_vendor_first.txt"))
    assert [(e.feature, e.licenses, e.expires, e.vendor) for e in rows] == [
        ("87048MAYA_2024_0F", 40, "2025-06-15", "adskflex"),
        ("86985MAYA_2022_0F", None, "permanent", "adskflex"),
    ]


def test_expiry_listing_without_header_is_a_parse_error():
    with pytest.raises(ParseError):
        flexlm.parse_expiry(fixture_text("flexlm/single_server.txt"))


def test_benchmark_generator_output_parses_completely():
    """The benchmark's input is realistic only if every line of it is understood."""
    from benchmarks.parse_flexlm import generate

    text, n = generate(features=5, checkouts=300)
    r = flexlm.parse(text)
    assert sum(len(f.checkouts) for f in r.features) == n
    assert r.errors == ()
    for f in r.features:
        assert f.in_use == sum(c.count for c in f.checkouts)
