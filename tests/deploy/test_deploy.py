"""The deploy kit (deploy/kubernetes/) agrees with the image and the service it runs:
the policy in its ConfigMap validates, the history lies on the claimed volume, the probes
and the scrape reach the port the policy serves. The manifests against Kubernetes'
schemas and checkov's rules: .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from sync.policy import parse_policy
from tests.support.paths import ROOT

K8S = ROOT / "deploy/kubernetes"


def manifests() -> dict[str, dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(K8S.glob("*.yaml"))]
    return {d["kind"]: d for d in docs}


def test_the_configmaps_policy_is_one_the_service_takes():
    m = manifests()
    loaded = parse_policy(m["ConfigMap"]["data"]["policy.yaml"], "configmap.yaml")
    pod = m["Deployment"]["spec"]["template"]["spec"]
    [c] = pod["containers"]
    mounts = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert loaded.policy.history.path.startswith(mounts["history"] + "/")
    assert "emptyDir" in volumes["history"]  # each pod's own: the originals are in the table
    assert loaded.policy.state.store == "dynamodb" and loaded.policy.state.table
    assert mounts["policy"] == "/config" and "subPath" not in str(c["volumeMounts"])
    port = int(loaded.policy.metrics.address.rpartition(":")[2])
    assert c["ports"][0]["containerPort"] == port
    assert m["Service"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_two_replicas_one_writer_a_non_root_read_only_pod_and_probes_on_health():
    m = manifests()
    spec = m["Deployment"]["spec"]
    # a rolling update starts the new pod first: the lease keeps one writer
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = m["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1 and pdb["selector"] == spec["selector"]
    pod = spec["template"]["spec"]
    [term] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    [c] = pod["containers"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert "Mi" in c["resources"]["limits"]["memory"]
    sa = m["ServiceAccount"]["metadata"]
    assert sa["name"] == pod["serviceAccountName"]
    assert "eks.amazonaws.com/role-arn" in sa["annotations"]
    kinds = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert kinds == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


# -- the image: a vendor's lmutil, linked against the LSB loader --------------------------

LSB = b"/lib64/ld-lsb-x86-64.so.3"
GLIBC = b"/lib64/ld-linux-x86-64.so.2"


def lsb_tool(dest: Path) -> Path:
    """A dynamically linked program whose ELF interpreter is the LSB loader, as Flexera's
    and Reprise's x86-64 builds of lmutil and rlmutil are (`readelf -l lmutil`)."""
    import shutil

    elf = Path(shutil.which("true") or "/bin/true").read_bytes()
    if GLIBC not in elf:
        import pytest

        pytest.skip("this machine's /bin/true is not an x86-64 glibc program")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(elf.replace(GLIBC, LSB + b"\0" * (len(GLIBC) - len(LSB)), 1))
    dest.chmod(0o755)
    return dest


def loader_line() -> str:
    """The Dockerfile's RUN that provides the LSB loader, as a shell command."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [run] = [ln for ln in text.splitlines() if ln.startswith("RUN ") and "ld-lsb" in ln]
    return run.removeprefix("RUN ")


def test_the_image_runs_a_tool_linked_against_the_lsb_loader(tmp_path):
    """In a mount namespace whose /lib64 is a copy of this machine's (nothing outside the
    test changes): without the Dockerfile's line the tool cannot start; with it, it runs
    from /opt/license-tools as the service runs it."""
    import os
    import subprocess
    import sys

    import pytest

    tool = lsb_tool(tmp_path / "opt/license-tools/lmutil")
    lib64 = tmp_path / "lib64"
    lib64.mkdir()
    (lib64 / "ld-linux-x86-64.so.2").symlink_to(os.path.realpath(GLIBC.decode()))
    read = (
        "from sync.edges.sources import ToolSource;"
        f"r = ToolSource('lic', 'flexlm', ['27000@lic1'], {str(tool)!r}).read();"
        "print(r.errors[0])"
    )
    script = (
        f"mount --bind {lib64} /lib64 && "
        f"{{ {tool} lmstat -a; echo before=$?; }} 2>/dev/null; "
        f'{loader_line()} && {tool} lmstat -a; echo after=$? && {sys.executable} -c "{read}"'
    )
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    if "unshare" in p.stderr and p.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"unshare is needed here: {p.stderr}")
        pytest.skip(f"no user and mount namespaces on this machine: {p.stderr.strip()}")
    lines = p.stdout.splitlines()
    assert lines[:2] == ["before=127", "after=0"], p.stdout + p.stderr
    assert "unreadable output" in lines[2], lines  # it ran: /bin/true prints no report


# -- ECS Fargate: deploy/ecs/license-sync.yaml ---------------------------------------------


def template() -> dict:
    return yaml.safe_load((ROOT / "deploy/ecs/license-sync.yaml").read_text())


def test_the_task_role_is_the_iam_policy_of_config():
    import json

    role = template()["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    given = {st["Sid"]: st for st in role["Statement"]}
    for st in json.loads((ROOT / "config/iam-policy.json").read_text())["Statement"]:
        assert sorted(given[st["Sid"]]["Action"]) == sorted(st["Action"]), st["Sid"]
        cond = given[st["Sid"]]["Condition"]["StringEquals"]
        assert cond == {
            "aws:ResourceAccount": {"Ref": "AWS::AccountId"},
            "aws:RequestedRegion": [{"Ref": "AWS::Region"}],
        }
        assert [r["Fn::Sub"].rsplit(":", 1)[1] for r in given[st["Sid"]]["Resource"]] == [
            "farm/${FarmId}",
            "farm/${FarmId}/*",
        ]


def test_two_tasks_one_writer_by_the_stacks_table_with_the_policy_they_were_given():
    t = template()
    res = t["Resources"]
    svc = res["Service"]["Properties"]
    assert svc["DesiredCount"] == 2
    # a deploy starts the new tasks before it stops the old: the lease keeps one writer
    assert svc["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    assert svc["DeploymentConfiguration"]["MaximumPercent"] == 200
    policy, main = res["Task"]["Properties"]["ContainerDefinitions"]
    config = main["EntryPoint"][main["EntryPoint"].index("--config") + 1]
    assert main["EntryPoint"][:4] == ["tini", "--", "license-sync", "run"]
    assert main["HealthCheck"]["Command"] == ["CMD", "license-sync", "healthcheck", "--config",
                                              config]  # fmt: skip
    assert f"pathlib.Path('{config}')" in policy["EntryPoint"][2]  # written where it is read
    assert main["DependsOn"] == [{"ContainerName": "policy", "Condition": "SUCCESS"}]
    uid = re.search(r"^USER (\d+):", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert main["User"] == policy["User"] == f"{uid}:{uid}"  # the image's user runs both
    assert main["ReadonlyRootFilesystem"] and policy["ReadonlyRootFilesystem"]
    # the example policy validates, keeps its history on the task's volume and its
    # memory in the stack's table: on-demand, recoverable, encrypted, kept on deletion
    example = parse_policy(t["Metadata"]["ExamplePolicy"], "ExamplePolicy").policy
    [mount] = main["MountPoints"]
    assert example.history.path.startswith(mount["ContainerPath"] + "/")
    table = res["StateTable"]["Properties"]
    assert (example.state.store, example.state.table) == ("dynamodb", table["TableName"])
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionProtectionEnabled"] is True and table["SSESpecification"]["SSEEnabled"]


def test_the_tables_rights_are_exactly_the_calls_the_state_store_makes():
    import json

    called = set()
    for name in ("lease.py", "dynamo_state.py"):
        text = (ROOT / "sync/edges" / name).read_text()
        called |= {_pascal(m) for m in re.findall(r"self\.client\.(\w+)", text)}
    # a transaction is allowed by what it holds: puts, deletes and a condition check
    called = (called - {"TransactWriteItems"}) | {"PutItem", "DeleteItem", "ConditionCheckItem"}
    [st] = json.loads((ROOT / "config/iam-policy-state.json").read_text())["Statement"]
    assert {a.split(":")[1] for a in st["Action"]} == called
    role = template()["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    [given] = [s for s in role["Statement"] if s["Sid"] == "LicenseSyncState"]
    assert sorted(given["Action"]) == sorted(st["Action"])
    assert given["Resource"] == {"Fn::GetAtt": ["StateTable", "Arn"]}


def _pascal(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))
