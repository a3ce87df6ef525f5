"""A simulated license server whose `lmstat -a` / `rlmstat -a` output follows artists and
the simulated farm's tasks checking licenses in and out."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sync.fakes.farm import FakeFarm
from sync.fakes.license_logs import DebugLog, ReportLog

REFUSED = "Licensed number of users already reached. (-4,342)"  # FlexLM's words, -4


@dataclass
class FakeFeature:
    name: str
    total: int
    amount: str | None = None  # the Deadline amount whose running tasks hold this feature
    vendor: str = "foundry"
    kind: str = "flexlm"  # flexlm | rlm
    artists: list[tuple[str, str, int]] = field(default_factory=list)  # (user, host, count)


class FakeLicenseServer:
    """Features with totals; artists set by hand (tests) or by a random walk (demo)."""

    def __init__(
        self,
        farm: FakeFarm | None,
        features: list[FakeFeature],
        host: str = "lic1",
        port: int = 27000,
        seed: int = 3,
    ):
        self.farm = farm
        self.features = {f.name: f for f in features}
        self.host = host
        self.port = port
        self.down = False
        self.rng = random.Random(seed)
        self._logs: dict[str, DebugLog | ReportLog] = {}  # by kind: the log written
        # one lock with the farm's: the farm's clock calls `can_checkout` holding the farm's
        # lock, and an lmstat request reads the farm's holders; two locks deadlocked
        self.lock = farm.lock if farm is not None else threading.RLock()
        if farm is not None:  # a farm whose tasks use several servers asks each of them
            earlier = farm.license_check
            farm.license_check = (
                self.can_checkout
                if earlier is None
                else lambda amount, host: earlier(amount, host) and self.can_checkout(amount, host)
            )

    def set_artists(self, feature: str, n: int, prefix: str = "artist") -> None:
        with self.lock:
            self.features[feature].artists = [(f"{prefix}{i}", f"ws{i:03d}", 1) for i in range(n)]

    def farm_use(self, f: FakeFeature) -> list[tuple[str, str, int]]:
        if self.farm is None or f.amount is None:
            return []
        with self.farm.lock:
            holders = self.farm.holders(f.amount)
        return [("render", run.host, 1) for run in holders]

    def in_use(self, f: FakeFeature) -> int:
        return sum(c for _, _, c in f.artists) + len(self.farm_use(f))

    def can_checkout(self, amount: str, host: str) -> bool:
        """Called by the farm when a run's process starts on `host`: is a license free right
        now? A refusal is written to the debug log, if there is one, as the vendor daemon
        writes it."""
        with self.lock:
            for f in self.features.values():
                if f.amount == amount and self.in_use(f) >= f.total:
                    self._log(f, "DENIED", "render", host, REFUSED)
                    return False
            return True

    # -- the servers' own logs -----------------------------------------------------------------

    log_path: str | None = None  # set to write one, as a FlexLM vendor daemon does
    report_log_path: str | None = None  # set to write one, as an RLM ISV server does

    def _log(self, f: FakeFeature, kind: str, user: str, host: str, why: str = "") -> None:
        path = self.log_path if f.kind == "flexlm" else self.report_log_path
        if path is None:
            return
        log = self._logs.get(f.kind)
        if log is None or log.path != path:
            log = DebugLog(path) if f.kind == "flexlm" else ReportLog(path, self.host)
            self._logs[f.kind] = log
        log.write(datetime.now(UTC), f.vendor, kind, f.name, user, host, why)

    def walk(self, now: datetime, peak: float = 0.6) -> None:
        """Artists come and go: a random walk around a share of each feature's total."""
        with self.lock:
            for f in self.features.values():
                want = max(0, round(f.total * peak))
                n = len(f.artists)
                step = self.rng.choice([-1, 0, 0, 1]) + (
                    1 if n < want - 2 else -1 if n > want + 2 else 0
                )
                free = f.total - self.in_use(f)
                was, n = n, max(0, min(n + step, n + max(0, free)))
                if step > max(0, free):  # an artist wanted one and none was free
                    self._log(f, "DENIED", f"artist{was}", f"ws{was:03d}", REFUSED)
                for i in range(was, n):
                    self._log(f, "OUT", f"artist{i}", f"ws{i:03d}")
                for i in range(n, was):
                    self._log(f, "IN", f"artist{i}", f"ws{i:03d}")
                self.set_artists(f.name, n)

    # -- output -------------------------------------------------------------------------------

    def lmstat(self, server: str = "") -> str:
        with self.lock:
            if self.down:
                return (
                    "lmutil - Copyright (c) 1989-2023 Flexera. All Rights Reserved.\n"
                    "Error getting status: Cannot connect to license server system. "
                    '(-15,10:111 "Connection refused")\n'
                )
            out = [
                "lmutil - Copyright (c) 1989-2023 Flexera. All Rights Reserved.",
                "Flexible License Manager status on Fri 10/20/2023 14:30",
                "",
                f"License server status: {self.port}@{self.host}",
                f"    License file(s) on {self.host}: /opt/flexlm/sim.lic:",
                "",
                f"{self.host}: license server UP (MASTER) v11.19.6",
                "",
            ]
            vendors = sorted({f.vendor for f in self.features.values() if f.kind == "flexlm"})
            for vendor in vendors:
                out += [
                    f"Vendor daemon status (on {self.host}):",
                    "",
                    f"  {vendor}: UP v11.19.6",
                    "",
                    "Feature usage info:",
                    "",
                ]
                handle = 100
                for f in self.features.values():
                    if f.kind != "flexlm" or f.vendor != vendor:
                        continue
                    users = f.artists + self.farm_use(f)
                    used = sum(c for _, _, c in users)
                    out += [
                        f"Users of {f.name}:  (Total of {f.total} license"
                        f"{'s' if f.total != 1 else ''} issued;  Total of {used} license"
                        f"{'s' if used != 1 else ''} in use)",
                        "",
                        f'  "{f.name}" v2024.0701, vendor: {vendor}, expiry: 30-dec-2027',
                        "  floating license",
                        "",
                    ]
                    for user, host, count in users:
                        handle += 1
                        extra = f", {count} licenses" if count > 1 else ""
                        out.append(
                            f"    {user} {host} {host} (v2024.0701) "
                            f"({self.host}/{self.port} {handle}), start Fri 10/20 9:00{extra}"
                        )
                    out.append("")
            return "\n".join(out) + "\n"

    def rlmstat(self, server: str = "") -> str:
        with self.lock:
            if self.down:
                return (
                    'Error connecting to "rlm" server\n'
                    f'     Connection attempted to host: "{self.host}" on port {self.port}\n'
                    "     Connection refused\n"
                )
            out = [f"\trlm status on {self.host} (port {self.port}), up 1d 00:00:00", ""]
            isvs = sorted({f.vendor for f in self.features.values() if f.kind == "rlm"})
            out += ["\t   ISV servers:", "\t   Name           Port Running Restarts"]
            out += [
                f"\t   {isv:<14} {self.port + 1 + i}   Yes       0" for i, isv in enumerate(isvs)
            ]
            for i, isv in enumerate(isvs):
                port = self.port + 1 + i
                feats = [f for f in self.features.values() if f.kind == "rlm" and f.vendor == isv]
                out += [
                    "",
                    f"\t{isv} ISV server status on {self.host} (port {port}), up 1d",
                    f"\t{isv} license pool status on {self.host} (port {port})",
                    "",
                ]
                for f in feats:
                    used = self.in_use(f)
                    out += [
                        f"\t{f.name} v2024.0701",
                        f"\t\tcount: {f.total}, # reservations: 0, inuse: {used}, exp: permanent",
                        "\t\tobsolete: 0, min_remove: 120, total checkouts: 0",
                    ]
                out += ["", f"\t{isv} license usage status on {self.host} (port {port})", ""]
                for f in feats:
                    for j, (user, host, count) in enumerate(f.artists + self.farm_use(f)):
                        out.append(
                            f"\t{f.name} v2024.0701: {user}@{host} {count}/0 at 11/28 09:00"
                            f"  (handle: {j + 16:x})"
                        )
            return "\n".join(out) + "\n"

    def text(self, kind: str, server: str = "") -> str:
        return self.lmstat(server) if kind == "lmstat" else self.rlmstat(server)
