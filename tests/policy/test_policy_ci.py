"""docs/policy-ci.md as a TD sets it up: the pre-commit hooks this repository ships, run by
pre-commit itself in a new policy repository, and the example workflow's steps, run as
written — with no AWS credentials and no license server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.clirun import run_cli as cli
from tests.support.paths import ROOT

DOC = ROOT / "docs/policy-ci.md"
BIN = str(Path(sys.executable).parent)  # license-sync and pre-commit, as installed


def doc_block(title: str) -> str:
    """The YAML block under the heading `title` in docs/policy-ci.md."""
    m = re.search(
        rf"^## `{re.escape(title)}`\n.*?```yaml\n(.*?)^```$", DOC.read_text(), re.M | re.S
    )
    assert m, f"no YAML block under {title} in {DOC}"
    return m.group(1)


def git(cwd: Path, *args: str) -> str:
    ident = ["-c", "user.email=td@example.com", "-c", "user.name=td", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", *ident, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> tuple[Path, str]:
    """This checkout as it is now (uncommitted edits included), as a git repository
    pre-commit can install the hooks from: (path, commit)."""
    dest = tmp_path_factory.mktemp("license-sync")
    listed = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for name in listed:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "the checkout under test")
    return dest, git(dest, "rev-parse", "HEAD")


@pytest.fixture
def policy_repo(product, farm_env, tmp_path, tmp_path_factory) -> Path:
    """A policy repository set up as the doc says, its hooks from `product`."""
    repo = tmp_path / "policies"
    repo.mkdir()
    shutil.copy(farm_env["policy"], repo / "policy.yaml")
    (repo / "policy.schema.json").write_text(cli("schema").stdout)
    hooks = yaml.safe_load(doc_block(".pre-commit-config.yaml"))
    hooks["repos"][0].update(repo=str(product[0]), rev=product[1])
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(hooks))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    return repo


def offline_env(tmp_path: Path) -> dict[str, str]:
    """What a CI runner without AWS credentials has; pre-commit's cache is shared by the
    tests of one run (installing the hook environment takes seconds)."""
    home = tmp_path.parent / "pre-commit-home"
    return {
        "PATH": f"{BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PRE_COMMIT_HOME": str(home),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_"))},
    }


def pre_commit(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    git(repo, "add", "-A")  # staged, as a commit would have it (pre-commit stashes the rest)
    return subprocess.run(
        [f"{BIN}/pre-commit", "run", "--all-files", "--color", "never"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_hooks_pass_a_good_policy_and_stop_a_bad_one(policy_repo, tmp_path):
    env = offline_env(tmp_path)
    p = pre_commit(policy_repo, env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"license-sync validate\.+Passed", p.stdout)
    assert re.search(r"license-sync schema check\.+Passed", p.stdout)

    policy = policy_repo / "policy.yaml"
    good = policy.read_text()
    policy.write_text(good + "history: {path: other.db}\n")  # a second `history:`
    p = pre_commit(policy_repo, env)
    assert p.returncode == 1
    assert re.search(r"policy\.yaml:\d+:1: duplicate key 'history'", p.stdout), p.stdout

    policy.write_text(good)
    (policy_repo / "policy.schema.json").write_text('{"title": "an older schema"}\n')
    p = pre_commit(policy_repo, env)
    assert p.returncode == 1
    assert "policy.schema.json: not the policy schema of license-sync" in p.stdout
    assert "renew it with: license-sync schema > policy.schema.json" in p.stdout


def workflow_steps() -> list[dict]:
    return yaml.safe_load(doc_block(".github/workflows/policy.yml"))["jobs"]["policy"]["steps"]


def test_the_example_workflow_plans_a_change_without_credentials(policy_repo, farm_env, tmp_path):
    p = cli("run", "--once", "--config", farm_env["policy"], env=farm_env["env"])
    assert p.returncode == 0, p.stderr
    git(policy_repo, "commit", "-qm", "the policy as it runs")
    git(policy_repo, "update-ref", "refs/remotes/origin/main", "HEAD")  # the PR's base
    policy = policy_repo / "policy.yaml"
    policy.write_text(policy.read_text().replace("headroom: 1", "headroom: 3"))  # the change
    summary = tmp_path / "summary.md"
    env = {**offline_env(tmp_path), "GITHUB_STEP_SUMMARY": str(summary)}
    ran = []
    for step in workflow_steps():
        name = step.get("name", "")
        if "uses" in step or name.startswith("Install"):
            continue  # the runner's set-up: here, this test's checkout and venv
        if name.startswith("Fetch"):
            shutil.copy(farm_env["db"], policy_repo / "history.db")
            continue
        given = {
            k: v.replace("${{ github.base_ref }}", "main") for k, v in step.get("env", {}).items()
        }
        p = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=policy_repo,
            env={**env, **given},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, f"{name}: {p.stdout}{p.stderr}"
        ran.append(name)
    assert ran == ["Validate the policy and check the schema", "What merging would change"]
    assert "~ nuke/amount.nuke: maxCount 14 → 12" in summary.read_text()
    assert "Against the baseline baseline.yaml, the edit changes:\n  limit amount.nuke:" in (
        summary.read_text()
    )
    assert not any(k.startswith("AWS_") for k in env)
    doc = json.loads((policy_repo / "plan.json").read_text())  # the artifact a bot reads
    assert doc["baseline"]["changes"] == {"limits": 1, "jobs": 0}
