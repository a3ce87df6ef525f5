"""The logs a fake license server writes, each as its manager writes it: a FlexLM vendor
daemon's debug log and an RLM ISV server's report log (`REPORTLOG`, std format). What the
demo's service follows; read back in tests by the product's own parsers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass
class DebugLog:
    """A FlexLM vendor daemon's debug log: a TIMESTAMP at start and each new day."""

    path: str
    _day: date | None = None

    def write(
        self, now: datetime, vendor: str, kind: str, feature: str, user: str, host: str, why: str
    ) -> None:
        lines = []
        if self._day != now.date():
            self._day = now.date()
            lines.append(f"{now:%H:%M:%S} ({vendor}) TIMESTAMP {now.month}/{now.day}/{now.year}")
        tail = f"  ({why})" if why else ""
        lines.append(f'{now:%H:%M:%S} ({vendor}) {kind}: "{feature}" {user}@{host}{tail}')
        _append(self.path, lines)


@dataclass
class ReportLog:
    """An RLM ISV server's report log, std format: its start records, then a record an
    event (Reprise's "Reportlog File Format"); a denial is RLM_EL_ALLINUSE, -22."""

    path: str
    host: str
    _started: bool = False
    _handle: int = 0x40

    def write(
        self, now: datetime, vendor: str, kind: str, feature: str, user: str, host: str, why: str
    ) -> None:
        lines = []
        if not self._started:
            self._started = True
            lines += [
                "RLM Report Log Format 0, version 16.1, authenticated",
                f"ISV: {vendor}, RLM version 16.1 BL2",
                f"START {self.host} {now:%m/%d/%Y %H:%M}",
            ]
        self._handle += 1
        when = f"{now:%m/%d %H:%M:%S}"
        if kind == "OUT":
            lines.append(
                f'OUT {feature} 1.0 1 {user} {host} "" 1 1 0 {self._handle:x} '
                f'{self._handle:x} 1f4 "" "" "" {when}'
            )
        elif kind == "IN":
            lines.append(f'IN 1 {feature} 1.0 {user} {host} "" 1 0 0 {self._handle:x} {when}')
        else:  # a refusal, the application's last attempt
            lines.append(f'DENY {feature} 1.0 {user} {host} "" 1 -22 1 {now:%m/%d %H:%M}')
        _append(self.path, lines)


def _append(path: str, lines: list[str]) -> None:
    with open(path, "a") as fh:
        fh.write("\n".join(lines) + "\n")
