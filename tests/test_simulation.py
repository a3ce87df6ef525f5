"""The control-quality simulation and replay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sync.errors import PolicyError
from sync.policy import parse_policy
from sync.replay import replay
from sync.simulation.scenario import load_scenario
from sync.simulation.strategies import STRATEGIES, run
from tests.clirun import run_cli

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted((ROOT / "config/scenarios").glob("*.yaml"))
FARM = "farm-0123456789abcdef0123456789abcdef"


def test_the_four_scenarios_exist():
    names = {p.stem for p in SCENARIOS}
    assert {"quiet-night", "crunch-week", "flapping-server"} <= names
    assert any("day" in n for n in names)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_load_and_license_sync_beats_static_and_naive(path):
    sc = load_scenario(path)
    if sc.duration > 2 * 86400:
        sc = sc.model_copy(update={"duration": 86400.0})  # a day of the week is enough here
    r = {s: run(sc, s) for s in STRATEGIES}
    assert r["oracle"].denials == 0
    assert r["license-sync"].denials <= r["naive"].denials / 50
    assert r["license-sync"].tasks_done > r["static"].tasks_done
    assert r["license-sync"].idle_license_hours < r["static"].idle_license_hours
    assert r["license-sync"].artist_denials < r["naive"].artist_denials


def test_studio_day_control_quality():
    sc = load_scenario(ROOT / "config/scenarios/studio-day.yaml")
    r = {s: run(sc, s) for s in STRATEGIES}
    assert r["license-sync"].denials == 0
    assert r["naive"].denials > 0
    assert r["static"].idle_license_hours > 4 * r["license-sync"].idle_license_hours
    assert r["license-sync"].tasks_done / r["oracle"].tasks_done > 0.9


def test_simulation_is_deterministic():
    sc = load_scenario(ROOT / "config/scenarios/quiet-night.yaml")
    a, b = run(sc, "license-sync"), run(sc, "license-sync")
    assert (a.denials, a.tasks_done, a.writes, a.series) == (
        b.denials,
        b.tasks_done,
        b.writes,
        b.series,
    )
    other = run(sc.model_copy(update={"seed": sc.seed + 1}), "license-sync")
    assert other.series != a.series


def test_outage_never_raises_the_limit():
    sc = load_scenario(ROOT / "config/scenarios/flapping-server.yaml")
    r = run(sc.model_copy(update={"step": 10.0}), "license-sync")
    step = sc.step
    for (t0, m0, _, _), (t1, m1, _, _) in zip(r.series, r.series[1:], strict=False):
        in_outage = any(o.start <= t1 < o.end and o.start <= t0 for o in sc.outages)
        if in_outage:
            assert m1 <= m0, (t0, t1)
    assert step == 10.0


def test_bad_scenario_is_a_clear_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\ntotal: 0\nstatic_limit: 1\n")
    with pytest.raises(PolicyError, match="total"):
        load_scenario(p)


def test_simulate_cli(tmp_path):
    p = run_cli(
        "simulate",
        "--scenario",
        str(ROOT / "config/scenarios/quiet-night.yaml"),
        "--strategy",
        "static",
        "--strategy",
        "license-sync",
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("quiet night: 12 h, 30 licenses")
    assert [ln.split()[0] for ln in lines[3:]] == ["static", "license-sync"]


POLICY = """\
farms: [{id: FARM}]
sources: {s: {kind: static, features: {f: 1}}}
pools:
  nuke:
    limit: amount.nuke
    features: [{source: s, feature: f}]
    headroom: HEADROOM
    hysteresis: {settle: 1}
""".replace("FARM", FARM)


def policy_text(headroom: int) -> str:
    return POLICY.replace("HEADROOM", str(headroom))


def rows():
    base = {
        "pool": "nuke",
        "farm_id": FARM,
        "limit_ref": "amount.nuke",
        "limit_id": "limit-a",
        "status": "ok",
        "total": 20,
        "farm_use": 2,
        "reserve": 0,
        "current_count": 2,
    }
    return [
        {
            **base,
            "at": "2026-11-25T12:00:00+00:00",
            "in_use": 7,
            "current": 20,
            "target": 15,
            "new": 15,
        },
        {
            **base,
            "at": "2026-11-25T12:01:00+00:00",
            "in_use": 7,
            "current": 15,
            "target": 15,
            "new": None,
        },
    ]


def test_replay_same_policy_has_no_difference():
    policy = parse_policy(policy_text(0)).policy
    r = replay(rows(), policy)
    assert (r.decisions, r.differences, r.writes_before, r.writes_after) == (2, [], 1, 1)


def test_replay_shows_where_a_new_policy_differs():
    policy = parse_policy(policy_text(3)).policy
    r = replay(rows(), policy)
    assert [(d.was_new, d.now_new, d.now_target) for d in r.differences] == [
        (15, 12, 12),
        (None, 12, 12),
    ]


def test_replay_cli_against_a_real_history(tmp_path):
    from sync.history import History

    h = History(str(tmp_path / "h.db"))
    h.record_cycle({"started": "2026-11-25T12:00:00+00:00"}, [], rows(), [])
    h.close()
    cfg = tmp_path / "new.yaml"
    cfg.write_text(policy_text(3))
    p = run_cli("replay", "--history", str(tmp_path / "h.db"), "--config", str(cfg))
    assert p.returncode == 2, p.stderr
    assert "recorded target 15 write 15; with" in p.stdout
    assert "2 decisions replayed (0 skipped" in p.stdout and "2 differ" in p.stdout


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    sc = load_scenario(ROOT / "config/scenarios/quiet-night.yaml")
    from sync.simulation.report import plot

    out = tmp_path / "night.png"
    plot([run(sc, s) for s in ("static", "license-sync")], sc, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_control_quality_sweep_reports_each_seeded_day_and_the_headroom_trade_off():
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/control_quality.py"), "--seeds", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    sc = load_scenario(ROOT / "config/scenarios/studio-day.yaml")
    text = p.stdout.split("MET")[-1]
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[0] in {"1", "2"}:
            rows[int(cells[0])] = (int(cells[1]), float(cells[2]), int(cells[3]))
    for seed in (1, 2):
        day = sc.model_copy(update={"seed": seed})
        ls, oracle = run(day, "license-sync"), run(day, "oracle")
        assert rows[seed] == (
            ls.denials,
            round(100 * ls.tasks_done / oracle.tasks_done, 1),
            ls.artist_denials,
        )
    table = text.split("headroom  denials")[1].split("\n\n")[0]
    by_headroom = {int(ln.split()[0]): int(ln.split()[1]) for ln in table.splitlines()[1:]}
    assert set(by_headroom) == {0, 1, 2, 3}
    # no headroom: every artist arriving between two polls can take a racing task's license
    assert by_headroom[0] > 10 * max(1, by_headroom[1])
    # the same policy with the sync seeing everything at once, every step
    instant = [
        run(
            sc.model_copy(
                update={
                    "seed": seed,
                    "sync": sc.sync.model_copy(
                        update={"interval": sc.step, "tool_latency": 0.0, "count_delay": 0.0}
                    ),
                }
            ),
            "license-sync",
        )
        for seed in (1, 2)
    ]
    assert f"denials {sum(r.denials for r in instant)} on " in text.split("no lag")[1]


def test_simulate_days_sums_each_seeded_day(tmp_path):
    path = ROOT / "config/scenarios/quiet-night.yaml"
    argv = ["simulate", "--scenario", str(path), "--days", "3", "--seed", "5"]
    argv += ["--strategy", "naive", "--strategy", "oracle"]
    p = run_cli(*argv)
    assert p.returncode == 0, p.stderr
    assert "3 days, seeds 5-7:" in p.stdout
    rows = {ln.split()[0]: ln.split() for ln in p.stdout.split("seeds 5-7:")[1].splitlines()[2:]}
    sc = load_scenario(path)
    naive = [run(sc.model_copy(update={"seed": s}), "naive") for s in (5, 6, 7)]
    oracle = [run(sc.model_copy(update={"seed": s}), "oracle") for s in (5, 6, 7)]
    assert rows["naive"][1:4] == [
        "3",
        str(sum(r.denials for r in naive)),
        str(sum(1 for r in naive if r.denials)),
    ]
    assert rows["naive"][4] == f"{sum(r.tasks_done for r in naive) / 3:.0f}"
    mean = sum(100 * n.tasks_done / o.tasks_done for n, o in zip(naive, oracle, strict=True)) / 3
    assert rows["naive"][5] == f"{mean:.1f}%"
    assert rows["oracle"][2] == "0"


def test_simulate_days_must_be_positive():
    p = run_cli("simulate", "--scenario", str(SCENARIOS[0]), "--days", "0")
    assert p.returncode == 1
    assert "--days must be at least 1" in p.stderr
