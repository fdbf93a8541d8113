"""The loop's pictures: recall by week per policy (drift events marked), and cumulative recall."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def recall_by_week(weekly: pd.DataFrame, events: list[tuple[str, int]], warmup: int, cumulative: bool = False) -> Figure:
    """One line per policy; a dashed vertical line at each drift event's week."""
    import matplotlib.pyplot as plt

    column = "cumulative_recall" if cumulative else "recall"
    fig, ax = plt.subplots(figsize=(10, 5))
    for policy, part in weekly.groupby("policy", sort=False):
        ax.plot(part["week"], part[column], marker="o", markersize=3, label=str(policy),
                linestyle="--" if policy in ("RULE-only", "ORACLE-loop") else "-")  # fmt: skip
    same_day: dict[int, list[str]] = {}
    for name, day in events:  # events of one day share a line and a label
        same_day.setdefault(day, []).append(name)
    for day, names in same_day.items():
        name, week = ", ".join(names), (day - warmup) / 7
        ax.axvline(week, color="grey", linestyle=":", linewidth=1)
        ax.text(week, 1.02, name, rotation=90, fontsize=7, va="bottom", ha="center", transform=ax.get_xaxis_transform())
    ax.set_xlabel("week of the loop")
    ax.set_ylabel("cumulative recall" if cumulative else "recall (smuggling attempts caught, all channels)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
