"""`license-sync restore`: put back every value license-sync overwrote."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from sync.commands import EXIT_ERROR, EXIT_OK
from sync.cycle.restore import restore as restore_all
from sync.cycle.service import Service, utcnow
from sync.policy import load_policy
from sync.process import logging_setup
from sync.process.app import build_service
from sync.values.errors import SyncError


def _hold_the_lease(svc: Service) -> threading.Event:
    """With replicas, restore writes as the writer does: it takes the lease, waiting out a
    writer that was killed, refuses while a running one renews it, and renews it while it
    writes. Returns what stops the renewals."""
    done, lease = threading.Event(), svc.lease
    if lease is None:
        return done
    if not lease.held:
        print(f"waiting up to {lease.duration:g}s for the writer's lease…", file=sys.stderr)
    if not lease.take():
        raise SyncError(
            f"another replica holds the writer's lease of {svc.store.durable_path}: "
            "stop the service's replicas first, then restore"
        )
    every = svc.policy.state.lease.heartbeat

    def renew() -> None:
        while not done.wait(every):
            lease.beat()

    threading.Thread(target=renew, name="lease", daemon=True).start()
    return done


def restore(args: argparse.Namespace) -> int:
    logging_setup.setup("text", args.verbose)
    svc = build_service(load_policy(args.config), watch=False, read_only_ok=True)
    renewing = _hold_the_lease(svc)
    path = svc.policy.history.path
    if svc.history is None or not Path(path).exists():
        raise SyncError(f"no history at {path!r}: nothing to restore")
    # a memory that cannot be read whole is put back as far as it can be read, with
    # nothing recorded: what could not be read is not overwritten by what could
    unreadable, memory = svc.store.unreadable, svc.memory
    if unreadable:
        memory, svc.store.unreadable, svc.history.read_only = svc.store.salvaged, None, True
    checked = len(memory.originals)
    try:
        done = restore_all(memory, svc.writer, utcnow(), limits=args.limits)
    finally:
        svc.history.close()
        renewing.set()
        if svc.lease is not None:
            svc.lease.release()
    for line in done.lines:
        print(line)
    for line in done.failed:
        print(f"error: {line}", file=sys.stderr)
    print(f"{checked} job(s) checked; {len(done.memory.originals)} still recorded")
    if svc.history.read_only and not unreadable:
        print(
            f"{path} is read-only (a copy?): what was put back is not recorded in it; "
            "restore is idempotent, so running it again later against the writable "
            "history is safe"
        )
    if unreadable:  # what it could not read may hold values still to put back
        print(
            f"error: {unreadable}: what that held is not put back, and nothing was recorded "
            "in the history (docs/operations.md, 'The history was lost')",
            file=sys.stderr,
        )
    return EXIT_ERROR if done.failed or unreadable else EXIT_OK
