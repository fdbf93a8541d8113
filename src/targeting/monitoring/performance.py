"""Real performance from recorded outcomes, without ground truth: what `targeting monitor` reports.

- Per mode and ISO week, the inspections and hit rate of each selection channel: MODEL (the champion's
  INSPECT rows), RANDOM (its exploration and random checks), and every other channel.
- Inverse-propensity estimates: each inspected row with a recorded propensity p stands for 1/p rows of
  all traffic, so sum(hit / p) estimates the hits in all traffic and the model's estimated recall is its
  hits over that total (no ground truth needed, not biased towards what the model chose).
- Calibration of `risk_score` (from the scoring runs' scores, when given) against the outcomes of the
  inspected rows, by score bin: observed on MODEL rows, and re-weighted to all traffic with 1/p.
- An audit table: the model's selection rate by origin country and by consignee type.
- The champions: each promotion decision with the Jaccard overlap of the challenger's and the champion's
  selections on its held-out window (how much a new champion changes the list officers work from).
- A warning when the model's hit rate over the recent weeks falls towards exploration's (the model then
  finds little more than chance does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from targeting.config import MIN_PROPENSITY, MONITOR_MIN_LIFT, MONITOR_RECENT_WEEKS, Target
from targeting.contract.labels import positive

#: calibration bins of risk_score
SCORE_BINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass
class Monitoring:
    weekly: pd.DataFrame  # mode, week, channel, inspected, hits, hit_rate
    estimates: pd.DataFrame  # mode, week: estimated hits in all traffic, MODEL hits, estimated recall
    calibration: pd.DataFrame  # bin, rows, mean score, observed hit rate (MODEL rows), weighted (all traffic)
    audit: pd.DataFrame  # dimension, value, declarations, selected by MODEL, selection rate
    warnings: list[str]
    lift: float  # MODEL hit rate / RANDOM hit rate over the recent weeks
    champions: pd.DataFrame = field(default_factory=pd.DataFrame)  # see `champions`

#: the columns of a promotion log (`targeting promote`'s runs, or a backtest policy's promotions.csv)
PROMOTION_COLUMNS = ("decided", "version", "promoted", "overlap", "difference", "lower_bound", "reason")


def channel(reason: pd.Series) -> pd.Series:
    """MODEL, RANDOM, or OTHER (tips, X-ray alarms, officers, the legacy rule)."""
    return reason.where(reason.isin(["MODEL", "RANDOM"]), "OTHER")


def inspected_rows(declarations: pd.DataFrame, outcomes: pd.DataFrame, target: Target | str) -> pd.DataFrame:
    """One row per inspected declaration: mode, ISO week of filing, channel of its first exam, hit,
    propensity (NaN when not recorded)."""
    hit = positive(outcomes["result"], target).groupby(outcomes["declaration_id"]).any()
    first = outcomes.sort_values("exam_at", kind="stable").drop_duplicates("declaration_id")
    propensity = first["selection_propensity"] if "selection_propensity" in first else pd.Series(np.nan, index=first.index)
    rows = pd.DataFrame({"declaration_id": first["declaration_id"].to_numpy(),
                         "channel": channel(first["selection_reason"].astype(str)).to_numpy(),
                         "propensity": propensity.to_numpy(dtype=float)})  # fmt: skip
    rows = rows.merge(declarations[["declaration_id", "mode", "filed_at"]], on="declaration_id", how="inner")
    rows["hit"] = rows["declaration_id"].map(hit).fillna(False).astype(bool).to_numpy()
    rows["week"] = rows["filed_at"].dt.tz_convert(None).dt.to_period("W-SUN").dt.start_time.dt.date  # UTC weeks
    return rows


def monitor(declarations: pd.DataFrame, outcomes: pd.DataFrame, scores: pd.DataFrame | None,
            target: Target | str = Target.HIT, promotions: pd.DataFrame | None = None) -> Monitoring:  # fmt: skip
    rows = inspected_rows(declarations, outcomes, target)
    weekly = rows.groupby(["mode", "week", "channel"]).agg(inspected=("hit", "size"), hits=("hit", "sum")).reset_index()
    weekly["hit_rate"] = weekly["hits"] / weekly["inspected"]
    p = np.clip(rows["propensity"].fillna(1.0).to_numpy(), MIN_PROPENSITY, 1.0)
    rows["weighted_hit"] = rows["hit"].to_numpy() / p
    estimates = rows.groupby(["mode", "week"]).apply(
        lambda g: pd.Series({"estimated_hits_all_traffic": g["weighted_hit"].sum(),
                             "model_hits": int(g.loc[g["channel"] == "MODEL", "hit"].sum())}),  # fmt: skip
        include_groups=False,
    ).reset_index()
    estimates["model_recall_estimated"] = estimates["model_hits"] / estimates["estimated_hits_all_traffic"].where(
        estimates["estimated_hits_all_traffic"] > 0)
    calibration = _calibration(rows, scores)
    audit = _audit(declarations, rows)
    lift, warnings = _warning(rows)
    return Monitoring(weekly, estimates, calibration, audit, warnings, lift, champions(promotions))


def champions(promotions: pd.DataFrame | None) -> pd.DataFrame:
    """The promotion decisions in time order (`PROMOTION_COLUMNS`; missing ones empty), with the champion in
    force after each and the overlap of consecutive champions' selections (only where one was promoted)."""
    if promotions is None or not len(promotions):
        return pd.DataFrame()
    table = promotions.reindex(columns=list(PROMOTION_COLUMNS)).sort_values("decided", kind="stable")
    table["promoted"] = table["promoted"].astype(str).str.lower().isin(["true", "1"])
    table["champion_overlap"] = table["overlap"].where(table["promoted"])
    return table.reset_index(drop=True)


def _calibration(rows: pd.DataFrame, scores: pd.DataFrame | None) -> pd.DataFrame:
    if scores is None or not len(scores):
        return pd.DataFrame()
    scored = rows.merge(scores[["declaration_id", "risk_score"]].drop_duplicates("declaration_id"), on="declaration_id")
    if not len(scored):
        return pd.DataFrame()
    scored["bin"] = pd.cut(scored["risk_score"], SCORE_BINS, include_lowest=True).astype(str)
    weight = 1 / np.clip(scored["propensity"].fillna(1.0), MIN_PROPENSITY, 1.0)
    scored["w"], scored["wh"] = weight, weight * scored["hit"]
    model = scored[scored["channel"] == "MODEL"]
    out = scored.groupby("bin", sort=False).agg(inspected=("hit", "size"), mean_score=("risk_score", "mean"),
                                                 weighted_rows=("w", "sum"), weighted_hits=("wh", "sum"))  # fmt: skip
    out["hit_rate_all_traffic"] = out["weighted_hits"] / out["weighted_rows"]
    out["hit_rate_model_rows"] = model.groupby("bin")["hit"].mean().reindex(out.index)
    out = out.reset_index()
    order = {str(b): i for i, b in enumerate(pd.cut(pd.Series(SCORE_BINS[1:]), SCORE_BINS, include_lowest=True).cat.categories)}
    return out.sort_values("bin", key=lambda b: b.map(order)).drop(columns=["weighted_rows", "weighted_hits"])


def _audit(declarations: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    selected = set(rows.loc[rows["channel"] == "MODEL", "declaration_id"])
    frames = []
    for dimension in ("origin_country", "consignee_type"):
        if dimension not in declarations:
            continue
        chosen = declarations["declaration_id"].isin(selected)
        grouped = pd.DataFrame({"value": declarations[dimension].astype(str).fillna("(missing)"), "chosen": chosen})
        table = grouped.groupby("value").agg(declarations=("chosen", "size"), selected_by_model=("chosen", "sum"))
        table["selection_rate"] = table["selected_by_model"] / table["declarations"]
        table = table[table["declarations"] >= 100].sort_values("selection_rate", ascending=False)
        frames.append(table.reset_index().assign(dimension=dimension))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)[["dimension", "value", "declarations", "selected_by_model", "selection_rate"]]


def _warning(rows: pd.DataFrame) -> tuple[float, list[str]]:
    """The model's lift over exploration in the recent weeks, and a warning when it is low."""
    if not len(rows):
        return np.nan, ["no inspected declarations in the history"]
    weeks = sorted(rows["week"].unique())[-MONITOR_RECENT_WEEKS:]
    recent = rows[rows["week"].isin(weeks)]
    model, random = recent[recent["channel"] == "MODEL"], recent[recent["channel"] == "RANDOM"]
    if not len(model):
        return np.nan, [f"no MODEL inspections in the last {len(weeks)} weeks"]
    if not len(random) or not random["hit"].any():
        return np.nan, [f"no RANDOM inspection found anything in the last {len(weeks)} weeks ({len(random)} inspected): "
                        "the model cannot be compared with chance"]  # fmt: skip
    lift = model["hit"].mean() / random["hit"].mean()
    warnings = []
    if lift < MONITOR_MIN_LIFT:
        warnings.append(f"the model's hit rate ({model['hit'].mean():.2%} of {len(model)}) has fallen towards "
                        f"exploration's ({random['hit'].mean():.2%} of {len(random)}) in the last {len(weeks)} weeks: "
                        f"lift {lift:.1f} < {MONITOR_MIN_LIFT:g}")  # fmt: skip
    return float(lift), warnings
