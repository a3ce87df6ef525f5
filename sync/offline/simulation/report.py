"""The simulation's figures: tables for people, JSON for scripts, and plots."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sync.law.render import table
from sync.offline.simulation import BOUNDS, LEGENDS
from sync.offline.simulation.scenario import Scenario
from sync.offline.simulation.world import Result
from sync.values.errors import PolicyError

BOUND = "oracle"  # the clairvoyant bound the farm's work is measured against


@dataclass(frozen=True)
class Totals:
    """A strategy's results over one or more seeded days, added up."""

    days: int
    artist_minutes_lost: float
    artists_gave_up: int
    farm_denials: int
    days_with_denials: int
    task_hours: float
    preempted_task_minutes: float
    writes: int
    job_cap_writes: int
    job_cap_moves: int  # of those, a cap moved (not a job's first, nor its original back)
    hours: float
    shares: tuple[float, ...]  # % of the oracle's task-hours, a day each; () without one

    @property
    def mean_share(self) -> float | None:
        """The mean of the shares over the days; None without an oracle."""
        return sum(self.shares) / len(self.shares) if self.shares else None

    def share(self, unit: str = "") -> str:
        """`mean (min-max)` of the shares over the days, or — without an oracle."""
        if self.mean_share is None:
            return "—"
        s = self.shares
        mean = f"{self.mean_share:.1f}{unit}"
        return mean if len(s) == 1 else f"{mean} ({min(s):.1f}-{max(s):.1f})"

    @property
    def job_caps_per_hour(self) -> float:
        return self.job_cap_writes / self.hours if self.hours else 0.0

    @property
    def job_moves_per_hour(self) -> float:
        return self.job_cap_moves / self.hours if self.hours else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "artist_minutes_lost": round(self.artist_minutes_lost, 1),
            "artists_gave_up": self.artists_gave_up,
            "farm_denials": self.farm_denials,
            "days_with_denials": self.days_with_denials,
            "task_hours": round(self.task_hours, 1),
            "task_share_of_oracle": (
                round(self.mean_share, 1) if self.mean_share is not None else None
            ),
            "preempted_task_minutes": round(self.preempted_task_minutes, 1),
            "writes": self.writes,
            "job_cap_writes_per_hour": round(self.job_caps_per_hour, 2),
            "job_cap_moves_per_hour": round(self.job_moves_per_hour, 2),
        }


def summarise(results: Sequence[Result], oracle: Sequence[Result] | None = None) -> Totals:
    """Add up a strategy's days; `oracle`: the oracle's results on the same days."""
    shares: tuple[float, ...] = ()
    if oracle and all(o.task_hours for o in oracle):
        shares = tuple(
            100 * r.task_hours / o.task_hours for r, o in zip(results, oracle, strict=True)
        )

    def total(field: str) -> Any:
        return sum(getattr(r, field) for r in results)

    return Totals(
        days=len(results),
        artist_minutes_lost=total("artist_minutes_lost"),
        artists_gave_up=total("artists_gave_up"),
        farm_denials=total("denials"),
        days_with_denials=sum(1 for r in results if r.denials),
        task_hours=total("task_hours"),
        preempted_task_minutes=total("preempted_task_minutes"),
        writes=total("writes"),
        job_cap_writes=total("job_cap_writes"),
        job_cap_moves=total("job_cap_moves"),
        hours=total("hours"),
        shares=shares,
    )


def totals(by_strategy: dict[str, list[Result]]) -> dict[str, Totals]:
    oracle = by_strategy.get(BOUND)
    return {s: summarise(results, oracle) for s, results in by_strategy.items()}


def format_table(by_strategy: dict[str, list[Result]]) -> str:
    """One row a strategy, added up over the days run: one day's luck is not a policy's
    quality."""
    head = [
        "strategy",
        "artist-min lost",
        "artists gave up",
        "farm denials",
        "days with denials",
        "task-hours",
        "% of oracle",
        "preempted task-min",
        "writes",
        "job caps/h (moved)",
    ]
    rows = []
    for strategy, t in totals(by_strategy).items():
        rows.append(
            [
                strategy,
                f"{t.artist_minutes_lost:.0f}",
                str(t.artists_gave_up),
                str(t.farm_denials),
                f"{t.days_with_denials}/{t.days}",
                f"{t.task_hours:.0f}",
                t.share("%"),
                f"{t.preempted_task_minutes:.0f}",
                "—" if strategy in BOUNDS else str(t.writes),
                "—"
                if strategy in BOUNDS
                else f"{t.job_caps_per_hour:.1f} ({t.job_moves_per_hour:.1f})",
            ]
        )
    return table(head, rows)


def legend(strategies: Iterable[str]) -> str:
    """A line a strategy shown: what it knows and what the server allows it."""
    return "\n".join(f"{s}: {LEGENDS[s]}" for s in strategies)


def as_json(sc: Scenario, days: int, by_strategy: dict[str, list[Result]]) -> dict[str, Any]:
    return {
        "scenario": sc.name,
        "seeds": [sc.seed + d for d in range(days)],
        "strategies": {
            s: {**t.as_dict(), "legend": LEGENDS[s]} for s, t in totals(by_strategy).items()
        },
    }


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PolicyError(
            "--plot needs matplotlib: pip install 'deadline-license-sync[plot]'"
        ) from e
    return plt


def plot(results: list[Result], sc: Scenario, path: str) -> None:
    """The first day, a panel a strategy: maxCount, what the farm and the artists hold."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 2.6 * len(results)), sharex=True)
    if len(results) == 1:
        axes = [axes]
    for ax, r in zip(axes, results, strict=True):
        hours = [t / 3600 for t, *_ in r.series]
        ax.plot(hours, [m for _, m, _, _ in r.series], label="maxCount", drawstyle="steps-post")
        ax.plot(hours, [f for _, _, f, _ in r.series], label="farm holds")
        ax.plot(hours, [a for _, _, _, a in r.series], label="artists hold")
        ax.axhline(sc.total, color="grey", lw=0.8, ls="--", label="total")
        ax.set_title(
            f"{r.strategy}: {r.artist_minutes_lost:.0f} artist-minutes lost, "
            f"{r.denials} farm denials, {r.task_hours:.0f} task-hours",
            fontsize=9,
        )
        ax.set_ylabel("licenses")
    axes[0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("hours from start")
    fig.suptitle(sc.name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plot_frontier(
    points: dict[str, Totals],
    title: str,
    path: str,
    targets: Sequence[tuple[str, float, float]] = (),
) -> None:
    """Artist-minutes lost against farm task-hours, a point a strategy or setting;
    `targets`: (label, least task-hours, most artist-minutes), each drawn as the corner
    a point must be beyond."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, hours, minutes in targets:
        ax.axvline(hours, color="grey", lw=0.8, ls=":")
        ax.axhline(minutes, color="grey", lw=0.8, ls=":")
        ax.annotate(label, (hours, minutes), fontsize=7, color="grey")
    for name, t in points.items():
        ax.scatter(t.task_hours, t.artist_minutes_lost)
        ax.annotate(name, (t.task_hours, t.artist_minutes_lost), fontsize=7)
    ax.set_xlabel("farm task-hours done")
    ax.set_ylabel("artist-minutes lost")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
