"""`license-sync demo`: the real service, through boto3, against fakes on loopback."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
from collections import Counter
from pathlib import Path

from sync.commands.demo_policy import demo_copy, studio_for
from sync.cycle.record import CycleResult, refusals
from sync.cycle.serve import serve
from sync.cycle.service import Service
from sync.edges.sources.runner import MAX_OUTPUT
from sync.fakes.farm import REALISTIC
from sync.fakes.lmutil import write_wrapper
from sync.fakes.world import BUNDLES, Clocked, DemoWorld
from sync.law.render import decision_line, jobs_summary, limit_name
from sync.licenses.kinds import TOOLS
from sync.policy import load_policy, read_bounded
from sync.process import logging_setup
from sync.process.app import build_service
from sync.values.errors import SyncError

POLICY = """\
# The demo's policy: written by `license-sync demo`; edit it while the demo runs and
# watch it reload. Every option is documented in config/policy.example.yaml.
interval: {interval}s
history: {{path: {history}, keep: 1d}}
metrics: {{address: "{address}"}}
farms:
  - id: {farm}
    region: us-west-2
    fake_endpoint: {endpoint}   # this demo's fake farm: nothing here reaches AWS
sources:
  studio-flexlm:
    kind: flexlm
    servers: ["27000@lic1"]
    executable: {lmutil}
    timeout: 10s
    log: {{path: {log}}}   # the fake vendor daemon's debug log: who it refused
  studio-rlm:
    kind: rlm
    servers: ["5053@rlm1"]
    executable: {rlmutil}
    timeout: 10s
    log: {{path: {rlm_log}}}   # the fake ISV server's report log (REPORTLOG)
pools:
  nuke:
    limit: amount.nuke
    features: [{{source: studio-flexlm, feature: nuke_r}}]
    farm_selector: {{hosts: ["^render-"]}}
    reserve: 1
    headroom: 1
    hysteresis: {{settle: 2, max_step: 4}}
    jobs: {{policy: fair, min_workers: 1, slack: 2}}   # a cap moves when the share leaves the band
  maya:
    limit: amount.maya
    features: [{{source: studio-rlm, feature: maya}}]
    farm_selector: {{hosts: ["^render-"]}}
    headroom: 1
    on_exhausted: pause
"""


def demo(args: argparse.Namespace) -> int:
    logging_setup.setup("text", args.verbose)
    if not args.verbose:  # the demo prints its own line per cycle and pool
        logging.getLogger("license_sync").setLevel(logging.WARNING)
    if args.policy:
        return run_policy_demo(args)
    if args.capture:
        raise SyncError("--capture answers for a source of --policy: give --policy too")
    return run_demo(args.address, args.interval or 5.0, args.workdir, args.cycles)


def run_demo(
    address: str = "127.0.0.1:9462",
    interval: float = 5.0,
    workdir: str | None = None,
    cycles: int | None = None,
) -> int:
    work = _workdir(workdir)
    world = DemoWorld()
    world.license.log_path = str(work / "foundry.log")
    world.license.report_log_path = str(work / "adskflex.rlmlog")
    for log in (world.license.log_path, world.license.report_log_path):
        open(log, "a").close()  # there from the first cycle, as a running server's are
    world.start()
    policy_path = work / "policy.yaml"
    policy_path.write_text(
        POLICY.format(
            interval=interval,
            history=work / "history.db",
            address=address,
            farm=world.farm.farm_id,
            endpoint=world.server.url,
            lmutil=write_wrapper(str(work / "lmutil"), world.server.url),
            rlmutil=write_wrapper(str(work / "rlmutil"), world.server.url),
            log=work / "foundry.log",
            rlm_log=work / "adskflex.rlmlog",
        )
    )
    print("license-sync demo: a fake license server and Deadline farm on loopback")
    print(f"  Deadline endpoint  {world.server.url}  (farm {world.farm.farm_id})")
    print(clients_banner(world.server.url, world.farm.farm_id, world.queues[0]))
    return _serve(world, policy_path, address, cycles)


def clients_banner(url: str, farm_id: str, queue_id: str) -> str:
    """How to point AWS's own clients at the fake (docs/cli.md, "AWS's clients against
    the demo"): every Deadline operation has a `management.` or `scheduling.` host prefix,
    which a loopback endpoint cannot answer, so both CLIs need it off."""
    lines = [
        "  AWS's clients      in another shell (the aws CLI, or `pip install deadline`):",
        f"    export AWS_ENDPOINT_URL_DEADLINE={url} AWS_DISABLE_HOST_PREFIX_INJECTION=true",
        "    export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-west-2",
        "    export DEADLINE_CLOUD_TELEMETRY_OPT_OUT=true",
        f"    deadline queue list --farm-id {farm_id}",
        f"    deadline bundle submit {BUNDLES / 'nuke_comp'} --farm-id {farm_id} "
        f"--queue-id {queue_id} --yes",
    ]
    return "\n".join(lines)


def run_policy_demo(args: argparse.Namespace) -> int:
    """The TD's own policy against a fake studio made from it (demo_policy.py)."""
    loaded = load_policy(args.policy)
    captures = {}
    for value in args.capture:
        name, eq, path = value.partition("=")
        if not eq:
            raise SyncError(f"--capture {value!r}: give NAME=FILE")
        try:
            captures[name] = read_bounded(path, MAX_OUTPUT, path).decode(errors="replace")
        except ValueError as e:
            raise SyncError(f"--capture {name}: {e}") from e
    world = studio_for(loaded.policy, captures)
    work = _workdir(args.workdir)
    world.start()
    for kind in TOOLS.values():
        write_wrapper(str(work / kind.executable), world.server.url)
    policy_path = work / "policy.yaml"
    policy_path.write_text(demo_copy(loaded, world.server.url, work, args.address, args.interval))
    print(f"license-sync demo: {args.policy} on fake farms and license servers on loopback")
    print(f"  Deadline endpoint  {world.server.url}  (farms {', '.join(world.farms)})")
    answered = ", ".join(
        f"{v.partition('=')[0]} answers {v.partition('=')[2]}" for v in args.capture
    )
    listed = ", ".join(world.servers)
    print(f"  license servers    {listed}" + (f" ({answered})" if answered else ""))
    return _serve(world, policy_path, args.address, args.cycles)


def _workdir(workdir: str | None) -> Path:
    """The demo's folder, held by this demo before anything is written in it: a second
    demo there would rewrite the first's policy and fake tools to point at fakes that die
    with it."""
    work = Path(workdir or "license-sync-demo").resolve()
    work.mkdir(parents=True, exist_ok=True)
    lock = work / ".demo.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = lock.read_text().strip() or "?"
        os.close(fd)
        raise SyncError(
            f"another license-sync demo runs in {work} (pid {holder}): stop it, or give "
            "this one its own --workdir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD.append(fd)  # held until the process ends
    return work


_HELD: list[int] = []  # the workdir locks this process holds


def _serve(world: Clocked, policy_path: Path, address: str, cycles: int | None) -> int:
    # the real botocore client: the policy points it at the fake, with throwaway credentials
    svc = build_service(load_policy(policy_path))
    history_path = svc.policy.history.path
    print(f"  policy             {policy_path}")
    print(f"  history            {history_path}")
    print(f"  metrics            http://{address}/metrics")
    lag = int(REALISTIC["search_lag"])
    print(f"  the fake is as late as Deadline: a new job shows in the search after {lag} s,")
    print("  currentCount trails the farm, and a few batch items fail (retried next cycle)")
    print(f"  in another shell   license-sync audit -c {policy_path}   (the farm's setup)")
    print(f"                     license-sync history --db {history_path} --undeclared")
    print(f"  a starter policy   license-sync init --against {history_path} -o my-policy.yaml")
    print("                     (this farm and its servers, from the history: no access needed)")
    print("  Ctrl-C to stop.\n", flush=True)
    try:
        return serve(svc, address, on_cycle=_printer(svc), max_cycles=cycles)
    finally:
        world.stop()
        print(
            f"\ndemo stopped; the farm's tasks refused a license: {world.denials} (artists "
            "refused are the cycles' 'refused, waiting'). "
            f"History kept in {history_path}:\n  license-sync history --db {history_path}"
        )


def _printer(svc: Service):  # type: ignore[no-untyped-def]
    """One line a limit and a sharing pool, each cycle; one when an edit of the policy
    was taken (a broken one is said by the log)."""
    n = {"cycle": 0}
    sha = {"now": svc.loaded.sha}

    def on_cycle(result: CycleResult) -> None:
        n["cycle"] += 1
        head = f"{result.started.astimezone().strftime('%H:%M:%S')} #{n['cycle']:<3}"
        if svc.loaded.sha != sha["now"]:
            sha["now"] = svc.loaded.sha
            print(f"{head} policy reloaded: {svc.loaded.path} (sha {sha['now']})", flush=True)
        for pp in result.plan.pools.values():
            for d in pp.decisions:
                line = decision_line(
                    d, pp.figures, limit_name(d, pp), result.observed.undeclared.get(pp.pool, ())
                )
                print(f"{head} {line}", flush=True)
        for pj in result.plan.pools_jobs:
            print(f"{head}   {jobs_summary(pj)}", flush=True)
        refused = Counter(d.who for d in refusals(result))
        if refused:
            said = ", ".join(f"{n} {who}" for who, n in sorted(refused.items()))
            print(f"{head}   refused in the log since the last cycle: {said}", flush=True)
        for e in result.errors:
            print(f"{head} error: {e}", flush=True)

    return on_cycle
