"""`license-sync run`: the service."""

from __future__ import annotations

import argparse

from sync.commands import EXIT_ERROR, EXIT_OK
from sync.cycle.serve import serve
from sync.law.render import decision_line, limit_name
from sync.policy import load_policy
from sync.process import logging_setup
from sync.process.app import build_service


def run(args: argparse.Namespace) -> int:
    logging_setup.setup(args.log_format, args.verbose)
    svc = build_service(load_policy(args.config), dry_run=args.dry_run, adopt=args.adopt)
    if args.once:
        try:
            result = svc.run_cycle()
            svc.audit_setup()
        finally:
            if svc.history is not None:
                svc.history.close()
        undeclared = result.observed.undeclared
        for pp in result.plan.pools.values():
            for d in pp.decisions:
                print(decision_line(d, pp.figures, limit_name(d, pp), undeclared.get(pp.pool, ())))
        if svc.policy.exporter_only:  # no pool to print: say what each source showed
            for name, state in result.observed.sources.items():
                r = state.report
                said = (
                    f"up, {len(r.features)} feature(s)" if r.up else "DOWN: " + "; ".join(r.errors)
                )
                print(f"source {name}: {said}")
        return EXIT_OK if result.ok else EXIT_ERROR
    address = args.metrics_address or svc.policy.metrics.address
    return serve(svc, address, stop_grace=args.stop_grace)
