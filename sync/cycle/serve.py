"""The long-lived process: a cycle on the policy's interval, /metrics and health, and a
clean stop on SIGTERM (docs/operations.md)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from sync.cycle.record import CycleResult
from sync.cycle.service import Service
from sync.edges.http_endpoint import HealthServer, raise_open_files_limit
from sync.values.errors import SyncError
from sync.values.settings import STOP_GRACE

log = logging.getLogger("license_sync")
JOB = "cycle"
REFUSAL_DEBOUNCE = 3.0  # seconds at least between cycles an artist's refusal starts
WATCH_EVERY = 1.0  # seconds between looks of the main thread at the monotonic clock


def serve(
    svc: Service,
    address: str,
    on_cycle: Callable[[CycleResult], None] | None = None,
    stop: threading.Event | None = None,
    max_cycles: int | None = None,
    stop_grace: float = STOP_GRACE,
) -> int:
    """Run cycles on the policy's interval until SIGTERM/SIGINT (or `stop` is set).

    APScheduler runs the cycle as an interval job (`max_instances=1`, `coalesce`: a slow
    cycle is never doubled up); a new interval in the policy reschedules it, SIGHUP runs
    it at once. The main thread only waits for the stop."""
    stop = stop or threading.Event()
    health = _start_health(svc, address)
    idle = threading.Event()  # set while no cycle runs
    idle.set()
    scheduler = _scheduler(svc, _cycle_job(svc, stop, idle, on_cycle, max_cycles))
    scheduler.add_listener(_after_cycle(svc, scheduler, stop), EVENT_JOB_EXECUTED)

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            log.info("SIGHUP: reloading the policy now")
            svc.request_reload()
            if idle.is_set():  # else the cycle in flight ends first (_after_cycle)
                scheduler.modify_job(JOB, next_run_time=datetime.now(UTC))
            return
        log.info("signal %s: finishing or abandoning the current write, then stopping", signum)
        svc.stopping = True  # no new write starts
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    scheduler.start()
    kicked = {"at": 0.0}
    try:
        while not stop.wait(WATCH_EVERY):
            _kick_if_overdue(svc, scheduler, idle)
            _kick_on_news(svc, scheduler, idle, kicked)
    finally:
        # `docker stop` gives 10 s: a write still in flight after `stop_grace` is abandoned.
        # That is safe: what it would change is recorded before it is sent (docs/design.md,
        # "What is never lost"), exactly as after kill -9.
        finished = idle.wait(stop_grace)
        scheduler.shutdown(wait=False)
        _wind_down(svc, health, old, finished)
    if not finished:
        _abandon(svc, stop_grace)
    log.info("stopped cleanly")
    return 0


def _scheduler(svc: Service, cycle: Callable[[], None]) -> BackgroundScheduler:
    """The cycle on the policy's interval, the first at once; with replicas, the lease's
    heartbeat beside it (renewed, or waited for, never behind a slow cycle)."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        cycle,
        "interval",
        seconds=svc.policy.interval,
        id=JOB,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=None,
    )
    if svc.lease is not None:
        every = svc.policy.state.lease.heartbeat
        scheduler.add_job(svc.beat, "interval", seconds=every, id="lease", max_instances=1)
    return scheduler


def _kick_if_overdue(svc: Service, scheduler: BackgroundScheduler, idle: threading.Event) -> None:
    """APScheduler's interval runs on the wall clock: stepped back a day (NTP correcting a
    clock that ran ahead, a VM resumed), its next run is a day away. The monotonic clock
    says when a cycle is due; an overdue one runs now and the interval starts again."""
    overdue = svc.since_cycle_start() - svc.policy.interval
    if not idle.is_set() or overdue < WATCH_EVERY:
        return
    log.warning(
        "no cycle for %.0fs (interval %ss): the wall clock moved; running one now",
        svc.since_cycle_start(),
        svc.policy.interval,
    )
    scheduler.reschedule_job(JOB, trigger="interval", seconds=svc.policy.interval)
    scheduler.modify_job(JOB, next_run_time=datetime.now(UTC))


def _kick_on_news(
    svc: Service, scheduler: BackgroundScheduler, idle: threading.Event, kicked: dict[str, float]
) -> None:
    """News in a source's log starts a cycle now, not an interval later: an artist refused,
    or an artist's checkout leaving a pool fewer licenses free than it keeps for artists.
    The limit comes down (and, with preempt, a task is requeued) within seconds. At most
    one cycle runs at a time (the scheduler's), and a burst of news starts one cycle, not
    one each (REFUSAL_DEBOUNCE); the interval is unchanged."""
    now = time.monotonic()
    if not idle.is_set() or now - kicked["at"] < REFUSAL_DEBOUNCE:
        return
    why = svc.observer.news_now(svc.policy, svc.clock())
    if why is None:
        return
    kicked["at"] = now
    log.info("%s: a cycle now", why)
    scheduler.modify_job(JOB, next_run_time=datetime.now(UTC))


def _wind_down(
    svc: Service, health: HealthServer, handlers: dict[signal.Signals, Any], finished: bool
) -> None:
    """Everything serve() set up, put back: the process may go on (the demo, the tests).
    The lease is given up only with no write in flight: the next replica need not wait it
    out, and a write abandoned in flight keeps it held until it runs out."""
    if finished and svc.lease is not None:
        svc.lease.release()
    health.stop()
    for s, h in handlers.items():
        signal.signal(s, h)
    if svc.history is not None and finished:
        svc.history.close()
    gc.unfreeze()


def _start_health(svc: Service, address: str) -> HealthServer:
    raise_open_files_limit()  # before the server sizes its bound on it
    try:
        health = HealthServer(svc.metrics, address, svc.ready, alive=svc.alive).start()
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
        try:
            svc.audit_setup()
        except Exception:  # the loop must survive a bug in the audit too
            log.exception("the farms' setup audit failed")
        count["n"] += 1
        if max_cycles is not None and count["n"] >= max_cycles:
            stop.set()

    return job


def _after_cycle(
    svc: Service, scheduler: BackgroundScheduler, stop: threading.Event
) -> Callable[[JobExecutionEvent], None]:
    """After each cycle (once APScheduler counts it finished): a policy with a new interval
    reschedules the job; a SIGHUP that came during the cycle, or jobs whose steps are still
    being read on a cold start, run the next one now."""
    interval = {"s": svc.policy.interval}
    settled = threading.Event()

    def listener(event: JobExecutionEvent) -> None:
        if stop.is_set():
            return
        if not svc.catching_up and not settled.is_set():
            settled.set()
            freeze_long_lived()
        if svc.policy.interval != interval["s"]:
            interval["s"] = svc.policy.interval
            scheduler.reschedule_job(JOB, trigger="interval", seconds=interval["s"])
            log.info("interval is now %ss", interval["s"])
        if svc.reload_pending or svc.catching_up:
            scheduler.modify_job(JOB, next_run_time=datetime.now(UTC))

    return listener


def freeze_long_lived() -> None:
    """Once the cold start has read every job: what lives now (modules, the policy, every
    job's steps) lives for good, so the collector stops walking it at each full
    collection — on a 10,000-job farm those cost 0.1–0.2 s of a cycle's CPU, at random."""
    gc.collect()
    gc.freeze()


def _abandon(svc: Service, stop_grace: float) -> None:
    log.warning("stopped with a call still in flight after %ss; it was abandoned", stop_grace)
    if svc.stopping:  # a signal: the scheduler's worker thread would keep the process alive
        logging.shutdown()
        os._exit(0)
