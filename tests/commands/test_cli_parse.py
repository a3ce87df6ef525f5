"""`license-sync parse`, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import FIXTURES as FIXTURES_DIR

FIX = FIXTURES_DIR


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "sync", *args], input=stdin or b"", capture_output=True, timeout=60
    )
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


def test_parse_file_prints_the_contract():
    p = run("parse", "--format", "flexlm", str(FIX / "flexlm/single_server.txt"))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) == {"format", "up", "servers", "vendors", "features", "errors"}
    assert out["up"] is True
    f = out["features"][0]
    assert set(f) >= {
        "vendor",
        "feature",
        "version",
        "total",
        "in_use",
        "reserved",
        "queued",
        "error",
        "expires",
        "checkouts",
    }
    assert set(f["checkouts"][0]) == {
        "user",
        "host",
        "display",
        "client_version",
        "server",
        "port",
        "handle",
        "start",
        "count",
        "linger",
        "pid",
    }
    assert [x["feature"] for x in out["features"]] == ["nuke_r", "nukex_i", "mari_i"]


def test_parse_stdin_rlm():
    p = run("parse", "--format", "rlm", "-", stdin=(FIX / "rlm/full.txt").read_bytes())
    assert p.returncode == 0
    nuke = next(f for f in json.loads(p.stdout)["features"] if f["feature"] == "nuke_r")
    assert nuke["total"] == 15


def test_parse_down_server_exits_zero_with_reason():
    p = run("parse", "--format", "flexlm", str(FIX / "flexlm/server_down.txt"))
    assert p.returncode == 0
    out = json.loads(p.stdout)
    assert out["up"] is False and "Cannot connect" in out["errors"][0]


@pytest.mark.parametrize("data", [b"garbage\n", b"\xff\xfe\x00binary", b""])
def test_parse_garbage_gives_a_down_report_not_a_traceback(data):
    p = run("parse", "--format", "flexlm", "-", stdin=data)
    assert p.returncode == 0
    assert json.loads(p.stdout)["up"] is False
    assert "Traceback" not in p.stderr


def test_parse_expiry_listing_detected():
    p = run("parse", "--format", "flexlm", str(FIX / "flexlm/expiry_i.txt"))
    out = json.loads(p.stdout)
    assert out["format"] == "flexlm-expiry"
    assert out["expiry"][2] == {
        "feature": "mari_i",
        "version": "5.0",
        "licenses": None,
        "expires": "permanent",
        "vendor": "foundry",
    }


def test_parse_missing_file_is_one_line_error():
    p = run("parse", "--format", "flexlm", "/nonexistent/file.txt")
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "license-sync parse: error: cannot read '/nonexistent/file.txt': No such file or directory"
    ]


def test_parse_help():
    p = run("parse", "--help")
    assert p.returncode == 0 and "--format" in p.stdout
