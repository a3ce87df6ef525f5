"""How /healthz and /readyz judge the loop (docs/operations.md, "Listening"): ages on the
monotonic clock only, since the wall clock can step back (NTP, a VM resumed)."""

from __future__ import annotations

from collections.abc import Callable

STUCK_AFTER = 900.0  # seconds without a cycle starting before /healthz fails, at the least


class Health:
    """When cycles began and ended, and what that says of the loop."""

    def __init__(self, monotonic: Callable[[], float]):
        self.monotonic = monotonic
        self.started = monotonic()  # the service's start
        self.attempt: float | None = None  # when the last cycle began
        self.ok: float | None = None  # when the last successful cycle ended
        self.last_cycle_seconds = 0.0

    def cycle_began(self) -> None:
        self.attempt = self.monotonic()

    def cycle_ended(self, ok: bool) -> None:
        now = self.monotonic()
        self.last_cycle_seconds = now - (self.attempt if self.attempt is not None else now)
        if ok:
            self.ok = now  # when it ended: a long cycle is not a stale one

    def since_cycle_start(self) -> float:
        """Seconds since the last cycle began (or the service started)."""
        return self.monotonic() - (self.attempt if self.attempt is not None else self.started)

    def alive(self, interval: float) -> tuple[bool, str]:
        """Alive while cycles keep starting: the loop is not stuck. Generous — a cold start
        on a large farm can take minutes — since a failing /healthz restarts the process."""
        age = self.since_cycle_start()
        bound = max(5 * interval, 3 * self.last_cycle_seconds, STUCK_AFTER)
        if age > bound:
            what = "no cycle has started" if self.attempt is None else "no cycle started"
            return False, f"{what} for {age:.0f}s (> {bound:.0f}s): the loop is stuck"
        return True, f"ok: last cycle started {age:.0f}s ago"

    def ready(self, interval: float) -> tuple[bool, str]:
        """Ready while the last successful cycle ended less than three cycles ago, a cycle
        being the interval or, when cycles take longer, the last one's duration."""
        if self.ok is None:
            return False, "no successful cycle yet"
        age = self.monotonic() - self.ok
        bound = 3 * max(interval, self.last_cycle_seconds)
        if age > bound:
            return False, f"last successful cycle ended {age:.0f}s ago (> {bound:.0f}s)"
        return True, f"ok: last successful cycle ended {age:.0f}s ago"
