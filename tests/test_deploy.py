"""The deploy kit (deploy/kubernetes/) agrees with the image and the service it runs:
the policy in its ConfigMap validates, the history lies on the claimed volume, the probes
and the scrape reach the port the policy serves. The manifests against Kubernetes'
schemas and checkov's rules: .ci/run."""

from __future__ import annotations

from pathlib import Path

import yaml

from sync.policy import parse_policy

K8S = Path(__file__).parent.parent / "deploy/kubernetes"


def manifests() -> dict[str, dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(K8S.glob("*.yaml"))]
    return {d["kind"]: d for d in docs}


def test_the_configmaps_policy_is_one_the_service_takes():
    m = manifests()
    loaded = parse_policy(m["ConfigMap"]["data"]["policy.yaml"], "configmap.yaml")
    pod = m["Deployment"]["spec"]["template"]["spec"]
    [c] = pod["containers"]
    mounts = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
    claims = {v["name"]: v for v in pod["volumes"]}
    assert loaded.policy.history.path.startswith(mounts["history"] + "/")
    assert (
        claims["history"]["persistentVolumeClaim"]["claimName"]
        == (m["PersistentVolumeClaim"]["metadata"]["name"])
    )
    assert mounts["policy"] == "/config" and "subPath" not in str(c["volumeMounts"])
    port = int(loaded.policy.metrics.address.rpartition(":")[2])
    assert c["ports"][0]["containerPort"] == port
    assert m["Service"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_one_writer_a_non_root_read_only_pod_and_probes_on_health():
    m = manifests()
    spec = m["Deployment"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
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
