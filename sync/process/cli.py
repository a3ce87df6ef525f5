"""The `license-sync` command line: the parsers, and dispatch to `sync/commands/`.

A command's module is imported only when it runs: `validate` in a TD's CI need not load
boto3, and `--help` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sync import __version__
from sync.licenses.kinds import LOG_FORMATS, TOOLS
from sync.offline.simulation import STRATEGIES
from sync.values.errors import SyncError
from sync.values.settings import CYCLE_TABLES, STOP_GRACE

EPILOG = (
    "Documentation: README.md and docs/ (docs/cli.md for every command). "
    "Exit codes: 0 ok, 1 error; 2: plan --detailed-exitcode has changes pending, replay "
    "found decisions that differ (each command's --help says its own)."
)
if TYPE_CHECKING:  # subscripted only for the type checker: not at run time in 3.11
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Sub = argparse._SubParsersAction


def _command(
    sub: Sub, name: str, target: str, help: str, description: str
) -> argparse.ArgumentParser:
    """A sub-command whose work is `target`, "module:function" in sync/commands/."""
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(target=target)
    return p


def _config(p: argparse.ArgumentParser, help: str = "the policy YAML") -> None:
    p.add_argument("--config", "-c", required=True, metavar="POLICY", help=help)


def _add_parse(sub: Sub) -> None:
    p = _command(
        sub,
        "parse",
        "parse:parse",
        "parse one captured lmstat/rlmstat output and print the JSON report",
        "Parse a captured `lmutil lmstat -a` (or `-i`) or `rlmutil rlmstat -a` output and\n"
        "print its report as JSON (docs/design.md, 'The report'). Exits 0 whenever a report\n"
        "is printed, a server that is down included ('up': false, reason in 'errors').",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=[*TOOLS, "command", *LOG_FORMATS],
        help="which tool produced the text (command: a JSON report to validate; "
        "flexlm-log: a FlexLM debug log; rlm-report-log: an RLM report log (REPORTLOG), "
        "rlm-debug-log: an RLM ISV server's debug log, rlm-log: either, told line by "
        "line: their checkouts and refusals)",
    )
    p.add_argument(
        "--expiry",
        action="store_true",
        help="the text is `lmstat -i` (expiry listing); detected when omitted",
    )
    p.add_argument("--compact", action="store_true", help="one line of JSON")
    p.add_argument(
        "--tz",
        default="UTC",
        help="with a -log format: the server's time zone (its log's times are local)",
    )
    p.add_argument("file", nargs="?", metavar="FILE|-", help="the captured output (default: stdin)")


def _add_run(sub: Sub) -> None:
    p = _command(
        sub,
        "run",
        "run:run",
        "the service: a cycle every `interval` until SIGTERM/SIGINT",
        "Read the license servers and the farm every `interval`, set each limit's maxCount,\n"
        "share pools between jobs, serve /metrics, /healthz and /readyz, and record\n"
        "everything in the history. A changed policy file is picked up without a restart\n"
        "(SIGHUP: at once); an invalid edit keeps the last good policy running. SIGTERM or\n"
        "SIGINT let the current write finish.",
    )
    _config(p, "the policy YAML (see config/policy.example.yaml)")
    p.add_argument("--dry-run", action="store_true", help="plan and record, write nothing")
    p.add_argument("--once", action="store_true", help="run one cycle, print it and exit")
    p.add_argument(
        "--adopt",
        action="store_true",
        help="with a new, empty history: take the maxWorkerCount that jobs already carry as "
        "their originals (without it, such jobs are left alone: their caps may be ours from "
        "a history that was lost)",
    )
    p.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="where to serve /metrics (default: the policy's metrics.address)",
    )
    p.add_argument(
        "--stop-grace",
        type=float,
        default=STOP_GRACE,
        metavar="SECONDS",
        help="after SIGTERM, how long a cycle in flight may take before its call is "
        f"abandoned (safely: its changes are recorded first); default {STOP_GRACE:g}, "
        "inside docker stop's 10 s",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one object per line, for log shippers",
    )


def _add_look(sub: Sub) -> None:
    p = _command(
        sub,
        "plan",
        "look:plan",
        "what a cycle would change and why (live, or offline against a history)",
        "Read everything, plan, and print what would change, like `terraform plan`.\n"
        "Writes nothing. With --against, plan offline against the farm as a history's last\n"
        "cycle left it: what merging a policy would change, in CI without AWS credentials\n"
        "or license servers (docs/policy-ci.md).\n"
        "Exit 0: planned (1: error); with --detailed-exitcode, 0: no change, 2: changes\n"
        "(with --baseline: changes the edit makes against the old policy).",
    )
    _config(p)
    _look_options(p)
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes, 0 when there are none, 1 on error",
    )
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: the plan as a stable document for bots and CI (docs/cli.md)",
    )
    p.add_argument(
        "--baseline",
        metavar="OLD.yaml",
        help="also plan this (the old) policy on the same observation and say what the "
        "edit changes against it; --detailed-exitcode then exits 2 only for those",
    )
    p.add_argument(
        "--recorded-errors",
        choices=["report", "fail"],
        default="report",
        help="with --against: errors the recorded cycle had (a farm it could not read) are "
        "reported apart and do not fail the plan (report), or do (fail)",
    )
    p = _command(
        sub,
        "explain",
        "look:explain",
        "the arithmetic behind one pool's target",
        "Read everything (or a history's last cycle, with --against) and print, line by\n"
        "line, how POOL's target is computed and, for a pool shared between jobs, each\n"
        "job's demand and cap. Writes nothing.",
    )
    _config(p)
    _look_options(p)
    p.add_argument("pool", metavar="POOL")


def _look_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--against",
        metavar="HISTORY.db",
        help="plan offline against the last cycle recorded in this history (a copy will do)",
    )
    p.add_argument(
        "--at",
        metavar="TIME",
        help="evaluate schedules at TIME: ISO 8601 (2026-12-01T09:30, local time without an "
        "offset) or from now (+2h); default: now, or with --against when that cycle ran",
    )


def _add_policy(sub: Sub) -> None:
    p = _command(
        sub,
        "validate",
        "policy:validate",
        "check policy files (for CI and pre-commit)",
        "Check policy files. Errors print as file:line:col: message, then warnings\n"
        "(valid, but almost surely not meant) and notes (how a valid policy reads).\n"
        "Exit 1 if any file has an error; warnings do not fail it.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument(
        "--all-notes",
        action="store_true",
        help="print every warning and note (default: the first 10, then how many more)",
    )
    p = _command(
        sub,
        "schema",
        "policy:schema",
        "print the policy's JSON Schema",
        "Print the policy's JSON Schema, for editors' YAML validation:\n"
        "  license-sync schema > policy.schema.json\n"
        "and put `# yaml-language-server: $schema=policy.schema.json` atop the policy.\n"
        "With --check, exit 1 if a committed schema file is not this version's\n"
        "(the pre-commit hook license-sync-schema-check; docs/policy-ci.md).",
    )
    p.add_argument(
        "--check",
        nargs="+",
        metavar="FILE",
        help="compare FILE with the schema instead of printing it",
    )


def _add_history(sub: Sub) -> None:
    p = _command(
        sub,
        "history",
        "history:history",
        "what was observed and changed, from the SQLite history",
        "Print the history. By default, decisions that changed something or failed.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", "-c", metavar="POLICY", help="use the policy's history.path")
    src.add_argument("--db", metavar="PATH", help="the history file")
    p.add_argument("--table", default="decisions", choices=sorted(CYCLE_TABLES))
    p.add_argument(
        "--denials",
        action="store_true",
        help="the checkouts the license servers' logs refused, artists' and the farm's, "
        "and how many times artists were refused, and why (--table denials)",
    )
    p.add_argument(
        "--undeclared",
        action="store_true",
        help="licenses farm hosts used around their pool's limits, per job and step: who "
        "forgot to declare the amount, in how many cycles, and the license-hours it took "
        "(docs/operations.md, 'Use around the limit')",
    )
    p.add_argument("--pool", help="only this pool")
    p.add_argument("--since", metavar="DURATION", help="e.g. 1h, 30m, 7d")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--all", action="store_true", help="also decisions that changed nothing")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p = _command(
        sub,
        "replay",
        "history:replay",
        "re-plan recorded observations with another policy (what-if)",
        "Plan every recorded decision again with NEW.yaml and list where its target or\n"
        "write differs. Exit 0: no difference; 2: differences.",
    )
    p.add_argument(
        "--db",
        "--history",
        dest="db",
        required=True,
        metavar="PATH",
        help="the history file (as `history --db`; --history is the older name)",
    )
    p.add_argument("--config", "-c", required=True, metavar="NEW.yaml")
    p.add_argument("--pool", help="only this pool")
    p.add_argument("--limit", type=int, default=50, help="differences to print (default 50)")


def _add_audit(sub: Sub) -> None:
    p = _command(
        sub,
        "audit",
        "audit:audit",
        "report the farm's setup mistakes that defeat a pool's limit (read-only)",
        "Read each farm of the policy (limits, fleets, queue associations, the newest jobs\n"
        "that can run) and report, with a fix each: a fleet whose customAmounts declares a\n"
        "pool's amount (its tasks bypass the limit), a limit with no queue, a queue whose\n"
        "jobs need the amount but is not associated with the limit, jobs asking for an\n"
        "amount no limit has, a limit no job asks for. Exit 0: nothing found; 1: findings\n"
        "or a farm not read (docs/operations.md, 'Auditing the farm's setup'). `run` does\n"
        "the same at start and after each policy reload.",
    )
    _config(p)
    p.add_argument("--format", choices=["text", "json"], default="text")


def _add_restore(sub: Sub) -> None:
    p = _command(
        sub,
        "restore",
        "restore:restore",
        "put back every original maxWorkerCount (and with --limits, maxCount)",
        "Write back the original maxWorkerCount of every job license-sync capped, as\n"
        "recorded in the history before the first change. A job someone else changed\n"
        "since is left alone. Safe to run twice, and after a crash. Stop `run` first.",
    )
    _config(p)
    p.add_argument(
        "--limits",
        action="store_true",
        help="also put back each limit's maxCount from before the first change, and resume "
        "the queue associations license-sync paused",
    )


def _add_state(sub: Sub) -> None:
    p = _command(
        sub,
        "state",
        "state:copy",
        "copy the durable memory between a history file and a DynamoDB table",
        "Copy the durable memory — each limit's and job's original, the queues paused,\n"
        "the jobs left alone — from one store to another, whole: the destination ends as\n"
        "the source is (a job original the source lacks is removed). Safe to run twice.\n"
        "A table is written under its writer's lease: stop the service first.\n"
        "  license-sync state copy --from sqlite:/data/license-sync.db --to dynamodb:license-sync\n"
        "(docs/operations.md, 'Two replicas').",
    )
    p.add_argument("action", choices=["copy"], help="what to do (copy)")
    p.add_argument("--from", dest="source", required=True, metavar="STORE",
                   help="sqlite:PATH or dynamodb:TABLE")  # fmt: skip
    p.add_argument("--to", required=True, metavar="STORE", help="sqlite:PATH or dynamodb:TABLE")
    p.add_argument("--region", help="the table's AWS region (default: the environment's)")


def _add_simulate(sub: Sub) -> None:
    p = _command(
        sub,
        "simulate",
        "simulate:simulate",
        "compare strategies on simulated days of farm and artist load",
        "A seeded simulation of one license pool shared by artists and farm jobs, run under\n"
        "each strategy: static, naive, license-sync (the real control law), license-sync-\n"
        "denials (the law also reading the servers' logs: a refusal or an artist's\n"
        "checkout starts a cycle), each of those two with -preempt, and the bounds: the\n"
        "causal ones know the present at once, from causal-oracle (serves an artist at\n"
        "request time: no license server allows it) through causal-refused and causal-h1\n"
        "to causal-h1-race (what a real server allows); oracle knows the whole day. The\n"
        "table's legend says each in a line. Artists refused a license try again every\n"
        "minute and give up after ten tries. A scenario whose policy has `jobs:` shares\n"
        "the pool between its jobs, and the table counts job-cap writes an hour. The\n"
        "package ships five scenarios: studio-day, fx-two-sites, crunch-week, quiet-night\n"
        "and flapping-server (docs/evaluation.md).",
    )
    p.add_argument(
        "--scenario",
        action="append",
        metavar="NAME|FILE",
        help="a scenario the package ships (studio-day, …) or a YAML file; repeat to "
        "choose (default: every one the package ships)",
    )
    p.add_argument(
        "--strategy",
        action="append",
        metavar="S",
        choices=STRATEGIES,
        help="repeat to choose (default: all)",
    )
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument(
        "--days",
        type=int,
        default=1,
        metavar="N",
        help="run N seeded days (seed, seed+1, …) and add them up; a day without "
        "denials can be luck (default 1)",
    )
    p.add_argument("--policy", metavar="FILE", help="run a real policy's pool (with --pool)")
    p.add_argument("--pool", metavar="NAME", help="the pool of --policy to run")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="one day: each strategy's day; several: the frontier, artist-minutes lost "
        "against task-hours (needs matplotlib)",
    )


def _add_healthcheck(sub: Sub) -> None:
    p = _command(
        sub,
        "healthcheck",
        "health:healthcheck",
        "exit 0 if the running service's /healthz answers 200 (the container's HEALTHCHECK)",
        "Ask the running service's /healthz on the address its policy gives (metrics.address,\n"
        "read leniently: an edit the service refused does not fail the check).\n"
        "Exit 0: healthy; 1: not answering, or answering that its loop is stuck.",
    )
    p.add_argument("--config", "-c", metavar="POLICY", help="the policy the service runs")
    p.add_argument("--address", metavar="HOST:PORT", help="ask here instead")
    p.add_argument("--timeout", type=float, default=4.0, metavar="SECONDS")


def _add_demo(sub: Sub) -> None:
    p = _command(
        sub,
        "demo",
        "demo:demo",
        "the whole service on this machine: no AWS, no license server",
        "Start a fake license server and a fake Deadline endpoint on loopback, then run\n"
        "the real service through boto3 against them. Prints one line per cycle and pool;\n"
        "serves /metrics. Ctrl-C ends it. With --policy, your own policy against fakes made\n"
        "from it: its farms with the limits it names, jobs needing them, and a license\n"
        "server at each port@host of its sources (docs/cli.md, 'demo --policy').",
    )
    p.add_argument("--address", default="127.0.0.1:9462", help="metrics address")
    p.add_argument(
        "--interval",
        type=float,
        help="seconds between cycles (default 5; with --policy, the policy's own)",
    )
    p.add_argument("--policy", metavar="MY.yaml", help="run this policy on fakes made from it")
    p.add_argument(
        "--capture",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="with --policy: source NAME's servers answer this saved lmstat/rlmstat output",
    )
    p.add_argument(
        "--workdir", help="where to keep the policy and history (default: ./license-sync-demo)"
    )
    p.add_argument("--cycles", type=int, help="stop after this many cycles")


def _add_init(sub: Sub) -> None:
    p = _command(
        sub,
        "init",
        "init:init",
        "write a starter policy from the license servers and farms as they are now",
        "Read the license servers (or captured status outputs) and each farm's limits and\n"
        "queues, and write a commented starter policy that validates: a pool per limit, fed\n"
        "by the features whose names match its amount name (amount.nuke: nuke_r, nuke_i),\n"
        "with totals, today's use and a suggested reserve in comments. With --against, from\n"
        "a history alone (no access at all). Exit 0: written; 1: error (docs/cli.md, 'init').",
    )
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=[KIND:]PORT@HOST[,...]",
        help="a license source, read with its tool: 27000@lic1 (FlexLM), rlm:5053@rlm1, or "
        "a triad as one source, 27000@a,27000@b,27000@c (repeat for each)",
    )
    p.add_argument(
        "--capture",
        action="append",
        default=[],
        metavar="NAME=[KIND:]FILE",
        help="a source's saved `lmstat -a` / `rlmstat -a` output instead of reading it "
        "(with --source NAME=… for its servers, or they are taken from the capture)",
    )
    p.add_argument(
        "--farm",
        action="append",
        default=[],
        metavar="FARM_ID",
        help="a Deadline farm whose limits and queues to read (repeat)",
    )
    p.add_argument("--region", help="the farms' AWS region (default: from the environment)")
    p.add_argument(
        "--fake-endpoint",
        metavar="URL",
        help="the loopback endpoint of `license-sync demo`'s fake farm (throwaway credentials)",
    )
    p.add_argument(
        "--against",
        metavar="HISTORY.db",
        help="read the sources and farms from the last cycle this history recorded",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    _init_limit_options(p)


def _init_limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--create-limits",
        action="store_true",
        help="create the limits --limit names that a farm lacks, and their queue "
        "associations: shown as a plan, made only with --yes",
    )
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=FEATURE[,FEATURE]",
        help="the features that feed limit amount.NAME (the pool init writes for it, and "
        "what --create-limits creates)",
    )
    p.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="QUEUE_ID",
        help="with --create-limits: associate these queues (default: all)",
    )
    p.add_argument("--yes", action="store_true", help="with --create-limits: make the writes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="license-sync",
        description="Keeps AWS Deadline Cloud limits in step with what FlexLM and RLM "
        "license servers really have free.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"license-sync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_init,
        _add_parse,
        _add_run,
        _add_look,
        _add_policy,
        _add_history,
        _add_restore,
        _add_state,
        _add_audit,
        _add_simulate,
        _add_demo,
        _add_healthcheck,
    ):
        add(sub)
    return parser


def _target(name: str) -> Callable[[argparse.Namespace], int]:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(f"sync.commands.{module}"), function)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "target", None):
        parser.print_help()
        return 1
    try:
        return int(_target(args.target)(args))
    except SyncError as e:
        print(f"license-sync {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `license-sync parse … | head`: the reader left; that is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
