"""The control-quality simulation and replay."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sync.offline.planner import replay
from sync.offline.simulation.scenario import load_scenario
from sync.offline.simulation.strategies import STRATEGIES, run, run_days
from sync.policy import parse_policy
from sync.values.errors import PolicyError
from tests.support.clirun import run_cli
from tests.support.paths import ROOT

SCENARIOS = sorted((ROOT / "sync/offline/simulation/scenarios").glob("*.yaml"))
FARM = "farm-0123456789abcdef0123456789abcdef"


def unshared(sc):
    """The scenario with its jobs not sharing the pool: what these tests look at does not
    need it, and sharing is most of a simulated day's time."""
    return sc.model_copy(update={"policy": {k: v for k, v in sc.policy.items() if k != "jobs"}})


def test_the_four_scenarios_exist():
    names = {p.stem for p in SCENARIOS}
    assert {"quiet-night", "crunch-week", "flapping-server"} <= names
    assert any("day" in n for n in names)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_load_and_license_sync_beats_static_and_naive(path):
    sc = unshared(load_scenario(path))
    if sc.duration > 2 * 86400:
        sc = sc.model_copy(update={"duration": 86400.0})  # a day of the week is enough here
    r = {s: run(sc, s) for s in ("static", "naive", "license-sync", "causal-oracle", "oracle")}
    assert r["oracle"].denials == r["causal-oracle"].denials == 0
    assert r["license-sync"].denials <= r["naive"].denials / 50
    assert r["license-sync"].task_hours > r["static"].task_hours
    assert r["license-sync"].idle_license_hours < r["static"].idle_license_hours
    assert r["license-sync"].artist_minutes_lost < r["naive"].artist_minutes_lost


def test_studio_day_control_quality():
    sc = unshared(load_scenario(ROOT / "sync/offline/simulation/scenarios/studio-day.yaml"))
    shown = ("static", "naive", "license-sync", "license-sync-preempt", "oracle")
    r = {s: run(sc, s) for s in shown}
    assert r["license-sync"].denials <= 5 < r["naive"].denials
    assert r["static"].idle_license_hours > 4 * r["license-sync"].idle_license_hours
    assert r["license-sync"].task_hours / r["oracle"].task_hours > 0.9
    assert r["license-sync"].artist_minutes_lost < r["static"].artist_minutes_lost / 5
    # preemption gives licenses back to artists, at a cost in farm work it reports
    preempt = r["license-sync-preempt"]
    assert preempt.artist_minutes_lost < r["license-sync"].artist_minutes_lost
    assert preempt.preempted_task_minutes > 0


def test_simulation_is_deterministic():
    sc = load_scenario(ROOT / "sync/offline/simulation/scenarios/quiet-night.yaml")
    a, b = run(sc, "license-sync"), run(sc, "license-sync")
    assert (a.denials, a.tasks_done, a.writes, a.series) == (
        b.denials,
        b.tasks_done,
        b.writes,
        b.series,
    )
    other = run(sc.model_copy(update={"seed": sc.seed + 1}), "license-sync")
    assert other.series != a.series


def _studio_day(**sync: float):
    sc = unshared(load_scenario(ROOT / "sync/offline/simulation/scenarios/studio-day.yaml"))
    return sc.model_copy(update={"sync": sc.sync.model_copy(update=sync)})


def test_a_refusal_read_from_the_log_starts_a_cycle():
    # polled every 20 min, the plain law leaves refused artists waiting for the next
    # poll; reading the log, a refusal brings the cycle `log_latency` after it
    sc = _studio_day(interval=1200.0)
    plain, denials = run(sc, "license-sync"), run(sc, "license-sync-denials")
    assert denials.writes > plain.writes
    assert denials.artist_minutes_lost < plain.artist_minutes_lost / 2
    slow = run(_studio_day(interval=1200.0, log_latency=600.0), "license-sync-denials")
    assert slow.artist_minutes_lost > denials.artist_minutes_lost


def test_an_artists_checkout_leaving_less_free_than_the_pool_keeps_starts_a_cycle():
    # headroom 4: artists are seldom refused, but their checkouts often leave fewer than
    # 4 free; each such checkout read from the log brings a cycle, not only refusals
    sc = _studio_day(interval=600.0)
    sc = sc.model_copy(update={"policy": {**sc.policy, "headroom": 4}})
    r = run(sc, "license-sync-denials-preempt")
    assert r.log_cycles > 2 * r.refusals
    refusals_only = sc.model_copy(
        update={"sync": sc.sync.model_copy(update={"checkout_news": False})}
    )
    before = run(refusals_only, "license-sync-denials-preempt")
    assert 0 < before.log_cycles <= before.refusals  # as before: a refusal's cycle only
    assert run(sc, "license-sync-preempt").log_cycles == 0  # no log read, no such cycle
    # a cycle started so restores the licenses kept free: fewer minutes lost than polling
    assert r.artist_minutes_lost < run(sc, "license-sync-preempt").artist_minutes_lost


def test_a_refused_artist_is_seen_in_the_log_only_as_lmstat_and_rlmstat_list_no_retry():
    # no reserve, no headroom: preemption runs only for artists refused, whom only the
    # log shows (a status tool lists a queued request, never a client that tries again)
    sc = _studio_day()
    sc = sc.model_copy(update={"policy": {**sc.policy, "headroom": 0, "reserve": 0}})
    status_only, with_log = run(sc, "license-sync-preempt"), run(sc, "license-sync-denials-preempt")
    assert status_only.artist_denials > 0
    assert status_only.preempted_task_minutes == 0 < with_log.preempted_task_minutes


def test_the_bounds_ladder_from_what_no_server_allows_to_what_a_real_one_does():
    sc = _studio_day()
    r = {s: run(sc, s) for s in ("causal-oracle", "causal-refused", "causal-h1", "causal-h1-race")}
    # served only once refused: every refused artist waits a minute for their next try
    assert r["causal-refused"].artist_minutes_lost > 5 * r["causal-oracle"].artist_minutes_lost
    assert r["causal-refused"].artist_denials > 10 * r["causal-oracle"].artist_denials
    # one license kept free and re-freed at once: refusals all but go, farm work is paid
    assert r["causal-h1"].artist_minutes_lost < r["causal-refused"].artist_minutes_lost / 5
    assert r["causal-h1"].task_hours < r["causal-refused"].task_hours
    # its tasks racing as real ones do: the license kept free is sometimes a task's
    assert r["causal-h1-race"].artist_minutes_lost >= r["causal-h1"].artist_minutes_lost
    assert r["causal-h1"].denials == r["causal-refused"].denials == 0
    assert all(x.writes == 0 for x in r.values())  # bounds, not controllers


def test_a_paused_queue_starts_nothing():
    # artists alone fill the pool at the peak: `hold_one` keeps a farm task on the pool,
    # `pause` stops the queue, so no task starts while the queue is stopped
    sc = _studio_day()
    sc = sc.model_copy(update={"artists": sc.artists.model_copy(update={"peak": 32})})
    hold = run(
        sc.model_copy(update={"policy": {**sc.policy, "on_exhausted": "hold_one"}}),
        "license-sync",
    )
    paused = run(sc, "license-sync")  # pause: the default

    # how often the farm holds a license while the pool is exhausted (maxCount 1); the
    # tasks running when the queue stops may finish, as Deadline lets them
    def farm_holds_when_exhausted(r) -> float:
        farm = [f for (_, m, f, _) in r.series if m == 1]
        assert len(farm) > 20, "the pool never ran out: the test shows nothing"
        return sum(1 for f in farm if f >= 1) / len(farm)

    assert farm_holds_when_exhausted(hold) >= 0.8
    assert farm_holds_when_exhausted(paused) <= 0.5


def test_outage_never_raises_the_limit():
    sc = load_scenario(ROOT / "sync/offline/simulation/scenarios/flapping-server.yaml")
    r = run(sc.model_copy(update={"step": 10.0}), "license-sync")
    step = sc.step
    for (t0, m0, _, _), (t1, m1, _, _) in zip(r.series, r.series[1:], strict=False):
        in_outage = any(o.start <= t1 < o.end and o.start <= t0 for o in sc.outages)
        if in_outage:
            assert m1 <= m0, (t0, t1)
    assert step == 10.0


def test_bad_scenario_is_a_clear_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\ntotal: 0\nstatic_limit: 1\nfarm: {workers: 5, wokers: 3}\n")
    with pytest.raises(PolicyError) as e:
        load_scenario(p)
    assert [str(x) for x in e.value.problems] == [  # file:line:col, as a policy's
        f"{p}:2:8: total: Input should be greater than or equal to 1 (got 0)",
        f"{p}:4:20: unknown key 'wokers' in farm; did you mean 'workers'?",
    ]


def test_simulate_cli(tmp_path):
    p = run_cli(
        "simulate",
        "--scenario",
        str(ROOT / "sync/offline/simulation/scenarios/quiet-night.yaml"),
        "--strategy",
        "static",
        "--strategy",
        "license-sync",
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("quiet night: 12 h, 30 licenses")
    rows, legend = p.stdout.split("\n\n")[1:3]
    assert [ln.split()[0] for ln in rows.splitlines()[1:]] == ["static", "license-sync"]
    assert [ln.split(":")[0] for ln in legend.splitlines()] == ["static", "license-sync"]


POLICY = """\
farms: [{id: FARM}]
sources: {s: {kind: static, features: {f: 100}}}
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


def test_replay_takes_a_recorded_farm_use_of_zero_as_zero():
    # the farm held nothing by its selector while currentCount still counted 3 (it lags)
    first, second = rows()
    recorded = [
        {**first, "farm_use": 0, "current_count": 3, "target": 13, "new": 13},
        {**second, "farm_use": 0, "current_count": 3, "current": 13, "target": 13},
    ]
    r = replay(recorded, parse_policy(policy_text(0)).policy)  # the policy that made them
    assert (r.decisions, r.differences) == (2, [])


def test_replay_shows_where_a_new_policy_differs():
    policy = parse_policy(policy_text(3)).policy
    r = replay(rows(), policy)
    assert [(d.was_new, d.now_new, d.now_target) for d in r.differences] == [
        (15, 12, 12),
        (None, 12, 12),
    ]


def test_replay_evaluates_a_learned_reserve_from_the_rows_before_each_one():
    # three Mondays recorded: artists jump from 2 to 12 at 09:00; the farm held 2
    recorded = []
    base = rows()[1]
    for monday in ("2026-11-02", "2026-11-09", "2026-11-16"):
        for minute in range(8 * 60, 10 * 60):
            in_use = 2 + (12 if minute >= 9 * 60 else 2)
            at = f"{monday}T{minute // 60:02d}:{minute % 60:02d}:00+00:00"
            target = 20 - (in_use - 2)
            recorded.append(
                {**base, "at": at, "in_use": in_use, "external": in_use - 2,
                 "current": target, "target": target, "new": None}
            )  # fmt: skip
    text = policy_text(0).replace(
        "headroom: 0", "headroom: 0\n    reserve: {default: 0, learn: {drain: 15m, samples: 30}}"
    )
    r = replay(recorded, parse_policy(text).policy)
    # the first Monday has no history to learn from; later ones come down before 09:00
    early = [d for d in r.differences if d.at[11:16] < "09:00"]
    assert early and all(d.at >= "2026-11-09" for d in early)
    assert all(d.now_target < d.was_target for d in early)


def test_replay_cli_against_a_real_history(tmp_path):
    from sync.edges.history import History

    h = History(str(tmp_path / "h.db"))
    h.record_cycle({"started": "2026-11-25T12:00:00+00:00"}, [], rows(), [])
    h.close()
    cfg = tmp_path / "new.yaml"
    cfg.write_text(policy_text(3))
    p = run_cli("replay", "--db", str(tmp_path / "h.db"), "--config", str(cfg))
    assert p.returncode == 2, p.stderr
    assert "recorded target 15 write 15; with" in p.stdout
    assert "2 decisions replayed (0 skipped" in p.stdout and "2 differ" in p.stdout
    typo = run_cli("replay", "--history", str(tmp_path / "h.db"), "--config", str(cfg),
                   "--pool", "nuk")  # fmt: skip
    assert typo.returncode == 1 and "no pool 'nuk' in" in typo.stderr


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib: pip install '.[plot]'")
    sc = load_scenario(ROOT / "sync/offline/simulation/scenarios/quiet-night.yaml")
    from sync.offline.simulation.report import plot

    out = tmp_path / "night.png"
    plot([run(sc, s) for s in ("static", "license-sync")], sc, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def benchmark(script: str, scenario) -> dict:
    """A benchmark's figures for one seeded day of `scenario`, as it prints them."""
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--days", "1",
         "--scenario", str(scenario), "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_race_targets_say_each_target_met_or_not_against_causal_h1_race():
    path = ROOT / "sync/offline/simulation/scenarios/quiet-night.yaml"
    out = benchmark("race_targets.py", path)["quiet-night"]
    bound = out["strategies"]["causal-h1-race"]
    assert len(out["targets"]) == 6  # three targets, without and with preemption
    failures = {k: v for k, v in out["targets"].items() if "failures" in k}
    for what, v in failures.items():
        strategy = what.split(":")[0]
        assert v["met"] == (out["strategies"][strategy]["farm_denials"] <= 20)
    assert bound["writes"] == 0 and "legend" not in bound  # the benchmark's own figures


def test_control_quality_reports_every_strategy_its_targets_and_the_frontier(tmp_path):
    # studio-day to 14:00: the night, the ramp and the peak's first hours (the whole day
    # costs the suite seconds; the benchmark itself runs it whole)
    path = tmp_path / "studio-day.yaml"
    day = (ROOT / "sync/offline/simulation/scenarios/studio-day.yaml").read_text()
    path.write_text(day.replace("duration: 24h", "duration: 14h"))
    out = benchmark("control_quality.py", path)
    sc = load_scenario(path).model_copy(update={"seed": 1})
    days = run_days(sc, ["license-sync", "oracle"], 1)
    ls = out["studio-day"]["license-sync"]
    assert ls["farm_denials"] == sum(r.denials for r in days["license-sync"])
    assert ls["artist_minutes_lost"] == round(
        sum(r.artist_minutes_lost for r in days["license-sync"]), 1
    )
    assert set(out["studio-day"]) == set(STRATEGIES)
    assert len(out["studio-day targets"]) == 5
    assert len(out["studio-day denial targets"]) == 6  # issue #26: 3 a denial strategy
    caps = out["studio-day job caps"]
    assert (
        caps["slack 0"]["job_cap_moves_per_hour"]
        > 3 * caps["slack 2"]["job_cap_moves_per_hour"]
        > 0
    )
    front = out["studio-day frontier"]
    # no headroom: every artist arriving between two polls can take a racing task's license
    assert front["headroom 0"]["farm_denials"] > 5 * max(1, front["headroom 1"]["farm_denials"])
    # a higher quantile of the learned rise keeps more back: fewer artist-minutes lost
    assert (
        front["learned q0.9"]["artist_minutes_lost"] < front["learned q0.5"]["artist_minutes_lost"]
    )


def test_simulate_days_adds_up_each_seeded_day_as_json():
    path = ROOT / "sync/offline/simulation/scenarios/quiet-night.yaml"
    argv = ["simulate", "--scenario", str(path), "--days", "3", "--seed", "5", "--format", "json"]
    p = run_cli(*argv, "--strategy", "naive", "--strategy", "oracle")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["seeds"] == [5, 6, 7]
    sc = load_scenario(path)
    naive = [run(sc.model_copy(update={"seed": s}), "naive") for s in (5, 6, 7)]
    got = out["strategies"]["naive"]
    assert got["farm_denials"] == sum(r.denials for r in naive)
    assert got["artists_gave_up"] == sum(r.artists_gave_up for r in naive)
    assert got["task_hours"] == round(sum(r.task_hours for r in naive), 1)
    assert got["writes"] == sum(r.writes for r in naive)
    assert set(got) >= {
        "artist_minutes_lost", "artists_gave_up", "farm_denials", "task_hours",
        "preempted_task_minutes", "writes",
    }  # fmt: skip
    assert out["strategies"]["oracle"]["farm_denials"] == 0


def test_simulate_runs_a_real_policy_pool(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "farms: [{id: farm-0123456789abcdef0123456789abcdef}]\n"
        "sources: {lic: {kind: static, features: {nuke_r: 30}}}\n"
        "pools:\n"
        "  nuke: {limit: amount.nuke, features: [{source: lic, feature: nuke_r}],"
        " headroom: 3}\n"
    )
    path = str(ROOT / "sync/offline/simulation/scenarios/studio-day.yaml")
    own = run_cli("simulate", "--scenario", path, "--strategy", "license-sync", "--format", "json")
    real = run_cli(
        "simulate", "--scenario", path, "--strategy", "license-sync", "--format", "json",
        "--policy", str(policy), "--pool", "nuke",
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    a = json.loads(own.stdout)["strategies"]["license-sync"]
    b = json.loads(real.stdout)["strategies"]["license-sync"]
    assert b["task_hours"] < a["task_hours"]  # headroom 3 keeps more back than the scenario's 1
    bad = run_cli("simulate", "--scenario", path, "--policy", str(policy), "--pool", "maya")
    assert bad.returncode == 1 and "no pool 'maya'" in bad.stderr


def test_refused_artists_retry_every_minute_and_give_up_after_ten():
    sc = load_scenario(ROOT / "sync/offline/simulation/scenarios/studio-day.yaml").model_copy(
        update={"static_limit": 30}  # the farm takes every license it can
    )
    r = run(sc, "static")
    assert r.artists_gave_up > 0 and r.artist_denials > r.artists_gave_up
    # a refused artist waits whole minutes, ten at the most
    assert r.artist_minutes_lost <= 10 * r.artist_denials + 1e-6


def test_the_causal_oracle_serves_artists_by_requeueing_the_youngest_task():
    sc = unshared(load_scenario(ROOT / "sync/offline/simulation/scenarios/studio-day.yaml"))
    r = run(sc, "causal-oracle")
    assert r.denials == 0
    assert r.preempted_task_minutes > 0
    assert r.artist_minutes_lost <= run(sc, "oracle").artist_minutes_lost


def test_simulate_days_must_be_positive():
    p = run_cli("simulate", "--scenario", str(SCENARIOS[0]), "--days", "0")
    assert p.returncode == 1
    assert "--days must be at least 1" in p.stderr


def test_simulate_without_a_scenario_runs_every_one_the_package_ships(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # anywhere: the scenarios are in the package, not a checkout
    one = run_cli("simulate", "--scenario", "quiet-night", "--strategy", "oracle")
    assert one.returncode == 0 and one.stdout.startswith("quiet night:"), one.stderr
    bad = run_cli("simulate", "--scenario", "studio-dya")
    assert (
        bad.returncode == 1
        and "crunch-week, flapping-server, fx-two-sites, quiet-night" in bad.stderr
    )
    p = run_cli("simulate", "--strategy", "oracle", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert sorted(s["scenario"] for s in json.loads(p.stdout)) == sorted(
        load_scenario(path).name for path in SCENARIOS
    )


def test_the_table_says_what_each_strategy_knows_and_the_json_carries_it():
    args = [
        "simulate",
        "--scenario",
        str(ROOT / "sync/offline/simulation/scenarios/quiet-night.yaml"),
    ]
    p = run_cli(*args, "--strategy", "causal-h1-race", "--strategy", "oracle")
    assert p.returncode == 0, p.stderr
    assert "oracle: knows every artist session of the day: bounds the farm's task-hours" in (
        p.stdout
    )
    assert "causal-h1-race: as causal-h1, its tasks checking out" in p.stdout
    doc = json.loads(run_cli(*args, "--strategy", "causal-refused", "--format", "json").stdout)
    legend = doc["strategies"]["causal-refused"]["legend"]
    assert legend.startswith("knows the present at once; frees a license the instant")
    assert doc["strategies"]["causal-refused"]["writes"] == 0  # a bound writes nothing
