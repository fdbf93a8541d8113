"""The monitoring page: one self-contained HTML file (plots embedded as PNG, no script, no network) and the
CSV tables beside it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from targeting.contract.io import write_tables, write_text
from targeting.figures import png_data_uri
from targeting.monitoring.performance import Monitoring

#: the weeks shown in the page's table (all weeks are in weekly.csv)
TABLE_WEEKS = 12


def hit_rates(weekly: pd.DataFrame) -> str:
    """Hit rate per week of each channel, one panel per mode and one for all modes."""
    import matplotlib.pyplot as plt

    modes = sorted(weekly["mode"].unique())
    fig, axes = plt.subplots(1, len(modes) + 1, figsize=(4 * (len(modes) + 1), 3.2), sharey=False)
    pooled = weekly.groupby(["week", "channel"])[["inspected", "hits"]].sum().reset_index()
    pooled["hit_rate"] = pooled["hits"] / pooled["inspected"]
    for ax, (title, frame) in zip(axes, [("all modes", pooled), *((m, weekly[weekly["mode"] == m]) for m in modes)],
                                  strict=True):  # fmt: skip
        for name, part in frame.groupby("channel"):
            ax.plot(pd.to_datetime(part["week"]), part["hit_rate"], marker="o", markersize=3, label=str(name))
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("hit rate of the inspections")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return png_data_uri(fig)


def recall(estimates: pd.DataFrame) -> str:
    import matplotlib.pyplot as plt

    pooled = estimates.groupby("week")[["estimated_hits_all_traffic", "model_hits"]].sum()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(pd.to_datetime(pooled.index), pooled["model_hits"] / pooled["estimated_hits_all_traffic"], marker="o")
    ax.set_ylabel("model's estimated recall")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_data_uri(fig)


def calibration(table: pd.DataFrame) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(table["mean_score"], table["hit_rate_all_traffic"], marker="o", label="all traffic (1/p weighted)")
    ax.plot(table["mean_score"], table["hit_rate_model_rows"], marker="s", label="MODEL rows")
    top = float(max(table["mean_score"].max(), 0.01))
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
    ax.set_xlabel("mean risk_score in the bin")
    ax.set_ylabel("observed hit rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_data_uri(fig)


def write_page(result: Monitoring, history: Path, out: Path) -> Path:
    """monitor.html and the CSV tables into `out`."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    out.mkdir(parents=True, exist_ok=True)
    write_tables({out / f"{name}.csv": frame for name, frame in asdict(result).items()
                  if isinstance(frame, pd.DataFrame) and len(frame)})  # fmt: skip
    weeks = sorted(result.weekly["week"].unique())[-TABLE_WEEKS:] if len(result.weekly) else []
    recent = result.weekly[result.weekly["week"].isin(weeks)]
    table = recent.pivot_table(index=["week", "mode"], columns="channel", values=["inspected", "hit_rate"],
                               aggfunc="first").sort_index(ascending=[False, True]) if len(recent) else pd.DataFrame()  # fmt: skip
    env = Environment(loader=PackageLoader("targeting.monitoring", "templates"), autoescape=select_autoescape(["html", "j2"]))
    html = env.get_template("monitor.html.j2").render(
        history=str(history), warnings=result.warnings, lift=result.lift,
        hit_rates=hit_rates(result.weekly) if len(result.weekly) else None,
        recall=recall(result.estimates) if len(result.estimates) else None,
        calibration=calibration(result.calibration) if len(result.calibration) else None,
        calibration_rows=result.calibration.to_dict("records"),
        weekly=[{"week": str(w), "mode": m, **{f"{a}_{c}": v for (a, c), v in row.items()}}
                for (w, m), row in table.iterrows()] if len(table) else [],
        channels=sorted(result.weekly["channel"].unique()) if len(result.weekly) else [],
        audit=result.audit.groupby("dimension").head(15).to_dict("records") if len(result.audit) else [],
        champions=result.champions.to_dict("records") if len(result.champions) else [],
    )  # fmt: skip
    return write_text(html, out / "monitor.html")
