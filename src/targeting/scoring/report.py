"""The officers' review report: one self-contained HTML file per scoring run (no network needed).

Summary first (counts per mode and decision, budget use, the score histogram, drift warnings), then one
card per selected shipment: the declaration's key fields, score and decision, the plain-language reasons,
and a SHAP waterfall of its reason groups (log-odds, from the expected value to the shipment's score).
Pictures are PNGs embedded as data URIs; the page needs no JavaScript.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from targeting.config import REPORT_CARDS
from targeting.contract.io import read_parquet, write_text
from targeting.figures import png_data_uri
from targeting.model.explain import EXPLANATION_COLUMNS

KEY_FIELDS = ("filed_at", "arrival_date", "origin_country", "load_loc", "transit_locs", "discharge_loc",
              "consignee_id", "consignor_id", "forwarder_id", "hs_code", "goods_desc", "declared_value_usd",
              "gross_weight_kg", "n_packages", "package_type", "container_type", "mail_class")  # fmt: skip


def histogram(scores: pd.DataFrame) -> str:
    """Risk score distribution per mode (log count axis), with the selected rows marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    bins = np.linspace(0, 1, 41)
    for mode, part in scores.groupby("mode", sort=True):
        ax.hist(part["risk_score"], bins=bins, histtype="step", linewidth=1.5, label=str(mode))
    chosen = scores[scores["decision"] != "RELEASE"]
    if len(chosen):
        ax.hist(chosen["risk_score"], bins=bins, color="crimson", alpha=0.25, label="selected")
    ax.set_yscale("log")
    ax.set_xlabel("risk score (calibrated probability of a hit)")
    ax.set_ylabel("declarations")
    ax.legend(fontsize=8, ncol=5)
    return png_data_uri(fig)


def waterfall(groups: pd.DataFrame, expected_value: float, max_display: int = 8) -> str:
    """SHAP waterfall of one shipment's reason groups (shap draws it; values are exact TreeSHAP sums)."""
    import matplotlib.pyplot as plt
    import shap

    values = groups["contribution"].to_numpy(dtype=float)
    explanation = shap.Explanation(
        values=values, base_values=expected_value, feature_names=list(groups["label"])
    )
    plt.figure()
    shap.plots.waterfall(explanation, max_display=max_display, show=False)
    fig = plt.gcf()
    fig.set_size_inches(7, 0.42 * min(len(values), max_display) + 1.4)
    return png_data_uri(fig)


#: from this many cards on, the waterfalls are drawn by two worker processes (matplotlib is not
#: thread-safe; a worker's start costs as much as several cards)
PARALLEL_CARDS = 16


def waterfalls(per_card: list[pd.DataFrame | None], expected_value: float) -> list[str | None]:
    """The cards' waterfall pictures (None for a card without explanations), in order."""
    import os

    jobs = [(i, g) for i, g in enumerate(per_card) if g is not None]
    pictures: list[str | None] = [None] * len(per_card)
    workers = min(2, os.cpu_count() or 1)
    if len(jobs) >= PARALLEL_CARDS and workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:  # fmt: skip
            drawn = pool.map(waterfall, [g for _, g in jobs], [expected_value] * len(jobs), chunksize=4)
            for (i, _), picture in zip(jobs, drawn, strict=True):
                pictures[i] = picture
    else:
        for i, g in jobs:
            pictures[i] = waterfall(g, expected_value)
    return pictures


def _die_with_parent(parent: int) -> None:
    """In a worker: have the kernel end this process when the scoring run that started it ends, even by
    kill -9 (Linux's parent-death signal), instead of waiting on its pipe for minutes."""
    import ctypes
    import ctypes.util
    import os
    import signal

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the worker ends when its pipe closes
    if os.getppid() != parent:  # the parent died before the signal was set
        os._exit(1)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def build_report(out_dir: Path, max_cards: int = REPORT_CARDS) -> str:
    """The HTML of a scoring run folder (scores, explanations, selected declarations, summary)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    summary = json.loads((out_dir / "summary.json").read_text())
    scores = read_parquet(out_dir / "scores.parquet")
    explanations = read_parquet(out_dir / "explanations.parquet") if (out_dir / "explanations.parquet").exists() \
        else pd.DataFrame(columns=list(EXPLANATION_COLUMNS))  # fmt: skip
    selected = read_parquet(out_dir / "selected.parquet") if (out_dir / "selected.parquet").exists() \
        else pd.DataFrame(columns=["declaration_id"])  # fmt: skip
    drift = pd.read_csv(out_dir / "drift.csv") if (out_dir / "drift.csv").exists() else pd.DataFrame()
    flagged = scores[scores["decision"] != "RELEASE"].sort_values(
        ["decision", "risk_rank"], ascending=[False, True]
    )
    fields = selected.set_index("declaration_id") if len(selected) else selected
    by_id = dict(tuple(explanations.groupby("declaration_id"))) if len(explanations) else {}
    shown = flagged.head(max_cards)
    pictures = waterfalls([by_id.get(i) for i in shown["declaration_id"]], summary["shap_expected_value"])
    cards = []
    for row, picture in zip(shown.itertuples(index=False), pictures, strict=True):
        decl = fields.loc[row.declaration_id] if row.declaration_id in fields.index else None
        cards.append({
            "id": row.declaration_id, "mode": row.mode, "decision": row.decision, "rank": row.risk_rank,
            "score": row.risk_score, "propensity": row.selection_propensity,
            "reasons": [getattr(row, f"reason_{k}") for k in (1, 2, 3) if getattr(row, f"reason_{k}")],
            "fields": [(f.replace("_", " "), _fmt(decl[f])) for f in KEY_FIELDS
                       if decl is not None and f in decl.index and _fmt(decl[f])],
            "waterfall": picture,
        })  # fmt: skip
    env = Environment(
        loader=PackageLoader("targeting.scoring", "templates"), autoescape=select_autoescape(["html", "j2"])
    )
    return env.get_template("report.html.j2").render(
        summary=summary,
        per_mode=summary["per_mode"],
        cards=cards,
        n_flagged=len(flagged),
        histogram=histogram(scores) if len(scores) else None,
        drift=drift[~drift["grows_with_time"].astype(bool)].head(10).to_dict("records") if len(drift) else [],
        as_of=drift[drift["grows_with_time"].astype(bool)].head(3).to_dict("records") if len(drift) else [],
        psi_warning=0.2,
    )


def write_report(out_dir: Path, max_cards: int = REPORT_CARDS) -> Path:
    return write_text(build_report(Path(out_dir), max_cards), Path(out_dir) / "report.html")
