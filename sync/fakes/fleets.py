"""The fake farm's fleets and workers, and the operations that read them.

A fleet is customer-managed or service-managed (`FleetConfiguration`), with the amounts it
declares per worker (`customAmounts`). What the service documents, and the fake does:

- A queue's tasks run only on the fleets associated with it (ListQueueFleetAssociations),
  while that association is ACTIVE.
- An amount a fleet declares is a per-worker resource: a step needing it runs on that fleet
  without taking any of a limit's units (AWS's own sample, deadline-cloud-samples
  `submission_hooks/license_limits`: such a fleet "bypasses the queue-level limit
  entirely"). An amount neither the fleet declares nor a limit associated with the queue
  governs cannot be met by that fleet.
- A worker runs one session at a time (the worker agent's scheduler) and has
  `hostProperties`: the host name a license server sees its checkouts come from.
- A service-managed fleet, and the default fleet, start workers as work arrives, up to
  their `maxWorkerCount` (event-based auto scaling); an idle worker stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sync.fakes.model import Session, new_id, same_amount
from sync.fakes.operations import CREATOR, FakeError, by_offset, not_found, page

if TYPE_CHECKING:
    from datetime import datetime

CUSTOMER = "customerManaged"
SERVICE_MANAGED = "serviceManagedEc2"


@dataclass
class Worker:
    worker_id: str
    fleet_id: str
    host_name: str
    ip: str
    created_at: datetime
    session: Session | None = None  # the session it is in, if any
    sessions: list[Session] = field(default_factory=list)
    lost: bool = False  # its host went away (a reclaimed Spot instance, a pulled plug)

    @property
    def status(self) -> str:
        if self.lost:
            return "NOT_RESPONDING"
        return "RUNNING" if self.session is not None and self.session.running else "IDLE"

    @property
    def free(self) -> bool:
        return not self.lost and (self.session is None or not self.session.running)


@dataclass
class Fleet:
    fleet_id: str
    display_name: str
    kind: str  # CUSTOMER | SERVICE_MANAGED
    created_at: datetime
    max_workers: int
    amounts: list[tuple[str, float, float | None]] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    host_prefix: str = "render"

    def declares(self, amount: str) -> bool:
        return any(same_amount(name, amount) for name, _, _ in self.amounts)

    def has(self, amount: str, units: int) -> bool:
        """A worker of this fleet has `units` of `amount` (its declared maximum, or its
        minimum when it declares none)."""
        return any(
            same_amount(name, amount) and (high if high is not None else low) >= units
            for name, low, high in self.amounts
        )

    def worker(self, job_id: str, now: datetime, number: int) -> Worker | None:
        """A worker free for a run of `job_id`: one whose session is that job's (it keeps
        its session), else an idle one, else a new one while the fleet has room (auto
        scaling), else one that leaves another job's session."""
        free = [w for w in self.workers if w.free]
        for w in free:
            if w.session is not None and w.session.job_id == job_id:
                return w
        for w in free:
            if w.session is None:
                return w
        if len(self.workers) < self.max_workers:
            n = len(self.workers) + 1
            ip = f"10.{number % 256}.{n // 256 % 256}.{n % 256}"
            self.workers.append(
                Worker(new_id("worker"), self.fleet_id, f"{self.host_prefix}-{n:03d}", ip, now)
            )
            return self.workers[-1]
        return free[0] if free else None

    def configuration(self) -> dict[str, Any]:
        caps: dict[str, Any] = {
            "vCpuCount": {"min": 4},
            "memoryMiB": {"min": 8192},
            "osFamily": "LINUX",
            "cpuArchitectureType": "x86_64",
        }
        if self.amounts:
            caps["customAmounts"] = [_amount(a) for a in self.amounts]
        if self.kind == CUSTOMER:
            return {CUSTOMER: {"mode": "NO_SCALING", "workerCapabilities": caps}}
        return {
            SERVICE_MANAGED: {
                "instanceCapabilities": caps,
                "instanceMarketOptions": {"type": "spot"},
            }
        }


def _amount(a: tuple[str, float, float | None]) -> dict[str, Any]:
    name, low, high = a
    return {"name": name, "min": low} if high is None else {"name": name, "min": low, "max": high}


class FleetOperations:
    """The `op_<Operation>` methods for fleets, workers and queue–fleet associations;
    mixed into `FakeFarm`."""

    if TYPE_CHECKING:  # what FakeFarm provides
        farm_id: str
        fleets: dict[str, Fleet]
        fleet_links: dict[tuple[str, str], str]
        created: dict[str, datetime]

        def _farm(self, farm_id: str) -> None: ...

    def _fleet(self, p: dict[str, Any]) -> Fleet:
        self._farm(p["farmId"])
        fleet = self.fleets.get(p["fleetId"])
        if fleet is None:
            raise not_found(f"Fleet {p['fleetId']}")
        return fleet

    def _fleet_dict(self, fleet: Fleet) -> dict[str, Any]:
        return {
            "fleetId": fleet.fleet_id,
            "farmId": self.farm_id,
            "displayName": fleet.display_name,
            "status": "ACTIVE",
            "autoScalingStatus": "STEADY",
            "workerCount": sum(not w.lost for w in fleet.workers),
            "minWorkerCount": 0,
            "maxWorkerCount": fleet.max_workers,
            "configuration": fleet.configuration(),
            "createdAt": fleet.created_at,
            "createdBy": CREATOR,
        }

    def op_ListFleets(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        return page([self._fleet_dict(f) for f in self.fleets.values()], p, "fleets")

    def op_GetFleet(self, p: dict[str, Any]) -> dict[str, Any]:
        fleet = self._fleet(p)
        caps = {"amounts": [_amount(a) for a in fleet.amounts]} if fleet.amounts else {}
        return {
            **self._fleet_dict(fleet),
            "capabilities": caps,
            "roleArn": "arn:aws:iam::111122223333:role/fleet",
        }

    def _worker_dict(self, w: Worker) -> dict[str, Any]:
        return {
            "farmId": self.farm_id,
            "fleetId": w.fleet_id,
            "workerId": w.worker_id,
            "status": w.status,
            "hostProperties": {
                "hostName": w.host_name,
                "ipAddresses": {"ipV4Addresses": [w.ip], "ipV6Addresses": []},
            },
            "createdAt": w.created_at,
            "createdBy": CREATOR,
        }

    def _worker(self, p: dict[str, Any]) -> Worker:
        fleet = self._fleet(p)
        w = next((w for w in fleet.workers if w.worker_id == p["workerId"]), None)
        if w is None:
            raise not_found(f"Worker {p['workerId']}")
        return w

    def op_ListWorkers(self, p: dict[str, Any]) -> dict[str, Any]:
        fleet = self._fleet(p)
        return page([self._worker_dict(w) for w in fleet.workers], p, "workers")

    def op_SearchWorkers(self, p: dict[str, Any]) -> dict[str, Any]:
        """Workers of the fleets named, by creation, paged by offset. Filters and sorts
        are not simulated: refused, never ignored."""
        self._farm(p["farmId"])
        if p.get("filterExpressions") or p.get("sortExpressions"):
            raise FakeError("ValidationException", "worker filters and sorts are not simulated")
        found = [
            w
            for fid in p["fleetIds"]
            for w in self._fleet({"farmId": p["farmId"], "fleetId": fid}).workers
        ]
        return by_offset(
            found,
            p,
            "workers",
            lambda w: {k: v for k, v in self._worker_dict(w).items() if k != "farmId"},
        )

    def op_GetWorker(self, p: dict[str, Any]) -> dict[str, Any]:
        return {**self._worker_dict(self._worker(p)), "log": {"logDriver": "awslogs"}}

    def op_ListSessionsForWorker(self, p: dict[str, Any]) -> dict[str, Any]:
        w = self._worker(p)
        items = [
            {
                "sessionId": s.session_id,
                "queueId": s.queue_id,
                "jobId": s.job_id,
                "startedAt": s.started,
                "lifecycleStatus": "ENDED" if s.ended else "STARTED",
                **({"endedAt": s.ended} if s.ended else {}),
            }
            for s in w.sessions
        ]
        return page(items, p, "sessions")

    def _link_dict(self, queue_id: str, fleet_id: str) -> dict[str, Any]:
        return {
            "queueId": queue_id,
            "fleetId": fleet_id,
            "status": self.fleet_links[(queue_id, fleet_id)],
            "createdAt": self.created.get(f"{queue_id}/{fleet_id}"),
            "createdBy": CREATOR,
        }

    def op_ListQueueFleetAssociations(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        items = [
            self._link_dict(q, f)
            for q, f in self.fleet_links
            if p.get("queueId") in (None, q) and p.get("fleetId") in (None, f)
        ]
        return page(items, p, "queueFleetAssociations")

    def op_GetQueueFleetAssociation(self, p: dict[str, Any]) -> dict[str, Any]:
        self._farm(p["farmId"])
        key = (p["queueId"], p["fleetId"])
        if key not in self.fleet_links:
            raise not_found(f"Association of queue {key[0]} with fleet {key[1]}")
        return self._link_dict(*key)
