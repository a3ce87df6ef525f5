"""The mistakes a pipeline TD really makes in a policy, each through `license-sync
validate` as CI runs it: an error (exit 1) or a warning (exit 0) at the right line, that
says what to write instead. Add a row for every mistake found in the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.clirun import run_cli

FARM = "farm-0123456789abcdef0123456789abcdef"
GOOD = f"""\
farms:
  - id: {FARM}
    region: us-west-2
sources:
  adsk: {{kind: flexlm, servers: ["27000@lic1"]}}
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: adsk, feature: nuke_r}}]
    farm_selector: {{hosts: ["^render-"]}}
"""
STATIC = GOOD.replace(
    '{kind: flexlm, servers: ["27000@lic1"]}', "{kind: static, features: {nuke_r: 4}}"
)
POOL_END = '    farm_selector: {hosts: ["^render-"]}\n'

# (what, policy text, exit code, line, words the message must hold)
MISTAKES = [
    (
        "a region of a partition Deadline Cloud is not in",
        GOOD.replace("us-west-2", "cn-north-1"),
        1,
        3,
        ["'cn-north-1' is in the aws-cn partition", "arn:aws-cn:deadline"],
    ),
    (
        "a GovCloud region",
        GOOD.replace("us-west-2", "us-gov-west-1"),
        1,
        3,
        ["aws-us-gov partition", "us-west-2"],
    ),
    (
        "a commercial region Deadline Cloud had no endpoint in",
        GOOD.replace("us-west-2", "sa-east-1"),
        0,
        3,
        ["warning:", "no endpoint in 'sa-east-1'"],
    ),
    (
        "a reserve window that is never open",
        GOOD + "    reserve: {schedule: [{hours: '18:00-18:00', value: 2}]}\n",
        1,
        11,
        ["never open", "'00:00-24:00'"],
    ),
    (
        "a reserve window from midnight to midnight the wrong way round",
        GOOD + "    reserve: {schedule: [{hours: '24:00-00:00', value: 2}]}\n",
        1,
        11,
        ["never open", "'00:00-24:00'"],
    ),
    (
        "stale_after shorter than the interval",
        GOOD + "    stale_after: 30s\n",
        0,
        11,
        ["warning:", "shorter than the interval 60s", "at least 120s"],
    ),
    (
        "a headroom as large as a static source's total",
        STATIC + "    headroom: 4\n",
        1,
        11,
        ["headroom 4 is at or above the pool's total 4"],
    ),
    (
        "a reserve and a headroom that together take the whole total",
        STATIC + "    headroom: 2\n    reserve: 2\n",
        1,
        12,
        ["reserve 2 and headroom 2 (4 in all) are at or above the pool's total 4"],
    ),
    (
        "a time zone abbreviation",
        GOOD + "    reserve: {schedule: [{tz: PST, value: 1}]}\n",
        1,
        11,
        ["'PST' is an abbreviation", "'America/Los_Angeles'"],
    ),
    (
        "an abbreviation that is a fixed-offset zone",
        GOOD + "    reserve: {schedule: [{tz: EST, value: 1}]}\n",
        0,
        11,
        ["warning:", "no daylight saving time", "'America/New_York'"],
    ),
    (
        "features written as a mapping",
        GOOD.replace("[{source: adsk, feature: nuke_r}]", "{source: adsk, feature: nuke_r}"),
        1,
        9,
        ["a mapping where a list belongs", "features: [{source: adsk, feature: nuke_r}]"],
    ),
    (
        "a shell glob as a host selector",
        GOOD.replace('"^render-"', '"render-*"'),
        1,
        10,
        ["reads as a shell glob", "write '^render-'"],
    ),
    (
        "a glob of a domain",
        GOOD.replace('"^render-"', '"*.farm.local"'),
        1,
        10,
        ["write '\\.farm\\.local$'"],
    ),
    (
        "an alias used above its anchor",
        GOOD.replace("[{source: adsk, feature: nuke_r}]", "[*nuke]")
        + "x: &nuke {source: adsk, feature: nuke_r}\n",
        1,
        9,
        ["alias *nuke is used before its anchor &nuke (line 11)"],
    ),
    (
        "an alias with no anchor",
        GOOD.replace("[{source: adsk, feature: nuke_r}]", "[*nuke]"),
        1,
        9,
        ["alias *nuke names no anchor"],
    ),
    (
        "a bare port as the metrics address",
        "metrics: {address: '9464'}\n" + GOOD,
        1,
        1,
        ["a port alone", "0.0.0.0:9464", "127.0.0.1:9464"],
    ),
    (
        "port 0 as the metrics address",
        "metrics: {address: '127.0.0.1:0'}\n" + GOOD,
        1,
        1,
        ["the port must be 1 to 65535"],
    ),
    (
        "preempt: true",
        GOOD + "    preempt: true\n",
        1,
        11,
        ["preempt: {enabled: true}"],
    ),
    (
        "a farm left on the simulator",
        GOOD.replace("    region: us-west-2\n", "    fake_endpoint: http://127.0.0.1:9\n"),
        0,
        3,
        ["warning:", "remove fake_endpoint for a real farm"],
    ),
    (
        "a misspelt key",
        GOOD + "    hedroom: 2\n",
        1,
        11,
        ["did you mean 'headroom'?"],
    ),
]


@pytest.mark.parametrize(
    ("text", "code", "line", "words"),
    [pytest.param(*row[1:], id=row[0]) for row in MISTAKES],
)
def test_each_mistake_is_told_at_its_line_with_what_to_write(tmp_path, text, code, line, words):
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    p = run_cli("validate", str(policy))
    out = p.stdout + p.stderr
    assert p.returncode == code, out
    [said] = [s for s in out.splitlines() if all(w in s for w in words)] or [out]
    assert said.startswith(f"{policy}:{line}:"), out
    assert "Input should be" not in out and "instance of" not in out, out


def test_files_license_sync_writes_are_named_when_passed_as_a_policy(tmp_path, farm_env):
    schema = tmp_path / "policy.schema.json"
    schema.write_text(run_cli("schema").stdout)
    plan = tmp_path / "plan.json"
    p = run_cli("plan", "-c", farm_env["policy"], "--format", "json", env=farm_env["env"])
    plan.write_text(p.stdout)
    for path, what in ((schema, "JSON Schema"), (plan, "a plan")):
        p = run_cli("validate", str(path))
        assert p.returncode == 1
        assert f"{path}:1:1: this is " in p.stderr and what in p.stderr, p.stderr


def test_thousands_of_notes_are_summed_up_past_a_handful(tmp_path):
    pools = "".join(
        f"  p{i}: {{limit: amount.p{i}, features: [{{source: adsk, feature: f{i}}}]}}\n"
        for i in range(300)
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD.split("pools:\n")[0] + "pools:\n" + pools)
    p = run_cli("validate", str(policy))
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert len(lines) == 12, lines[-3:]  # ten notes, how many more, the verdict
    assert lines[10] == "… and 290 more (0 warnings, 290 notes); --all-notes prints every one"
    every = run_cli("validate", "--all-notes", str(policy)).stdout.splitlines()
    assert len(every) == 301


def test_a_policy_over_the_size_bound_is_refused_before_it_is_parsed(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD + "# padding\n" * 120_000)
    p = run_cli("validate", str(policy))
    assert p.returncode == 1
    assert "over 1024 KiB" in p.stderr and "LICENSE_SYNC_POLICY_MAX_BYTES" in p.stderr
