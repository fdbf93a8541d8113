"""Input and score drift as the population stability index (PSI) against the training window.

At training time a reference profile is kept with the model (JSON): for every feature and for the
score, ten quantile bins of a sample of the training window's declarations (all of them, not only the
inspected ones, since scoring sees all of them), or the most frequent codes for a categorical
feature; missing values are a bin of their own. At scoring time the batch is binned the same way.
PSI = sum((batch share - reference share) * ln(batch share / reference share)); above 0.2 is the usual
warning level. As-of history state (counts, tenures, hit rates), which moves with time by
construction, is reported but never warns.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import pandas as pd


class BinSpec(TypedDict, total=False):
    """One column's reference bins: quantile `edges` or the most frequent `codes`, and their shares."""

    kind: str  # "quantiles" or "codes"
    edges: list[float]
    codes: list[float]
    shares: list[float]


class DriftReference(TypedDict):
    n: int
    columns: dict[str, BinSpec]


PSI_WARNING = 0.2
#: the columns of a PSI table (an empty one when the model carries no reference)
NO_DRIFT = ("column", "psi", "grows_with_time", "warning")
#: as-of history state moves with time by construction (a later batch always has longer tenures, more prior
#: declarations, and hit rates updated by every outcome since training; a route's smoothed rate takes few
#: values, so even a small update moves all its rows to another bin): reported, never a warning
AS_OF_SUFFIXES = ("_prior_decl", "_prior_insp", "_prior_hits", "_tenure_days", "_days_since_hit", "_hit_rate")
SCORE = "risk_score"
_EPS = 1e-4  # share floor so an empty bin does not make PSI infinite
_TOP_CODES = 20


def _edges(x: np.ndarray, bins: int) -> list[float]:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return []
    return sorted(set(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]).round(9).tolist()))


def _shares(x: np.ndarray, spec: BinSpec) -> np.ndarray:
    """Shares per bin: [missing, bin 0, bin 1, ...] for numbers; [missing, code..., other] for codes."""
    from targeting.model._compiled import bin_counts

    if spec["kind"] == "codes":
        counts = bin_counts(x, codes=np.asarray(spec["codes"], dtype=float)).astype(float)
    else:
        counts = bin_counts(x, edges=np.asarray(spec["edges"], dtype=float)).astype(float)
    return counts / max(1.0, counts.sum())


def profile(
    matrix: pd.DataFrame, scores: np.ndarray, categorical: list[str], bins: int = 10
) -> DriftReference:
    """The reference: a bin spec and shares per feature and for the score (JSON-able)."""
    out: DriftReference = {"n": len(matrix), "columns": {}}
    columns = {
        **{c: matrix[c].to_numpy(dtype=float) for c in matrix.columns},
        SCORE: np.asarray(scores, float),
    }
    for name, x in columns.items():
        spec: BinSpec
        if name in categorical:
            values, counts = np.unique(x[np.isfinite(x)], return_counts=True)
            spec = {"kind": "codes", "codes": values[np.argsort(-counts)][:_TOP_CODES].tolist()}
        else:
            spec = {"kind": "quantiles", "edges": _edges(x, bins)}
        spec["shares"] = _shares(x, spec).round(6).tolist()
        out["columns"][name] = spec
    return out


def bin_counts(reference: DriftReference, matrix: pd.DataFrame, scores: np.ndarray,
               threads: int = 2) -> dict[str, np.ndarray]:  # fmt: skip
    """Counts per reference bin of a batch (additive: partitions of a batch can be summed). Columns are
    binned on `threads` threads (the compiled loop releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def column(name: str) -> np.ndarray:  # float32 model columns are binned as they are
        if name == SCORE:
            return np.asarray(scores, float)
        values = matrix[name]
        return values.to_numpy() if values.dtype in (np.float32, np.float64) else values.to_numpy(dtype=float)

    def count(name: str) -> np.ndarray:
        x = column(name)
        return _shares(x, reference["columns"][name]) * len(x)

    names = [n for n in reference["columns"] if n == SCORE or n in matrix]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        return dict(zip(names, pool.map(count, names), strict=True))


def psi_from_counts(reference: DriftReference, counts: dict[str, np.ndarray]) -> pd.DataFrame:
    """PSI per column of summed bin counts against the reference, largest first."""
    rows = []
    for name, count in counts.items():
        expected = np.maximum(np.asarray(reference["columns"][name]["shares"]), _EPS)
        actual = np.maximum(np.asarray(count, float) / max(1.0, float(np.sum(count))), _EPS)
        rows.append({"column": name, "psi": float(np.sum((actual - expected) * np.log(actual / expected)))})
    frame = pd.DataFrame(rows, columns=["column", "psi"]).sort_values("psi", ascending=False, kind="stable")
    frame["grows_with_time"] = frame["column"].str.endswith(AS_OF_SUFFIXES)
    frame["warning"] = (frame["psi"] > PSI_WARNING) & ~frame["grows_with_time"]
    return frame.reset_index(drop=True)


def psi(
    reference: DriftReference, matrix: pd.DataFrame, scores: np.ndarray, threads: int = 2
) -> pd.DataFrame:
    """PSI per feature (and `risk_score`) of a batch against the reference, largest first."""
    return psi_from_counts(reference, bin_counts(reference, matrix, scores, threads))
