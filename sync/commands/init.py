"""`license-sync init`: a starter policy from the license servers and the farms as they
are now — read live, from captured status outputs, or from a history with no access at
all — and, asked to, the limits it needs created (docs/cli.md, "init")."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sync.commands import EXIT_OK
from sync.edges.deadline import Deadline, factory_for
from sync.edges.history import History
from sync.edges.metrics import Metrics
from sync.edges.sources import ToolSource
from sync.edges.sources.runner import MAX_OUTPUT
from sync.licenses import Report, down_report, impossible
from sync.licenses.kinds import TOOLS, parse_text
from sync.policy import FarmConfig, PolicyErrors, check_server_spec, parse_policy, read_bounded
from sync.policy.starter import FarmSeen, SourceSeen, Starter, amount_key, starter
from sync.process import logging_setup
from sync.record import observation
from sync.values.errors import DeadlineError, HistoryError, PolicyError, SyncError


def init(args: argparse.Namespace) -> int:
    logging_setup.setup("text", args.verbose)
    _refuse_what_cannot_be(args)
    named = named_limits(args.limit)
    if args.against:
        sources, farms = _from_history(args.against, args.region)
    else:
        sources = _sources(args.source, args.capture)
        farms = [_farm(f, args) for f in args.farm]
    if not farms:
        raise SyncError("init needs a farm: --farm farm-… (or --against a history)")
    if args.create_limits:
        created = _create_limits(args, named, sources, farms)
        if created is None:
            return EXIT_OK  # the plan was shown; nothing created without --yes
        farms = created
    made = datetime.now(UTC).strftime("on %Y-%m-%d %H:%M UTC")
    written = starter(sources, farms, made + " from " + _what(args), named)
    _check(written.text)
    _write(written.text, args.output)
    _summary(written, sources, args.output)
    return EXIT_OK


def _refuse_what_cannot_be(args: argparse.Namespace) -> None:
    """The combinations of arguments init cannot honour, each with what to do."""
    if not (args.source or args.capture or args.against):
        raise SyncError("init needs something to read: --source, --capture or --against")
    if args.output not in (None, "-") and Path(args.output).exists() and not args.force:
        raise SyncError(f"{args.output} exists: init does not overwrite a policy (--force does)")
    if args.against and (args.source or args.capture or args.farm):
        raise SyncError(
            "--against reads all from the history: not with --source, --capture or --farm"
        )
    if args.against and args.create_limits:
        raise SyncError("--create-limits writes to the farms: read them live, not --against")


def _what(args: argparse.Namespace) -> str:
    if args.against:
        return f"the last cycle recorded in {args.against}"
    return "the license servers and farms read now" + (" and captures" if args.capture else "")


def _split(value: str, what: str) -> tuple[str, str, str | None]:
    """`NAME=[kind:]REST` → (name, rest, kind or None)."""
    name, eq, rest = value.partition("=")
    if not eq or not name or not rest:
        raise SyncError(f"{what} {value!r}: give NAME=SPEC, e.g. foundry=27000@lic1")
    kind, colon, spec = rest.partition(":")
    if colon and kind in TOOLS:
        return name, spec, kind
    return name, rest, None


def _sources(given: list[str], captures: list[str]) -> list[SourceSeen]:
    """Each `--source` read with its tool (or from its `--capture`), each capture alone."""
    captured = {}
    for value in captures:
        name, path, kind = _split(value, "--capture")
        captured[name] = _capture(name, path, kind)
    out = []
    for value in given:
        name, spec, kind = _split(value, "--source")
        try:
            check_server_spec(spec)
        except ValueError as e:
            raise SyncError(f"--source {value!r}: {e}") from e
        kind = kind or "flexlm"
        if name in captured:
            seen = captured.pop(name)
            how = seen.how + " (servers as given)"
            out.append(replace(seen, kind=kind, servers=(spec,), how=how, named_itself=False))
            continue
        tool = TOOLS[kind]
        report = _checked(ToolSource(name, kind, [spec], tool.executable).read())
        out.append(SourceSeen(name, kind, (spec,), report))
    for seen in captured.values():
        if not seen.servers:
            raise SyncError(
                f"--capture {seen.name}: the capture names no server: give its servers with "
                f"--source {seen.name}=PORT@HOST"
            )
        out.append(seen)
    return out


def _capture(name: str, path: str, kind: str | None) -> SourceSeen:
    try:  # what a tool may print at most, as a live read allows
        text = read_bounded(path, MAX_OUTPUT, path).decode(errors="replace")
    except ValueError as e:
        raise SyncError(f"--capture {name}: {e}") from e
    kinds = [kind] if kind else list(TOOLS)
    reports = [(k, parse_text(text, k)) for k in kinds]
    k, report = next(((k, r) for k, r in reports if r.up), reports[0])
    if report.up and (bad := impossible(report)):
        raise SyncError(f"--capture {name}: {path}: {bad[0].removesuffix('; held')}")
    if not report.up:
        raise SyncError(
            f"--capture {name}: {path} is not a status output init can read "
            f"({'; '.join(report.errors)[:200]}); name its kind: {name}=rlm:{path}"
        )
    return SourceSeen(name, k, _servers(report), report, f"from {path}", named_itself=True)


def _checked(report: Report) -> Report:
    """A read no license server can truly give (more in use than issued, a count past
    what Deadline takes) is a source not read, as the service holds it: no starter is
    written from it."""
    if report.up and (bad := impossible(report)):
        return down_report(report.format, *bad, servers=report.servers)
    return report


def _servers(report: Report) -> tuple[str, ...]:
    """The servers a report names, as one policy entry (a triad's three, comma-joined)."""
    named = [f"{s.port}@{s.host}" for s in report.servers if s.port]
    return (",".join(named),) if named else ()


def _farm(farm_id: str, args: argparse.Namespace) -> FarmSeen:
    try:
        cfg = FarmConfig(id=farm_id, region=args.region, fake_endpoint=args.fake_endpoint)
    except ValueError as e:
        raise SyncError(f"--farm {farm_id}: {_first_error(e)}") from e
    try:
        dl = _deadline(cfg)
        limits, queues = tuple(dl.limits()), dl.queues()
    except DeadlineError as e:
        if e.code == "NoRegion":
            raise SyncError(
                f"--farm {farm_id}: no AWS region: give --region, or set AWS_REGION"
            ) from e
        raise SyncError(f"--farm {farm_id}: {e}") from e
    return FarmSeen(farm_id, args.region, limits, queues, args.fake_endpoint, _workers(dl))


def _workers(dl: Deadline) -> frozenset[str]:
    """The farm's workers' hosts, to tell its checkouts (and what it uses around its
    limits); a role without ListFleets/ListWorkers reads none, and init says so."""
    try:
        return dl.worker_hosts()
    except DeadlineError as e:
        print(
            f"init: farm {dl.farm_id}: its workers not read ({e}): the farm's own "
            "checkouts are not told apart",
            file=sys.stderr,
        )
        return frozenset()


def _deadline(cfg: FarmConfig) -> Deadline:
    """The farm's Deadline view, as the service builds it (a fake endpoint: throwaway
    credentials)."""
    return factory_for(Metrics())(cfg)


def _first_error(e: ValueError) -> str:
    errors = getattr(e, "errors", None)
    return str(errors()[0]["msg"]) if callable(errors) else str(e)


def _from_history(path: str, region: str | None) -> tuple[list[SourceSeen], list[FarmSeen]]:
    """What the history's last cycle recorded: its reports and the farms' limits."""
    if not Path(path).is_file():
        raise SyncError(f"no history at {path!r}")
    try:
        data = History.reading(path).get_state("observed")
        if data is None:
            raise SyncError(f"{path}: no observation recorded yet: run one cycle first")
        observed, _, _ = observation.load(data)
    except (HistoryError, observation.RecordedError) as e:
        raise SyncError(f"{path}: {e}") from e
    sources = [
        SourceSeen(
            name, s.report.format, _servers(s.report), s.report, f"from {path}", named_itself=True
        )
        for name, s in observed.sources.items()
        if s.report.format in TOOLS
    ]
    farms = [
        FarmSeen(
            f.farm_id,
            region,
            tuple(x for x in f.limits.values() if not isinstance(x, str)),
            workers=observed.worker_hosts,
        )
        for f in observed.farms.values()
    ]
    return sources, farms


def _check(text: str) -> None:
    """The starter must validate: a starter that does not is our bug, said as one."""
    try:
        parse_policy(text, "<init>")
    except (PolicyErrors, PolicyError) as e:
        raise SyncError(f"the starter policy does not validate (a bug of init):\n{e}") from e


def _write(text: str, output: str | None) -> None:
    """To `output` whole (written beside it, then moved in), or to stdout. That it may be
    overwritten was checked before anything was read."""
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    tmp = path.with_name(f".{path.name}.init")
    tmp.write_text(text)
    tmp.replace(path)


def _summary(written: Starter, sources: list[SourceSeen], output: str | None) -> None:
    m = written.matching
    keys = sorted(written.limits)
    fed = [k for k in keys if m.pools[k]]
    guesses = sum(1 for k in fed for f in m.pools[k] if not f.sure)
    down = [s.name for s in sources if not s.report.up]
    where = output if output not in (None, "-") else "the policy above"
    print(
        f"init: {where}: {len(fed)} pool(s) ({guesses} feature match(es) a guess), "
        f"{len(keys) - len(fed)} limit(s) without a feature, {len(m.unmatched)} feature(s) "
        f"without a limit, {len(m.ambiguous)} ambiguous"
        + (f"; not read: {', '.join(down)}" if down else ""),
        file=sys.stderr,
    )
    for pool, said in written.around.items():
        print(f"init: pool {pool}: {said}", file=sys.stderr)
    name = output if output not in (None, "-") else "policy.yaml"
    print(f"next: license-sync validate {name} && license-sync plan -c {name}", file=sys.stderr)


def named_limits(values: list[str]) -> dict[str, list[str]]:
    """`--limit nuke=nuke_r,nuke_i` → {"nuke": ["nuke_r", "nuke_i"]}."""
    out: dict[str, list[str]] = {}
    for v in values:
        name, eq, features = v.partition("=")
        names = [f.strip() for f in features.split(",") if f.strip()]
        if not eq or not name.strip() or not names:
            raise SyncError(
                f"--limit {v!r}: give NAME=FEATURE[,FEATURE...], e.g. nuke=nuke_r,nuke_i"
            )
        out[amount_key(name.strip())] = names
    return out


def _create_limits(
    args: argparse.Namespace,
    named: dict[str, list[str]],
    sources: list[SourceSeen],
    farms: list[FarmSeen],
) -> list[FarmSeen] | None:
    """`--create-limits`: the limits and queue associations `--limit` names that a farm
    lacks, as a plan; made only with `--yes`. The farms read again after."""
    from sync.commands.init_limits import apply, plan_limits

    steps = plan_limits(named, sources, farms, args.queue)
    for line in steps.lines():
        print(line, file=sys.stderr)
    if not steps.writes:
        return farms
    if not args.yes:
        print("nothing created: run again with --yes to create them", file=sys.stderr)
        return None
    apply(
        steps,
        lambda farm_id: _deadline(
            FarmConfig(id=farm_id, region=args.region, fake_endpoint=args.fake_endpoint)
        ),
    )
    return [_farm(f.farm_id, args) for f in farms]
