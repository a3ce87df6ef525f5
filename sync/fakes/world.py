"""The demo's world: a fake farm and a fake license server on loopback, with artists and
jobs coming and going on a clock thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sync.fakes.deadline import FakeDeadline
from sync.fakes.farm import REALISTIC, FakeFarm
from sync.fakes.license import FakeFeature, FakeLicenseServer
from sync.fakes.operations import ARTIST


class Clocked:
    """A world behind `server`, stepped once a second by a clock thread of its own."""

    server: FakeDeadline
    _stop: threading.Event

    def step(self, now: datetime) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def denials(self) -> int:
        """Farm tasks refused a license so far, on every farm of the world."""
        return sum(f.denials for f in self.all_farms())

    def all_farms(self) -> list[FakeFarm]:  # pragma: no cover - interface
        raise NotImplementedError

    def start(self) -> None:
        self.server.start()

        def loop() -> None:
            while not self._stop.wait(1.0):
                self.step(datetime.now(UTC))

        threading.Thread(target=loop, name="sim-clock", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.server.stop()


class DemoWorld(Clocked):
    """The simulated farm and license server, stepped by a clock thread."""

    def all_farms(self) -> list[FakeFarm]:
        return [self.farm]

    def __init__(self, seed: int = 7):
        # as late and as unkind as Deadline; a frame renders in 8 to 25 s
        self.farm = FakeFarm(**REALISTIC, seed=seed, task_seconds=15.0)
        # what the bundles' commands run: a step running nuke takes a Nuke license whether
        # it declares amount.nuke or not (bundles/nuke_undeclared does not)
        self.farm.products = {"nuke": "amount.nuke", "Render": "amount.maya"}
        self.queues = [self.farm.add_queue(), self.farm.add_queue()]
        self.limits = {
            "amount.nuke": self.farm.add_limit("amount.nuke", 12, "Nuke"),
            "amount.maya": self.farm.add_limit("amount.maya", 6, "Maya"),
        }
        for q in self.queues:
            for lim in self.limits.values():
                self.farm.associate(q, lim)
        # a studio's own render nodes that declare Maya as theirs (customAmounts, as AWS's
        # license_limits sample tells studios to): their tasks bypass the limit, and
        # `license-sync audit` says so
        own = self.farm.add_fleet(
            "render-ws", 2, amounts=(("amount.maya", 0.0, 1.0),), host_prefix="render-ws"
        )
        self.farm.link_fleet(self.queues[1], own)
        self.license = FakeLicenseServer(
            self.farm,
            [
                FakeFeature("nuke_r", 20, "amount.nuke", "foundry", "flexlm"),
                FakeFeature("maya", 10, "amount.maya", "adskflex", "rlm"),
            ],
            host="lic1",
            port=27000,
            seed=seed,
        )
        self.license.set_artists("nuke_r", 8)
        self.license.set_artists("maya", 4)
        self.server = FakeDeadline(self.farm, license_text=self.license.text)
        self._stop = threading.Event()
        self._n = 0

    def step(self, now: datetime) -> None:
        self._n += 1
        submit_bundles(self.farm, self.queues, self._n)
        self.farm.tick(now)
        if self._n % 3 == 0:
            self.license.walk(now, peak=0.5)


BUNDLES = Path(__file__).parent / "bundles"  # job bundles as AWS's `deadline` client takes them


def bundle_template(name: str) -> str:
    """The OpenJD template of the job bundle `name` the project ships."""
    return (BUNDLES / name / "template.yaml").read_text()


def submit_bundles(farm: FakeFarm, queues: list[str], n: int) -> None:
    """A new job from one of the shipped bundles, made by CreateJob as a studio's are,
    while the farm has fewer than six."""
    with farm.lock:
        if sum(not j.finished for j in farm.jobs.values()) >= 6:
            return
        names = sorted(p.name for p in BUNDLES.iterdir() if p.is_dir())
        name = names[n % len(names)]
        frames = farm.rng.randint(10, 40)
        farm.call(
            "CreateJob",
            {
                "farmId": farm.farm_id,
                "queueId": queues[n % len(queues)],
                "template": bundle_template(name),
                "templateType": "YAML",
                "priority": farm.rng.choice([30, 50, 70]),
                "parameters": {"Frames": {"string": f"1-{frames}"}},
                "nameOverride": f"shot_{n:03d}_{name}",
            },
            caller=ARTIST,
        )


def keep_busy(farm: FakeFarm, queues: list[str], amount: str, n: int) -> None:
    """A new comp job needing `amount` while the farm has fewer than six."""
    with farm.lock:
        if sum(not j.finished for j in farm.jobs.values()) < 6:
            farm.add_job(
                queues[n % len(queues)],
                f"shot_{n:03d}_comp",
                tasks=farm.rng.randint(10, 40),
                amount=amount,
                priority=farm.rng.choice([30, 50, 70]),
                duration=farm.rng.uniform(8, 25),
            )


@dataclass
class FakeLimit:
    amount: str
    display_name: str
    limit_id: str | None = None  # as a policy names it by id; else one is made
    max_count: int = 10


@dataclass
class FakeServer:
    """What one license server answers `lmstat`/`rlmstat` with: its features, held by
    artists and by the tasks of `farm_id`, or a captured output, verbatim."""

    host: str
    port: int
    features: list[FakeFeature] = field(default_factory=list)
    farm_id: str | None = None
    captured: str | None = None


class StudioWorld(Clocked):
    """A studio of one's own on loopback: farms with the limits given, two queues each
    associated with every limit, comp jobs needing those amounts, and license servers by
    the `port@host` they are asked for. Every farm is behind one endpoint."""

    def __init__(
        self,
        farms: dict[str, list[FakeLimit]],
        servers: dict[str, FakeServer],
        seed: int = 7,
        artists: float = 0.4,
    ):
        self.farms = {fid: FakeFarm(fid, **REALISTIC, seed=seed) for fid in farms}
        self.queues = {fid: [f.add_queue(), f.add_queue()] for fid, f in self.farms.items()}
        self.amounts: dict[str, list[str]] = {}
        for fid, limits in farms.items():
            farm = self.farms[fid]
            for lim in limits:
                lid = farm.add_limit(lim.amount, lim.max_count, lim.display_name, lim.limit_id)
                for q in self.queues[fid]:
                    farm.associate(q, lid)
            self.amounts[fid] = [lim.amount for lim in limits]
        self.servers = servers
        self.licenses = {
            spec: self._license(srv, seed, artists)
            for spec, srv in servers.items()
            if srv.captured is None
        }
        first, *rest = self.farms.values()
        self.server = FakeDeadline(first, license_text=self.text, more_farms=tuple(rest))
        self._stop = threading.Event()
        self._n = 0

    def all_farms(self) -> list[FakeFarm]:
        return list(self.farms.values())

    def _license(self, srv: FakeServer, seed: int, artists: float) -> FakeLicenseServer:
        farm = self.farms.get(srv.farm_id or "")
        lic = FakeLicenseServer(farm, srv.features, host=srv.host, port=srv.port, seed=seed)
        for f in srv.features:
            lic.set_artists(f.name, round(f.total * artists))
        return lic

    def text(self, kind: str, spec: str) -> str:
        """What the server asked for answers; one nobody described cannot be reached."""
        srv = self.servers.get(spec)
        if srv is not None and srv.captured is not None:
            return srv.captured
        lic = self.licenses.get(spec)
        if lic is None:
            lic = FakeLicenseServer(None, [], host=spec.partition("@")[2] or "?")
            lic.down = True
        return lic.text(kind, spec)

    def step(self, now: datetime) -> None:
        self._n += 1
        for fid, farm in self.farms.items():
            if self.amounts[fid]:
                amount = self.amounts[fid][self._n % len(self.amounts[fid])]
                keep_busy(farm, self.queues[fid], amount, self._n)
            farm.tick(now)
        if self._n % 3 == 0:
            for lic in self.licenses.values():
                lic.walk(now, peak=0.5)
