"""The stand-ins the in-process tests share: a license source whose report the test sets,
and a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.edges.sources import Source
from sync.licenses import Checkout, Feature, Report, Server, Vendor

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def checkout(host: str | None, user: str | None = "u", count: int = 1) -> Checkout:
    """One checkout line of `count` licenses on `host` by `user`, as lmstat lists it."""
    return Checkout(user, host, host, "v1", "lic1", 27000, 1, "Wed 11/25 12:00", count, None, None)


class FakeSource(Source):
    """A source whose report the test sets; no process, no parsing."""

    def __init__(self, name: str, total: int = 20):
        self.name, self.kind = name, "flexlm"
        self.total = total
        self.artists = 0
        self.farm = 0
        self.queued = 0  # checkouts the server has queued: artists refused now
        self.up = True
        self.farm_hosts: list[str] | None = None  # the farm's checkouts' hosts, if not render-N
        self.servers: tuple[Server, ...] = ()  # a triad's servers, as lmstat lists them
        self.vendors: tuple[Vendor, ...] = ()

    def read(self) -> Report:
        if not self.up:
            return Report("flexlm", False, errors=("Cannot connect to license server system.",))
        cos = [
            Checkout(f"a{i}", f"ws{i}", None, "v1", "lic1", 27000, i, "x", 1, None, None)
            for i in range(self.artists)
        ]
        hosts = self.farm_hosts or [f"render-{i}" for i in range(self.farm)]
        cos += [
            Checkout("render", h, None, "v1", "lic1", 27000, 100 + i, "x", 1, None, None)
            for i, h in enumerate(hosts[: self.farm])
        ]
        return Report(
            "flexlm",
            True,
            servers=self.servers,
            vendors=self.vendors,
            features=(
                Feature(
                    "foundry",
                    "nuke_r",
                    None,
                    self.total,
                    self.artists + self.farm,
                    queued=self.queued,
                    checkouts=tuple(cos),
                    expires="2027-01-31",
                ),
            ),
        )


class Clock:
    def __init__(self, t: datetime = T0):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
