from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import yaml

from sync.policy import PolicyErrors, json_schema, load_policy, parse_duration, parse_policy
from tests.support.clirun import run_cli
from tests.support.paths import ROOT

FARM = "farm-0123456789abcdef0123456789abcdef"

GOOD = f"""\
farms:
  - id: {FARM}
sources:
  adsk: {{kind: flexlm, servers: ["27000@lic1"]}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: adsk, feature: nuke_r}}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyErrors) as e:
        parse_policy(text, "p.yaml")
    return [str(p) for p in e.value.problems]


def test_example_policy_is_valid():
    loaded = load_policy(ROOT / "config/policy.example.yaml")
    assert set(loaded.policy.pools) == {"nuke", "maya"}
    assert loaded.policy.pools["nuke"].reserve.schedule[0].value == 6


def test_example_policy_carries_the_schema_modeline():
    first = (ROOT / "config/policy.example.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=policy.schema.json"


def test_committed_schema_matches_the_models():
    committed = json.loads((ROOT / "config/policy.schema.json").read_text())
    assert committed == json_schema(), "run: license-sync schema > config/policy.schema.json"


def test_minimal_policy_defaults():
    p = parse_policy(GOOD).policy
    pool = p.pools["nuke"]
    assert (p.interval, pool.floor, pool.ceiling, pool.on_stale, pool.on_exhausted) == (
        60.0,
        1,
        None,
        "hold",
        "pause",  # an exhausted pool stops its queues (issue #39: no task started to fail)
    )
    assert pool.hysteresis.settle == 2


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("30d", 2592000.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "-1", -1, "1y", True, None, "m"])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("    limit: amount.nuke\n", "    limit: amount.nuke\n    hedroom: 2\n"),
            "p.yaml:8:5: unknown key 'hedroom' in pools.nuke; did you mean 'headroom'?",
        ),
        (
            ("  - id: ", "  - regoin: x\n    id: "),
            "p.yaml:2:5: unknown key 'regoin' in farms.0; did you mean 'region'?",
        ),
        (
            ('["27000@lic1"]', '["lic1"]'),
            "p.yaml:4:34: sources.adsk.servers.0: 'lic1' is not port@host (e.g. 27000@lic1)",
        ),
        (
            ("source: adsk", "source: adks"),
            "p.yaml:8:25: pool 'nuke' names source 'adks', which is not defined; "
            "did you mean 'adsk'?",
        ),
        (
            ("kind: flexlm", "kind: lmx"),
            "p.yaml:4:9: sources.adsk: kind 'lmx' is not one of flexlm, rlm, command, static",
        ),
        (
            ("    limit: amount.nuke\n", "    limit: amount.nuke\n    floor: 5\n    ceiling: 3\n"),
            "p.yaml:8:12: pool 'nuke': floor 5 is above ceiling 3",
        ),
        (
            ("    limit: amount.nuke\n", "    limit: amount.nuke\n    interval: 5\n"),
            "p.yaml:8:5: unknown key 'interval' in pools.nuke; allowed here: farm, limit, limits, "
            "features, uncounted, farm_selector, reserve, headroom, floor, ceiling, hysteresis, "
            "on_stale, stale_after, on_exhausted, preempt, jobs",
        ),
        (
            ("    limit: amount.nuke\n", "    limit: amount.nuke\n    stale_after: soon\n"),
            "p.yaml:8:18: pools.nuke.stale_after: 'soon' is not a duration "
            "(use e.g. 60s, 5m, 1h, 30d)",
        ),
        (
            (
                "    features: [{source: adsk, feature: nuke_r}]\n",
                "    features: [{source: adsk, feature: nuke_r}]\n  headroom: 2\n",
            ),
            "p.yaml:9:13: pools.headroom: 'headroom' is a key of each entry here, not an "
            "entry: indent it under one of them",
        ),
        (
            (
                "    limit: amount.nuke\n",
                "    limit: amount.nuke\n    hysteresis:\n    settle: 3\n",
            ),
            "p.yaml:9:5: unknown key 'settle' in pools.nuke; it is a key of 'hysteresis': "
            "indent it under that key",
        ),
        (
            ("kind: flexlm", "kind: flexlmm"),
            "p.yaml:4:9: sources.adsk: kind 'flexlmm' is not one of flexlm, rlm, command, "
            "static; did you mean 'flexlm'?",
        ),
        (
            ("0123456789abcdef0123456789abcdef", "123"),
            "p.yaml:2:9: farms.0.id: 'farm-123' is not a Deadline farm id: 'farm-' and 32 hex "
            "digits, as the Deadline console and `aws deadline list-farms` show it "
            "(e.g. farm-0123456789abcdef0123456789abcdef)",
        ),
        (
            ("    limit: amount.nuke\n", "    limit: amount.nuke\n    floor: 0\n"),
            "p.yaml:8:12: pools.nuke.floor: Input should be greater than or equal to 1 (got 0)",
        ),
    ],
)
def test_errors_name_file_line_col_key_and_value(edit, expected):
    old, new = edit
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    assert expected in problems(text)


def test_a_quoted_count_is_a_count():
    """`reserve: "3"` reads as 3, as `headroom: "3"` already did: YAML's quotes are not a
    TD's intent."""
    pool = parse_policy(
        GOOD.replace("    limit: amount.nuke\n", '    limit: amount.nuke\n    reserve: "3"\n', 1)
    ).policy.pools["nuke"]
    assert pool.reserve.default == 3


def test_a_limit_belongs_to_one_pool_only():
    text = GOOD + "  nuke2:\n    limit: amount.nuke\n    features: [{source: adsk, feature: x}]\n"
    [msg] = problems(text)
    assert msg.startswith("p.yaml:10:12: limit 'amount.nuke' of")
    assert "already in pool 'nuke'" in msg


def test_several_farms_need_pool_farm():
    text = GOOD.replace(f"  - id: {FARM}\n", f"  - id: {FARM}\n  - id: farm-{'1' * 32}\n")
    assert any("must name its 'farm'" in m for m in problems(text))


@pytest.mark.parametrize("regex", ["(a+)+$", "(x*)*", "([a-z]+)*y"])
def test_catastrophic_regex_rejected(regex):
    text = GOOD.replace(
        "    limit: amount.nuke\n",
        f"    limit: amount.nuke\n    farm_selector: {{hosts: ['{regex}']}}\n",
    )
    assert any("nests quantifiers" in m for m in problems(text))


def test_invalid_regex_rejected():
    text = GOOD.replace(
        "    limit: amount.nuke\n",
        "    limit: amount.nuke\n    farm_selector: {hosts: ['render-(']}\n",
    )
    assert any("not a valid regular expression" in m for m in problems(text))


@pytest.mark.parametrize("text", ["", "- a list\n", "farms: [\n", "key: : bad\n"])
def test_not_a_policy(text):
    [msg] = problems(text)
    assert msg.startswith("p.yaml:")


def test_yaml_syntax_error_has_position():
    [msg] = problems(GOOD.replace("features: [{", "features: [{{"))
    assert msg.startswith("p.yaml:7:") or msg.startswith("p.yaml:8:")


def test_reserve_shorthands():
    p = parse_policy(
        GOOD.replace("    limit: amount.nuke\n", "    limit: amount.nuke\n    reserve: 10%\n")
    ).policy
    assert p.pools["nuke"].reserve.default == "10%"
    p = parse_policy(
        GOOD.replace("    limit: amount.nuke\n", "    limit: amount.nuke\n    reserve: 3\n")
    ).policy
    assert p.pools["nuke"].reserve.default == 3


def window(days="mon-fri", hours="09:00-19:00", tz="Europe/London"):
    text = GOOD.replace(
        "    limit: amount.nuke\n",
        "    limit: amount.nuke\n    reserve: {default: 1, schedule: "
        f"[{{days: '{days}', hours: '{hours}', tz: {tz}, value: 6}}]}}\n",
    )
    return parse_policy(text).policy.pools["nuke"].reserve.schedule[0]


@pytest.mark.parametrize(
    ("when", "active"),
    [
        (datetime(2026, 7, 1, 8, 30, tzinfo=UTC), True),  # Wed 09:30 BST
        (datetime(2026, 7, 1, 7, 59, tzinfo=UTC), False),  # 08:59 BST
        (datetime(2026, 1, 7, 9, 0, tzinfo=UTC), True),  # Wed 09:00 GMT
        (datetime(2026, 1, 7, 19, 0, tzinfo=UTC), False),  # 19:00 GMT: the end is exclusive
        (datetime(2026, 7, 4, 12, 0, tzinfo=UTC), False),  # Saturday
    ],
)
def test_schedule_window_in_its_time_zone(when, active):
    assert window().active(when) is active


def test_overnight_window_belongs_to_the_day_it_starts():
    w = window(days="fri", hours="22:00-06:00", tz="UTC")
    assert w.active(datetime(2026, 11, 27, 23, 0, tzinfo=UTC))  # Fri 23:00
    assert w.active(datetime(2026, 11, 28, 5, 0, tzinfo=UTC))  # Sat 05:00, Friday's night
    assert not w.active(datetime(2026, 11, 28, 23, 0, tzinfo=UTC))  # Sat 23:00


def test_validate_cli_reports_every_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("source: adsk", "source: adks"))
    p = run_cli("validate", str(good), str(bad))
    assert p.returncode == 1
    assert f"{good}: ok (1 pool, 1 sources)" in p.stdout
    assert p.stderr.startswith(f"{bad}:8:25: pool 'nuke' names source 'adks'")
    assert run_cli("validate", str(good)).returncode == 0


def test_validate_says_what_an_hour_range_past_midnight_means(tmp_path):
    path = tmp_path / "night.yaml"
    path.write_text(
        GOOD.replace(
            "    limit: amount.nuke\n",
            "    limit: amount.nuke\n    reserve:\n      schedule:\n"
            "        - {days: fri, hours: '22:00-06:00', value: 2}\n",
        )
    )
    p = run_cli("validate", str(path))
    assert p.returncode == 0, p.stderr
    assert (
        f"{path}:10:30: note: pool 'nuke': hours 22:00-06:00 run past midnight: the window "
        "opens at 22:00 on fri (UTC) and closes at 06:00 the next morning"
    ) in p.stdout
    assert "note:" not in run_cli("validate", "-q", str(path)).stdout
    day = path.read_text().replace("22:00-06:00", "06:00-22:00")
    path.write_text(day)
    assert "past midnight" not in run_cli("validate", str(path)).stdout


def test_validate_says_what_a_pool_without_a_farm_selector_trusts(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text(GOOD)
    out = run_cli("validate", str(plain)).stdout
    assert "note: pool 'nuke' has no farm_selector" in out and "currentCount" in out
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text(
        GOOD.replace(
            "limit: amount.nuke\n", "limit: amount.nuke\n    farm_selector: {hosts: [r-]}\n"
        )
    )
    out = run_cli("validate", str(chosen)).stdout
    assert "ok (1 pool" in out and "farm_selector" not in out


def test_validate_missing_file():
    p = run_cli("validate", "/nonexistent.yaml")
    assert p.returncode == 1
    assert "/nonexistent.yaml:1:1: cannot read the policy" in p.stderr


def test_schema_cli_prints_json_schema():
    p = run_cli("schema")
    schema = json.loads(p.stdout)
    assert schema["title"] == "license-sync policy"
    assert schema["required"] == ["sources"]  # no farms and no pools: an exporter only


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_is_refused_before_it_is_expanded():
    assert len(BOMB) < 400  # 9**9 values once expanded
    [msg] = problems(BOMB)
    assert "aliases add more than 100000 values" in msg


def test_a_large_plain_policy_is_no_alias_bomb():
    """Over 100,000 values written out (a farm's 10,000 pools would be): counted is what
    aliases add, not what the text holds."""
    hosts = ", ".join(['"^render-"'] * 101_000)
    text = GOOD.replace(
        "    features: [", f"    farm_selector: {{hosts: [{hosts}]}}\n    features: [", 1
    )
    loaded = parse_policy(text, "p.yaml")
    assert len(loaded.policy.pools["nuke"].farm_selector.hosts) == 101_000


def test_a_few_aliases_are_fine():
    text = GOOD.replace("features: [", "features: &f [") + "  nuke2:\n    limit: amount.x\n"
    text += "    features: *f\n"
    assert set(parse_policy(text, "p.yaml").policy.pools) == {"nuke", "nuke2"}


@pytest.mark.parametrize(
    "edit, where",
    [
        ("interval: .inf\n", "interval"),
        ("interval: .nan\n", "interval"),
        ("interval: 1e20\n", "interval"),
        ("interval: 2h\n", "interval"),
        ("history: {keep: 1000000d}\n", "history.keep"),
        ("history: {keep: 10s}\n", "history.keep"),
    ],
)
def test_durations_that_would_wedge_the_service_are_refused(edit, where):
    assert any(where in p for p in problems(edit + GOOD))


@pytest.mark.parametrize("timeout", ["1000000", "10m", "0"])
def test_a_source_timeout_is_bounded(timeout):
    text = GOOD.replace('servers: ["27000@lic1"]', f'servers: ["27000@lic1"], timeout: {timeout}')
    assert any("sources.adsk" in p and "timeout" in p for p in problems(text))


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    text = GOOD + "  nuke:\n    limit: amount.maya\n    features: [{source: adsk, feature: m}]\n"
    with pytest.raises(PolicyErrors) as e:
        parse_policy(text, "p.yaml")
    [problem] = e.value.problems
    assert str(problem) == "p.yaml:9:3: duplicate key 'nuke' (first at line 6): give it once"
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    p = run_cli("validate", str(policy))
    assert p.returncode == 1 and "duplicate key 'nuke'" in p.stderr


# -- the JSON Schema: what an editor checks must agree with validate ---------------------------


def _schema_errors(text: str) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema())
    return [e.message for e in validator.iter_errors(yaml.safe_load(text))]


def _valid_policies() -> dict[str, str]:
    from sync.commands.demo import POLICY as DEMO

    demo = DEMO.format(
        interval=5.0, history="/tmp/h.db", address="127.0.0.1:9462", farm=FARM,
        lmutil="/bin/lmutil", rlmutil="/bin/rlmutil", endpoint="http://127.0.0.1:40363",
        log="/tmp/foundry.log", rlm_log="/tmp/adskflex.rlmlog",
    )  # fmt: skip
    return {
        "example": (ROOT / "config/policy.example.yaml").read_text(),
        "demo": demo,
        "tests": GOOD,
        "durations, percentages, a bare reserve": GOOD.replace(
            "    limit: amount.nuke\n",
            "    limit: amount.nuke\n    reserve: 10%\n    stale_after: 90s\n",
        )
        + "interval: 1.5m\nhistory: {path: h.db, keep: 30d}\n",
        "a reserve of a count": GOOD.replace(
            "    limit: amount.nuke\n", "    limit: amount.nuke\n    reserve: 2\n"
        ),
        "a learned reserve and preemption": GOOD.replace(
            "    limit: amount.nuke\n",
            "    limit: amount.nuke\n    reserve: {default: 1, learn: {drain: 10m}}\n"
            "    preempt: {enabled: true, younger_than: 15m}\n",
        ),
        "rlm and command sources with timeouts": GOOD.replace(
            "  adsk: {kind: flexlm",
            "  r: {kind: rlm, servers: ['5053@rlm1'], timeout: 30s}\n"
            "  c: {kind: command, command: [/bin/report], timeout: 1m}\n  adsk: {kind: flexlm",
        ),
    }


@pytest.mark.parametrize("name", list(_valid_policies()))
def test_the_schema_accepts_every_policy_validate_accepts(name):
    text = _valid_policies()[name]
    parse_policy(text, "p.yaml")  # validate accepts it
    assert _schema_errors(text) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    limit: amount.nuke\n", "    limit: amount.nuke\n    hedroom: 2\n"),  # unknown key
        ("kind: flexlm", "kind: lmx"),  # not a kind of source
        ('["27000@lic1"]', '["lic1"]'),  # not port@host
        ("    limit: amount.nuke\n", "    limit: amount.nuke\n    stale_after: soon\n"),
        ("    limit: amount.nuke\n", "    limit: amount.nuke\n    floor: 0\n"),
        ("    limit: amount.nuke\n", "    limit: amount.nuke\n    reserve: ten\n"),
    ],
)
def test_the_schema_rejects_what_it_can_of_the_rest(old, new):
    text = GOOD.replace(old, new, 1)
    with pytest.raises(PolicyErrors):
        parse_policy(text, "p.yaml")
    assert _schema_errors(text)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    limit: amount.nuke\n", "    limit: amount nuke\n", "is not an amount name"),
        ("    limit: amount.nuke\n", "    limit: limit-123\n", "is not a limit id"),
        (
            "    limit: amount.nuke\n",
            "    limit: amount.nuke\n    reserve: 100%\n",
            "keeps every license back",
        ),
        (
            "    limit: amount.nuke\n",
            "    limit: amount.nuke\n    reserve: {schedule: [{tz: Europe/Londn, value: 1}]}\n",
            "'Europe/Londn' is not a time zone; did you mean 'Europe/London'?",
        ),
        ("  nuke:\n", "  nuke:\n\t\n", "indent with spaces"),
    ],
)
def test_validate_catches_what_it_can_know(old, new, expected):
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    assert any(expected in p for p in problems(text)), problems(text)


def test_a_reserve_at_or_above_a_static_total_is_an_error():
    text = GOOD.replace(
        '  adsk: {kind: flexlm, servers: ["27000@lic1"]}',
        "  adsk: {kind: static, features: {nuke_r: 4}}",
    ).replace("    limit: amount.nuke\n", "    limit: amount.nuke\n    reserve: 4\n")
    [msg] = problems(text)
    assert "reserve 4 is at or above the pool's total 4" in msg
    parse_policy(text.replace("reserve: 4", "reserve: 3"), "p.yaml")  # below it: fine


def test_the_reference_documents_every_field_of_the_schema():
    documented = (ROOT / "docs/policy.md").read_text()
    fields: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            fields.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json_schema())
    assert len(fields) > 60
    assert {f for f in fields if f"| `{f}` |" not in documented} == set()
    rows = re.findall(r"^\| `(\w+)` \|.*\| `([^`]*)` \|$", documented, re.M)
    assert {f for f, _ in rows} == fields  # each field's row ends with an example
    for field, example in rows:
        assert list(yaml.safe_load(example.replace("…", ""))) == [field], example


def test_the_example_policy_names_every_option():
    """The example says "every option": each field of every model appears in it, set or
    in a comment."""
    from typing import get_args

    from pydantic import BaseModel

    from sync.policy import Policy

    def models(t, seen):
        for arg in (t, *get_args(t)):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                seen.add(arg)
                for f in arg.model_fields.values():
                    models(f.annotation, seen)
                    for inner in get_args(f.annotation):
                        models(inner, seen)
        return seen

    text = (ROOT / "config/policy.example.yaml").read_text()
    missing = sorted(
        f"{m.__name__}.{name}"
        for m in models(Policy, set())
        for name in m.model_fields
        if not re.search(rf"\b{name}:", text)
    )
    assert missing == []


def test_a_reserve_window_earlier_ones_cover_whole_is_an_error():
    def schedule(*windows: str) -> str:
        rows = "".join(f"        - {w}\n" for w in windows)
        return GOOD.replace(
            "    limit: amount.nuke\n",
            f"    limit: amount.nuke\n    reserve:\n      schedule:\n{rows}",
            1,
        )

    day = '{days: daily, hours: "08:00-20:00", value: 4}'
    office = '{days: mon-fri, hours: "09:00-18:00", value: 6}'
    late = '{days: fri, hours: "18:00-02:00", value: 3}'
    night = '{days: sat, hours: "00:30-01:00", value: 2}'
    [msg] = problems(schedule(day, office, late))
    assert msg.startswith("p.yaml:11:11: pool 'nuke': reserve window mon-fri 09:00-18:00 never")
    assert "the earlier window(s) daily 08:00-20:00 cover all of it" in msg
    [msg] = problems(schedule(office, late, night))  # Friday's late window runs into Saturday
    assert "window sat 00:30-01:00 never applies" in msg and "fri 18:00-02:00 cover" in msg
    parse_policy(schedule(office, day, late))  # each still applies somewhere: the first wins


@pytest.mark.parametrize("settle", ["2d", "1.5", "true", "0", "'2 minutes'"])
def test_a_settle_that_is_neither_cycles_nor_a_time_is_said_once_in_words(settle):
    [problem] = problems(GOOD + f"    hysteresis: {{settle: {settle}}}\n")
    assert "settle is a count of cycles (1: at once, 2: one interval, …) or a time" in problem


def test_settle_in_cycles_is_read_as_intervals_and_a_time_as_itself():
    def seconds(settle: str) -> float:
        pool = parse_policy(GOOD + f"    hysteresis: {{settle: {settle}}}\n").policy.pools["nuke"]
        return pool.hysteresis.settle_seconds(60.0)

    assert (seconds("1"), seconds("2"), seconds("3"), seconds("90s"), seconds("2m")) == (
        0.0, 60.0, 120.0, 90.0, 120.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lease", "says"),
    [
        ("{duration: 3s, heartbeat: 2s}", "heartbeat 2s is over a third of the duration 3s"),
        ("{duration: 3s, heartbeat: 1s, margin: 1.5s}", "leaves under 1s to send a write in"),
    ],
)
def test_a_lease_no_write_could_be_sent_under_is_refused(lease, says):
    [problem] = problems(GOOD + f"state: {{store: dynamodb, table: t-1, lease: {lease}}}\n")
    assert says in problem


def test_state_in_dynamodb_names_its_table():
    [problem] = problems(GOOD + "state: {store: dynamodb}\n")
    assert "needs `table:`, the DynamoDB table" in problem
