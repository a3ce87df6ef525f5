"""What a hostile or broken host does to the running service, through the real process:
files put in the place of its policy or a followed log that are no files (a FIFO blocks
a reader for ever, a device never ends) or far too large. Each is refused, said, and the
service goes on with what it had (docs/operations.md, "Faults it survives")."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from tests.support.clirun import run_cli
from tests.support.paths import ROOT
from tests.support.policy import LIC, RENDER_HOSTS, pool, write_policy
from tests.support.policy import policy as policy_doc
from tests.support.process import (
    free_port,
    lm_env,
    memory_mib,
    metric,
    run_service,
    scrape,
    wait_for,
    write_atomic,
)


def cycles(port: int) -> float:
    return metric(scrape(port), "license_sync_cycles_total", result="ok") or 0.0


def denied(at: str, who: str) -> str:
    """A FlexLM debug log's refusal line of nuke_r to `who` (user@host) at `at`."""
    return (f' {at} (foundry) DENIED: "nuke_r" {who}  '
            "(Licensed number of users already reached. (-4,342))\n")  # fmt: skip


@contextmanager
def log_service(tmp_path: Path, *, interval: str = "1s", artists: int = 0, **more: Any):
    """`license-sync run` through the real process, on the fake Deadline (one limit of 30)
    and a fake lmutil (20 nuke_r, `artists` of them held), following a FlexLM debug log;
    `more`: more settings of the pool. Stopped with SIGINT on leaving; its output is
    then `.out`. Whatever the test did to it, its peak memory stayed under 200 MiB and
    no cycle went over its budget (the issue's bounds for every hostile input)."""
    s = SimpleNamespace(farm=FakeFarm(count_delay=0), port=free_port(), db=tmp_path / "h.db")
    _, s.lid = s.farm.add_queue_with_limit("amount.nuke", 30)
    s.lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    s.lic.set_artists("nuke_r", artists)
    s.status, s.log, s.policy = (
        tmp_path / "lmstat.txt",
        tmp_path / "foundry.log",
        tmp_path / "policy.yaml",
    )
    write_atomic(s.status, s.lic.lmstat())
    s.log.write_text(" 9:00:00 (foundry) TIMESTAMP 12/3/2026\n")
    with FakeDeadline(s.farm) as server:
        source = {**LIC, "timeout": "10s", "log": {"path": str(s.log)}}
        doc = policy_doc(s.farm.farm_id, history=s.db, port=s.port, interval=interval)
        write_policy(s.policy, {**doc, "sources": {"lic": source}, "pools": {"nuke": pool(**more)}})
        s.proc = run_service(s.policy, lm_env(s.status, server.url))
        try:
            yield s
        finally:
            s.peak_mib = memory_mib(s.proc.pid, "VmHWM")
            s.proc.send_signal(signal.SIGINT)
            s.out = s.proc.communicate(timeout=30)[0]
    assert s.peak_mib < 200, f"peak RSS {s.peak_mib:.0f} MiB"
    assert "went over its budget" not in s.out, s.out


def test_a_running_service_goes_on_through_what_a_broken_host_does_to_its_files(aws_env, tmp_path):
    """One service, through the real process, met in turn by: its history's -wal and -shm
    removed (before: it took its own file for another instance's and wrote no limit); a
    server counting 10^20 licenses (past int32 and past SQLite's integers: before, an
    OverflowError every cycle); a FIFO in place of its log and of its policy (before:
    every cycle blocked for ever); a policy of 1.5 MiB. Each is refused or mended, said
    once, and the limit goes on following the artists."""
    with log_service(tmp_path, artists=2, headroom=1, hysteresis={"settle": 1}) as svc:
        farm, lid, lic, port, policy, db = svc.farm, svc.lid, svc.lic, svc.port, svc.policy, svc.db
        good = policy.read_text()

        def artists(n: int, then: int) -> None:  # the limit still follows them
            lic.set_artists("nuke_r", n)
            write_atomic(svc.status, lic.lmstat())
            wait_for(lambda: farm.limits[lid].max_count == then, what=f"maxCount {then}")

        wait_for(lambda: farm.limits[lid].max_count == 17, what="first write")
        for companion in ("-wal", "-shm"):
            os.unlink(f"{db}{companion}")
        artists(5, then=14)
        assert metric(scrape(port), "license_sync_history_lost") == 0
        garbled = lic.lmstat().replace("Total of 20 licenses", f"Total of {10**20} licenses")
        write_atomic(svc.status, garbled)
        wait_for(
            lambda: metric(scrape(port), "license_sync_source_up", source="lic") == 0,
            what="the impossible read held",
        )
        artists(6, then=13)  # read again, as it is
        for fifo in (svc.log, policy):  # opened to read, either would wait for a writer
            fifo.unlink()
            os.mkfifo(fifo)
        seen = cycles(port)
        wait_for(lambda: cycles(port) > seen + 2, what="cycles with FIFOs in place")
        text = scrape(port)
        assert metric(text, "license_sync_source_log_up", source="lic") == 0
        assert metric(text, "license_sync_policy_file_valid") == 0
        policy.unlink()
        policy.write_text(good + "# padding\n" * 150_000)  # 1.5 MiB, valid YAML
        artists(7, then=12)  # the last good policy still syncs
        assert metric(scrape(port), "license_sync_policy_file_valid") == 0
    out = svc.out
    assert svc.proc.returncode == 0 and "Traceback" not in out, out
    assert "another license-sync holds" not in out and "checkpointed into" in out, out
    assert "impossible read of nuke_r: a count of 100,000,000,000,000,000,000 is past" in out
    assert out.count("not a regular file") == 2, out  # the log's and the policy's, once each
    assert "the policy is over 1024 KiB" in out, out
    # a reader opened after it sees what was written since the WAL went: nothing lost
    assert '"new": 14' in run_cli("history", "--db", str(db), "--format", "json").stdout


def test_init_and_validate_refuse_a_count_past_what_deadline_takes(aws_env, tmp_path):
    """init starts no policy from a capture counting 10^20 licenses; validate refuses a
    reserve no limit could hold."""
    farm = FakeFarm(count_delay=0)
    farm.add_queue_with_limit("amount.nuke", 30)
    lic = FakeLicenseServer(None, [FakeFeature("nuke_r", 20)])
    capture = tmp_path / "garbled.txt"
    capture.write_text(lic.lmstat().replace("Total of 20 licenses", f"Total of {10**20} licenses"))
    with FakeDeadline(farm) as server:
        env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url}
        init = run_cli("init", "--capture", f"lic={capture}", "--farm", farm.farm_id,
                       "--region", "us-west-2", env=env)  # fmt: skip
    assert init.returncode == 1 and "past any a license server keeps" in init.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""\
farms: [{{id: {farm.farm_id}, region: us-west-2}}]
sources:
  lic: {{kind: flexlm, servers: ["27000@lic1"]}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: lic, feature: nuke_r}}]
    reserve: 10000000000000000000
""")
    check = run_cli("validate", str(policy))
    assert check.returncode == 1 and "past what Deadline counts" in check.stdout + check.stderr


def test_a_second_demo_in_the_same_folder_is_refused_before_it_writes_anything(tmp_path):
    """Before: the second demo rewrote the first's policy and fake tools to point at its
    own fakes, then was refused the history, and its fakes died with it."""
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "sync", "demo", "--interval", "1", "--cycles", "30",
         "--address", f"127.0.0.1:{port}", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: cycles(port) >= 1, 60, "the first demo's first cycle")
        kept = {p: p.read_bytes() for p in (tmp_path / "policy.yaml", tmp_path / "lmutil")}
        second = subprocess.run(
            [sys.executable, "-m", "sync", "demo", "--address", f"127.0.0.1:{free_port()}",
             "--workdir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert {p: p.read_bytes() for p in kept} == kept  # nothing of the first's rewritten
        assert second.returncode != 0 and "another license-sync demo runs in" in second.stderr
        seen = cycles(port)
        wait_for(lambda: cycles(port) > seen + 1, what="the first demo's cycles after")
    finally:
        first.kill()
        out = first.communicate()[0]
    assert "error" not in out.split("Ctrl-C to stop.")[-1], out


def test_a_hole_of_nuls_in_a_followed_log_is_skipped_not_held(aws_env, tmp_path):
    """A copytruncate can leave a NUL-filled hole with no newline: before, each cycle
    held all of it as one growing line (RSS up ~8 MiB a cycle without bound). Now a line
    past the bound is dropped to its end, counted, said once; the refusal after it is read."""
    with log_service(tmp_path) as svc:
        wait_for(lambda: svc.farm.limits[svc.lid].max_count == 20, what="first write")
        before = memory_mib(svc.proc.pid, "VmHWM")
        with svc.log.open("ab") as fh:
            fh.write(b"\0" * (24 << 20))
        wait_for(
            lambda: metric(scrape(svc.port), "license_sync_log_lines_skipped_total", source="lic"),
            what="the hole counted",
        )
        with svc.log.open("a") as fh:
            fh.write("\n" + denied("9:30:00", "ann@ws-01"))
        wait_for(
            lambda: metric(scrape(svc.port), "license_sync_denials_total", who="artist"),
            what="the refusal after the hole read",
        )
        grown = memory_mib(svc.proc.pid, "VmHWM") - before
    assert grown < 40, f"peak RSS grew {grown:.0f} MiB for a 24 MiB hole"
    assert svc.out.count("its log has lines over 65536 bytes") == 1, svc.out


def test_an_exporter_shows_a_garbled_listing_down_and_a_garbled_line_as_no_count(tmp_path):
    """Before: every `Users of` line garbled read as a source up with each feature 0 in use;
    now the source is down with why, and one garbled line among good ones shows no series
    for that feature rather than a 0."""
    good = (ROOT / "tests/fixtures/flexlm/two_vendors.txt").read_text()
    capture, port = tmp_path / "lmstat.txt", free_port()
    policy = tmp_path / "exporter.yaml"
    policy.write_text(f"""\
interval: 1s
history: {{path: {tmp_path / "h.db"}}}
metrics: {{address: "127.0.0.1:{port}"}}
sources:
  lic: {{kind: flexlm, servers: ["27000@flex1"], executable: {ROOT / "tests/bin/lmutil"}}}
""")
    one = good.replace("arnold:  (Total of 25", "arnold:  (T0tal 0f 25")  # one line garbled
    write_atomic(capture, one)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_LM_OUTPUT": str(capture)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--config", str(policy)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        text = wait_for(
            lambda: (t := scrape(port)) and metric(t, "license_sync_source_up", source="lic") and t
        )
        assert metric(text, "license_sync_license_in_use", feature="render") == 4
        assert metric(text, "license_sync_license_in_use", feature="arnold") is None  # not 0
        write_atomic(capture, good.replace("Total of", "T0tal 0f"))  # every line garbled
        wait_for(
            lambda: metric(scrape(port), "license_sync_source_up", source="lic") == 0,
            what="the garbled listing down",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    assert "no feature could be read" in out and "Traceback" not in out, out


def test_a_demo_of_a_huge_ceiling_or_a_capture_of_dev_zero_stays_in_bounds(tmp_path):
    """Before: `demo --policy` with a ceiling of 500,000,000 made a fake server of that
    many seats and died of MemoryError; a capture of /dev/zero read for ever."""
    policy = tmp_path / "p.yaml"
    policy.write_text("""\
interval: 1s
farms: [{id: farm-00000000000000000000000000000001, region: us-west-2}]
sources:
  lic: {kind: flexlm, servers: ["27000@lic1"]}
pools:
  nuke:
    limit: amount.nuke
    features: [{source: lic, feature: nuke_r}]
    ceiling: 500000000
""")

    def demo(*more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sync", "demo", "--policy", str(policy), "--cycles", "2",
             "--address", f"127.0.0.1:{free_port()}", "--workdir", str(tmp_path / "w"), *more],
            capture_output=True, text=True, timeout=120,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)),
        )  # fmt: skip

    ran = demo()
    assert ran.returncode == 0 and "Error" not in ran.stderr, ran.stdout + ran.stderr
    zero = demo("--capture", "lic=/dev/zero")
    assert zero.returncode == 1 and "/dev/zero is not a regular file" in zero.stderr


def api_calls(port: int) -> float:
    text = scrape(port)
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("license_sync_api_calls_total{")
    )


def test_a_flood_of_refusals_starts_one_cycle_and_is_counted_whole_in_a_few_rows(aws_env, tmp_path):
    """ann refused once starts a cycle; then 5,000 DENIED lines of ann over more than the
    debounce start none and ask Deadline nothing (before: a cycle every 3 s, Deadline
    calls 22 times the usual); bob refused starts the next. The history holds one row a
    cycle and artist with its count (before: a row a line, 150,000 in 30 s), and
    `history --denials` still says every refusal."""
    from sync.cycle.serve import REFUSAL_DEBOUNCE

    with log_service(tmp_path, interval="60s") as svc:
        wait_for(lambda: svc.farm.limits[svc.lid].max_count == 20, what="first write")
        with svc.log.open("a") as fh:
            fh.write(denied("9:30:00", "ann@ws-01"))
        wait_for(lambda: cycles(svc.port) == 2, what="the cycle ann's refusal starts")
        asked = api_calls(svc.port)
        with svc.log.open("a") as fh:
            fh.write(denied("9:30:01", "ann@ws-01") * 5000)
        time.sleep(REFUSAL_DEBOUNCE + 1.5)  # the flood goes on past the debounce (its pace)
        assert (cycles(svc.port), api_calls(svc.port)) == (2, asked)
        with svc.log.open("a") as fh:
            fh.write(denied("9:30:05", "bob@ws-02"))
        wait_for(lambda: cycles(svc.port) == 3, what="the cycle bob's refusal starts")
        wait_for(
            lambda: metric(scrape(svc.port), "license_sync_denials_total", who="artist") == 5002,
            what="every refusal counted",
        )
    with sqlite3.connect(svc.db) as conn:
        rows = conn.execute("select user, count from denials order by rowid").fetchall()
    (ann, one), (ann_again, flood), (bob, _) = rows  # users kept pseudonymised
    assert (one, flood, ann_again) == (1, 5000, ann) and bob != ann, rows
    said = run_cli("history", "--db", str(svc.db), "--denials").stdout
    assert "artists refused 5002 time(s)" in said


def follows(pid: int, path: Path) -> bool:
    """The process has the file now at `path` open: it follows the new one."""
    ino = os.stat(path).st_ino
    fds = Path(f"/proc/{pid}/fd")
    return any(_ino(fd) == ino for fd in fds.iterdir())


def _ino(fd: Path) -> int | None:
    try:
        return fd.stat().st_ino
    except OSError:
        return None


def test_a_log_rotated_twice_within_a_cycle_loses_no_refusal(aws_env, tmp_path):
    """Rotated by rename faster than the cycles come (here three files in one 60 s
    interval), a log lost the middle file's refusals: the cycle finished only the file it
    had open. Now the glance between cycles (every second) finishes each file it sees
    rotated away, and follows the new one; the artist refused in the last starts a cycle."""
    with log_service(tmp_path, interval="60s", farm_selector=RENDER_HOSTS) as svc:
        log = svc.log
        wait_for(lambda: svc.farm.limits[svc.lid].max_count == 20, what="first write")
        for n, who in enumerate(["render@render-000", "render@render-001", "ann@ws-01"]):
            with log.open("a") as fh:  # the farm's refusals start no cycle of their own
                fh.write(denied(f"9:3{n}:00", who))
            if n < 2:
                log.rename(tmp_path / "foundry.log.1")
                log.write_text(f" 9:3{n}:30 (foundry) TIMESTAMP 12/3/2026\n")
                wait_for(lambda: follows(svc.proc.pid, log), 5, "a glance to follow it")
        wait_for(
            lambda: metric(scrape(svc.port), "license_sync_denials_total", who="artist") == 1,
            what="the artist's refusal",
        )
        assert metric(scrape(svc.port), "license_sync_denials_total", who="farm") == 2
    assert "Traceback" not in svc.out, svc.out
