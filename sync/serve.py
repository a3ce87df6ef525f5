"""The long-lived process: a cycle on the policy's interval, /metrics and health, and a
clean stop on SIGTERM (docs/operations.md)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from sync.errors import SyncError
from sync.metrics import HealthServer
from sync.record import CycleResult
from sync.service import Service

log = logging.getLogger("license_sync")
STOP_GRACE = 7.0  # seconds a cycle in flight has to end after SIGTERM (docker stop: 10)


def serve(
    svc: Service,
    address: str,
    on_cycle: Callable[[CycleResult], None] | None = None,
    stop: threading.Event | None = None,
    max_cycles: int | None = None,
    stop_grace: float = STOP_GRACE,
) -> int:
    """Run cycles on the policy's interval until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop or threading.Event()
    health = _start_health(svc, address)
    idle = threading.Event()  # set while no cycle runs
    idle.set()
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        _cycle_job(svc, stop, idle, on_cycle, max_cycles),
        "interval",
        seconds=svc.policy.interval,
        id="cycle",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    hup = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            hup.set()
            return
        log.info("signal %s: finishing or abandoning the current write, then stopping", signum)
        svc.stopping = True  # no new write starts
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    scheduler.start()
    try:
        _wait(svc, scheduler, stop, hup)
    finally:
        # `docker stop` gives 10 s: a write still in flight after `stop_grace` is abandoned.
        # That is safe: what it would change is recorded before it is sent (docs/design.md,
        # "What is never lost"), exactly as after kill -9.
        finished = idle.wait(stop_grace)
        scheduler.shutdown(wait=False)
        health.stop()
        for s, h in old.items():
            signal.signal(s, h)
        if svc.history is not None and finished:
            svc.history.close()
    if not finished:
        _abandon(svc, stop_grace)
    log.info("stopped cleanly")
    return 0


def _wait(
    svc: Service, scheduler: BackgroundScheduler, stop: threading.Event, hup: threading.Event
) -> None:
    """The main thread until a stop: reschedules on a new interval, reloads on SIGHUP.
    Rescheduling happens here, never in the job (the job store lock)."""
    interval = svc.policy.interval
    while not stop.wait(0.5):
        if hup.is_set():
            hup.clear()
            log.info("SIGHUP: reloading the policy now")
            svc.request_reload()
            scheduler.modify_job("cycle", next_run_time=datetime.now(UTC))
        if svc.policy.interval != interval:
            interval = svc.policy.interval
            scheduler.reschedule_job("cycle", trigger="interval", seconds=interval)
            log.info("interval is now %ss", interval)


def _start_health(svc: Service, address: str) -> HealthServer:
    try:
        health = HealthServer(svc.metrics, address, svc.ready).start()
    except OSError as e:
        raise SyncError(
            f"cannot serve metrics on {address!r}: {e.strerror}; "
            "choose another with `run --metrics-address`, `demo --address` or the policy's "
            "metrics.address"
        ) from e
    log.info(
        "license-sync serving /metrics, /healthz, /readyz on %s (every %ss)",
        address,
        svc.policy.interval,
    )
    return health


def _cycle_job(
    svc: Service,
    stop: threading.Event,
    idle: threading.Event,
    on_cycle: Callable[[CycleResult], None] | None,
    max_cycles: int | None,
) -> Callable[[], None]:
    """The scheduler's job: one cycle, surviving a bug in it; `idle` is clear while it runs."""
    count = {"n": 0}

    def job() -> None:
        if stop.is_set():
            return
        idle.clear()
        try:
            result = svc.run_cycle()
        except Exception:  # the loop must survive a bug in one cycle
            log.exception("cycle failed")
            svc.metrics.cycles.labels("error").inc()
            return
        finally:
            idle.set()
        if on_cycle is not None:
            on_cycle(result)
        count["n"] += 1
        if max_cycles is not None and count["n"] >= max_cycles:
            stop.set()

    return job


def _abandon(svc: Service, stop_grace: float) -> None:
    log.warning("stopped with a call still in flight after %ss; it was abandoned", stop_grace)
    if svc.stopping:  # a signal: the scheduler's worker thread would keep the process alive
        logging.shutdown()
        os._exit(0)
