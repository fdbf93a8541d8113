"""Statistics of a simulated world, read back from its run folder (what §4.10 asks us to look at).

Used by `targeting world-stats DIR`, by the simulator's acceptance tests and by the benchmark, so the
numbers in the issue notes are the numbers the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from targeting.contract.schema import HIT_RESULTS

MODES = ("SEA", "AIR", "EXPRESS", "POST")


@dataclass
class WorldStats:
    rows_per_mode: pd.DataFrame  # mode, declarations, smuggling, prevalence_per_100k
    patterns: pd.DataFrame  # pattern_id, mode, rows
    selection: pd.DataFrame  # mode, selection_reason, selected, hits, hit_rate, smuggling_rate
    rule: pd.DataFrame  # mode, auc, rule_smuggling_rate, random_expected_rate, lift


def load(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Declarations (the columns the statistics need), inspections and ground truth of a run."""
    folder = Path(folder)
    cols = ["declaration_id", "mode", "filed_at"]
    decl = pd.read_parquet(folder / "declarations.parquet", columns=cols)
    insp = pd.read_parquet(folder / "inspections.parquet")
    truth = pd.read_parquet(folder / "ground_truth.parquet")
    return decl, insp, truth


def per_declaration_selection(insp: pd.DataFrame) -> pd.DataFrame:
    """One row per inspected declaration: its selection reason and whether any exam found drugs."""
    hit = insp["result"].isin(list(HIT_RESULTS))
    g = insp.assign(hit=hit).groupby("declaration_id", sort=False)
    return pd.DataFrame(
        {"selection_reason": g["selection_reason"].first(), "hit": g["hit"].any()}
    ).reset_index()


def world_stats(folder: str | Path) -> WorldStats:
    decl, insp, truth = load(folder)
    frame = decl.merge(
        truth[["declaration_id", "is_smuggling", "pattern_id", "rule_score"]], on="declaration_id"
    )
    sel = per_declaration_selection(insp)
    frame = frame.merge(sel, on="declaration_id", how="left")
    frame["is_smuggling"] = frame["is_smuggling"].fillna(False).astype(bool)
    frame["hit"] = frame["hit"].fillna(False).astype(bool)

    rows = frame.groupby("mode").agg(
        declarations=("declaration_id", "size"), smuggling=("is_smuggling", "sum")
    )
    rows["inspected"] = frame[frame["selection_reason"].notna()].groupby("mode").size()
    rows["inspection_rate"] = rows["inspected"] / rows["declarations"]
    rows["prevalence_per_100k"] = 1e5 * rows["smuggling"] / rows["declarations"]

    smug = frame[frame["is_smuggling"]]
    patterns = smug.groupby(["pattern_id", "mode"]).size().rename("rows").reset_index()

    chosen = frame[frame["selection_reason"].notna()]
    selection = chosen.groupby(["mode", "selection_reason"]).agg(
        selected=("declaration_id", "size"), hits=("hit", "sum"), smuggling=("is_smuggling", "sum")
    )
    selection["hit_rate"] = selection["hits"] / selection["selected"]
    selection["smuggling_rate"] = selection["smuggling"] / selection["selected"]
    return WorldStats(rows.reset_index(), patterns, selection.reset_index(), rule_lift(frame))


def rule_lift(frame: pd.DataFrame) -> pd.DataFrame:
    """Per mode: AUC of the legacy rule score, and RULE's smuggling rate over RANDOM's expected rate.

    RANDOM draws uniformly from the declarations not tipped off, so its expected smuggling rate is the
    prevalence in that pool; comparing with the expectation instead of the few dozen RANDOM picks of a
    small world removes most of the sampling noise from the lift.
    """
    out = []
    for mode in MODES:
        sub = frame[frame["mode"] == mode]
        if sub.empty:
            continue
        y = sub["is_smuggling"].to_numpy()
        auc = roc_auc_score(y, sub["rule_score"]) if 0 < y.sum() < len(y) else np.nan
        pool = sub[sub["selection_reason"] != "INTEL_TIP"]
        rule = sub[sub["selection_reason"] == "RULE"]
        base = pool["is_smuggling"].mean()
        rate = rule["is_smuggling"].mean() if len(rule) else np.nan
        out.append({"mode": mode, "auc": auc, "rule_selected": len(rule), "rule_smuggling_rate": rate,
                    "random_expected_rate": base, "lift": rate / base if base > 0 else np.nan})  # fmt: skip
    return pd.DataFrame(out)
