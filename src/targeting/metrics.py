"""Metrics at the inspection budget, exactly as evaluation.md §1 (no I/O, no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from targeting.contract.io import strictly_ascending

BUDGETS = (1.0, 2.0, 5.0, 10.0)


def n_selected(k_percent: float, n: int) -> int:
    """Exactly max(1, floor(k/100 * N)) rows (never a score threshold)."""
    return max(1, int(np.floor(k_percent / 100 * n + 1e-9))) if n else 0


def ranking_order(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row positions by score descending, ties by declaration id ascending (evaluation.md §1). Sorted by
    score (not stably: ties are ordered next), then only the runs of tied scores are re-sorted by id: by
    row position when the ids ascend already (a manifest sorted by id), else with the ids ranked by
    Arrow's sort when they are Arrow text (comparing a million ids as Python strings costs more than the
    whole sort by score)."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores)
    ranked = scores[order]
    same = (ranked[1:] == ranked[:-1]) | (np.isnan(ranked[1:]) & np.isnan(ranked[:-1]))
    in_tie = np.r_[False, same] | np.r_[same, False]
    if in_tie.any():
        pos = np.flatnonzero(in_tie)
        rows = order[pos]
        # runs of tied scores are contiguous in `order`: one sort of (run, id rank) as a single integer key
        run = np.cumsum(np.r_[True, (pos[1:] != pos[:-1] + 1) | ~same[pos[:-1]]]) - 1
        if isinstance(ids, pd.Series) and strictly_ascending(ids):  # rows in id order: position is id rank
            key = run * len(scores) + rows
        else:
            key = run * len(rows) + _id_ranks(ids, rows)
        order[pos] = rows[np.argsort(key, kind="stable")]
    return order


def _id_ranks(ids: pd.Series | np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ascending rank of each of `ids[rows]` among them (ids are unique)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(ids, pd.Series) and isinstance(ids.array, pd.arrays.ArrowStringArray):
        by_id = pc.sort_indices(pa.array(ids.array.take(rows))).to_numpy()
    else:
        picked = ids.iloc[rows] if isinstance(ids, pd.Series) else np.asarray(ids, dtype=object)[rows]
        by_id = np.argsort(np.asarray(picked, dtype=object).astype(str), kind="stable")
    ranks = np.empty(len(rows), np.int64)
    ranks[by_id] = np.arange(len(rows))
    return ranks


def select_top(scores: pd.Series | np.ndarray, ids: pd.Series | np.ndarray, k_percent: float) -> np.ndarray:
    """Boolean mask of the top k% by score, ties broken by declaration id ascending."""
    scores, ids = np.asarray(scores, dtype=float), np.asarray(ids, dtype=object)
    order = ranking_order(scores, ids)
    chosen = np.zeros(len(scores), bool)
    chosen[order[: n_selected(k_percent, len(scores))]] = True
    return chosen


def select_top_per_group(
    scores: np.ndarray, ids: np.ndarray, groups: np.ndarray, k_percent: float
) -> np.ndarray:
    """`select_top` within each group (e.g. day x mode: each mode's daily budget), in one sort."""
    scores, ids = np.asarray(scores, dtype=float), np.asarray(ids, dtype=object)
    codes = pd.factorize(np.asarray(groups))[0]
    order = np.lexsort((ids, -scores, codes))
    sizes = np.bincount(codes)
    quota = np.array([n_selected(k_percent, int(n)) for n in sizes])
    ranked = codes[order]
    rank = np.arange(len(order)) - np.concatenate([[0], np.cumsum(sizes)[:-1]])[ranked]
    chosen = np.zeros(len(scores), bool)
    chosen[order[rank < quota[ranked]]] = True
    return chosen


def at_budget(y: np.ndarray, scores: np.ndarray, ids: np.ndarray, k_percent: float,
              qty: np.ndarray | None = None) -> dict[str, float]:  # fmt: skip
    """precision, recall (and seized-kg share when `qty` is given) of the top k%."""
    y = np.asarray(y, dtype=bool)
    chosen = select_top(scores, ids, k_percent)
    hits = float(y[chosen].sum())
    out = {"precision": hits / max(1, chosen.sum()), "recall": hits / y.sum() if y.sum() else np.nan}
    if qty is not None:
        q = np.nan_to_num(np.asarray(qty, dtype=float))
        out["seized_kg"] = float(q[chosen].sum() / q.sum()) if q.sum() > 0 else np.nan
    return out


def budget_table(frame: pd.DataFrame, score: str = "risk_score", label: str = "label",
                 budgets: tuple[float, ...] = BUDGETS, by: str | None = "mode", qty: str | None = None) -> pd.DataFrame:  # fmt: skip
    """precision/recall@k% per slice (`by`, e.g. mode) and pooled; one row per slice and budget."""
    rows = []
    groups = [("ALL", frame)] + (list(frame.groupby(by, sort=True)) if by else [])
    for name, sub in groups:
        for k in budgets:
            m = at_budget(sub[label].to_numpy(), sub[score].to_numpy(), sub["declaration_id"].to_numpy(), k,
                          sub[qty].to_numpy() if qty else None)  # fmt: skip
            rows.append(
                {"slice": name, "budget_pct": k, "n": len(sub), "positives": int(sub[label].sum()), **m}
            )
    return pd.DataFrame(rows)


def ranking(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """PR-AUC (average precision), ROC-AUC and Brier score; NaN where a class is missing."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return {"pr_auc": np.nan, "roc_auc": np.nan, "brier": float(brier_score_loss(y, scores))}
    return {"pr_auc": float(average_precision_score(y, scores)), "roc_auc": float(roc_auc_score(y, scores)),
            "brier": float(brier_score_loss(y, scores))}  # fmt: skip


def reliability(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability table: 10 equal-width score bins, mean score vs observed rate and count."""
    y, s = np.asarray(y, dtype=float), np.asarray(scores, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": idx, "score": s, "y": y})
    g = frame.groupby("bin")
    out = pd.DataFrame({"lower": edges[:-1], "upper": edges[1:]})
    out["n"] = g.size().reindex(range(bins), fill_value=0).to_numpy()
    out["mean_score"] = g["score"].mean().reindex(range(bins)).to_numpy()
    out["observed_rate"] = g["y"].mean().reindex(range(bins)).to_numpy()
    return out
