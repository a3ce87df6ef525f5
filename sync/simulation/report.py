"""The simulation's tables and plot."""

from __future__ import annotations

from dataclasses import dataclass

from sync.errors import PolicyError
from sync.render import table
from sync.simulation.scenario import Scenario
from sync.simulation.world import Result


def format_table(results: list[Result]) -> str:
    head = [
        "strategy",
        "denials",
        "idle lic-h (farm waiting)",
        "utilisation",
        "tasks done",
        "% of oracle",
        "limit writes",
        "artists turned away",
    ]
    oracle = next((r for r in results if r.strategy == "oracle"), None)
    rows = []
    for r in results:
        pct = (
            f"{100 * r.tasks_done / oracle.tasks_done:.1f}%"
            if oracle and oracle.tasks_done
            else "—"
        )
        rows.append(
            [
                r.strategy,
                str(r.denials),
                f"{r.idle_license_hours:.1f}",
                f"{100 * r.utilisation:.1f}%",
                str(r.tasks_done),
                pct,
                "—" if r.strategy == "oracle" else str(r.writes),
                str(r.artist_denials),
            ]
        )
    return table(head, rows)


@dataclass(frozen=True)
class Days:
    """A strategy's results over several seeded days, added up."""

    days: int
    denials: int
    days_with_denials: int
    tasks_mean: float
    idle_mean: float
    artist_denials: int
    shares: tuple[float, ...]  # % of the oracle's tasks, a day each; () without an oracle

    def share(self, unit: str = "") -> str:
        """`mean (min-max)` of the shares, or — without an oracle."""
        if not self.shares:
            return "—"
        s = self.shares
        return f"{sum(s) / len(s):.1f}{unit} ({min(s):.1f}-{max(s):.1f})"


def summarise(results: list[Result], oracle: list[Result] | None = None) -> Days:
    """Add up a strategy's days; `oracle`: the oracle's results on the same days."""
    n = len(results)
    shares: tuple[float, ...] = ()
    if oracle and all(o.tasks_done for o in oracle):
        shares = tuple(
            100 * r.tasks_done / o.tasks_done for r, o in zip(results, oracle, strict=True)
        )
    return Days(
        days=n,
        denials=sum(r.denials for r in results),
        days_with_denials=sum(1 for r in results if r.denials),
        tasks_mean=sum(r.tasks_done for r in results) / n,
        idle_mean=sum(r.idle_license_hours for r in results) / n,
        artist_denials=sum(r.artist_denials for r in results),
        shares=shares,
    )


def format_days(by_strategy: dict[str, list[Result]]) -> str:
    """One row a strategy, over all the days: one day's luck is not a policy's quality."""
    head = [
        "strategy",
        "days",
        "denials",
        "days with denials",
        "tasks done (mean)",
        "% of oracle (mean, min-max)",
        "idle lic-h (mean)",
        "artists turned away",
    ]
    oracle = by_strategy.get("oracle")
    rows = []
    for strategy, results in by_strategy.items():
        d = summarise(results, oracle)
        rows.append(
            [
                strategy,
                str(d.days),
                str(d.denials),
                str(d.days_with_denials),
                f"{d.tasks_mean:.0f}",
                d.share("%"),
                f"{d.idle_mean:.1f}",
                str(d.artist_denials),
            ]
        )
    return table(head, rows)


def plot(results: list[Result], sc: Scenario, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PolicyError(
            "--plot needs matplotlib: pip install 'deadline-license-sync[plot]'"
        ) from e
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
            f"{r.strategy}: {r.denials} denials, {r.tasks_done} tasks, "
            f"{r.idle_license_hours:.0f} idle license-hours",
            fontsize=9,
        )
        ax.set_ylabel("licenses")
    axes[0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("hours from start")
    fig.suptitle(sc.name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
