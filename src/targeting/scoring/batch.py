"""One batch of contract-valid declarations through the scoring path: scores, decisions within the
budgets, the selected rows' reasons, drift against the training window, and the run's summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from targeting.contract.io import text_series
from targeting.contract.schema import SCORES
from targeting.history.index import PrefetchedCodes
from targeting.model.drift import NO_DRIFT, psi
from targeting.model.explain import EXPLANATION_COLUMNS, Explanations
from targeting.model.scorer import Scorer
from targeting.scoring._concurrency import beside
from targeting.scoring.decisions import DECISIONS, Budget, rank_and_decide


@dataclass
class ScoreResult:
    scores: pd.DataFrame  # the contract's `scores` (+ selection_propensity), in ranking order
    explanations: pd.DataFrame  # long: declaration_id, group, label, contribution, sentence
    expected_value: float  # TreeSHAP base value (log-odds)
    drift: pd.DataFrame  # column, psi, warning (empty when the model has no reference)
    summary: dict[str, Any] = field(default_factory=dict)
    # input row positions of INSPECT and EXPLORE, ascending (none for an empty batch)
    selected_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def score_batch(rows: pd.DataFrame, scorer: Scorer, model_uri: str, budgets: dict[str, Budget], explore: float,
                seed: int = 0, scored_at: pd.Timestamp | None = None,
                progress: Callable[[str], None] | None = None,
                prefetched: PrefetchedCodes | None = None) -> ScoreResult:  # fmt: skip
    """Score contract-valid declarations (with the `PrefetchedCodes` of `rows` when the caller started
    their history lookups), decide, explain the selected rows, compare with the training window."""
    say = progress or (lambda _s: None)
    rows = rows.reset_index(drop=True)
    say(f"history and features ({len(rows):,} declarations)")
    scored = scorer.score_rows(rows, prefetched)
    reference = scorer.model.meta.reference
    # drift needs only the matrix and the scores: binned beside the decisions and explanations
    with beside(psi, reference, scored.matrix, scored.risk_score, 1) if reference else beside(None) as drift:
        say("deciding within each mode's budget")
        frame, order, picked, counts = rank_and_decide(rows, scored.risk_score, budgets, explore, seed)
        say(f"explaining {len(picked):,} selected declarations (TreeSHAP)")
        exp = scorer.explain(scored.take(order[picked]))  # input positions, in ranking order
        attach_reasons(frame, picked, exp)
        drift_table = drift.result()
    return assemble(frame, order, picked, exp, drift_table, model_uri, scored_at, budgets, explore, counts)


def attach_reasons(frame: pd.DataFrame, picked: np.ndarray, exp: Explanations) -> None:
    """The reasons of the selected rows (frame positions `picked`, in the order they were explained) as
    columns of `frame` (in place): typed text or float columns, empty outside the selected rows."""
    for col in exp.reasons.columns:
        if col.endswith("_contribution"):
            values = np.full(len(frame), np.nan)
            values[picked] = exp.reasons[col].to_numpy(dtype=float)
            frame[col] = values
        else:
            frame[col] = _spread_text(exp.reasons[col], picked, len(frame))


def _spread_text(values: pd.Series, positions: np.ndarray, n: int) -> pd.Series:
    """A text column of `n` rows holding `values` at `positions` and nothing elsewhere, built by one Arrow
    take (no million-element Python list for a few thousand sentences)."""
    source = pa.array([*values.astype(object).where(values.notna(), None), None], pa.large_string())
    index = np.full(n, len(values), np.int64)
    index[positions] = np.arange(len(values))
    return text_series(pc.take(source, index))


def assemble(frame: pd.DataFrame, order: np.ndarray, picked: np.ndarray, exp: Explanations, drift: pd.DataFrame | None,
             model_uri: str, scored_at: pd.Timestamp | None, budgets: dict[str, Budget], explore: float,
             counts: pd.DataFrame) -> ScoreResult:  # fmt: skip
    """The result from the ranked frame of `rank_and_decide` (and its `counts`): `scores` (contract columns +
    selection_propensity, in ranking order), explanations, drift (an empty table when the model has no
    reference), the summary and which input rows were selected."""
    scores = frame
    scores["model_uri"] = pd.Series(model_uri, index=scores.index, dtype="str")
    scores["scored_at"] = (scored_at or pd.Timestamp.now(tz="UTC")).floor("s")
    scores = scores[[*SCORES.names, "selection_propensity"]]
    drift = drift if drift is not None else pd.DataFrame(columns=list(NO_DRIFT))
    return ScoreResult(scores, exp.groups, exp.expected_value, drift, summarise(scores, budgets, explore, drift, counts),
                       selected_rows=np.sort(order[picked]))  # fmt: skip


def empty_result(budgets: dict[str, Budget], explore: float) -> ScoreResult:
    """The result of a batch in which no row passed validation (every row is in `rejects`)."""
    scores = SCORES.empty_frame().assign(selection_propensity=pd.Series(dtype=float))
    drift = pd.DataFrame(columns=list(NO_DRIFT))
    explanations = pd.DataFrame(columns=list(EXPLANATION_COLUMNS))
    no_modes = pd.DataFrame(columns=list(DECISIONS), dtype=np.int64)
    return ScoreResult(scores, explanations, float("nan"), drift, summarise(scores, budgets, explore, drift, no_modes))


def summarise(scores: pd.DataFrame, budgets: dict[str, Budget], explore: float, drift: pd.DataFrame,
              counts: pd.DataFrame) -> dict[str, Any]:  # fmt: skip
    """Counts per mode and decision, budget use, score quantiles, drift warnings (for the log and report).
    `counts`: rows per decision (columns) and mode (index, sorted), as `rank_and_decide` gives them."""
    per_mode = []
    for mode in counts.index:
        decided = counts.loc[mode]  # rows per decision
        n = int(decided.sum())
        budget = budgets.get(str(mode))
        capacity = budget.capacity(n) if budget else 0
        used = int(decided.get("INSPECT", 0) + decided.get("EXPLORE", 0))
        per_mode.append({"mode": str(mode), "declarations": n, "budget": str(budget) if budget else "0",
                         "capacity": capacity, "INSPECT": int(decided.get("INSPECT", 0)),
                         "EXPLORE": int(decided.get("EXPLORE", 0)), "RELEASE": int(decided.get("RELEASE", 0)),
                         "budget_used": used / capacity if capacity else 0.0})  # fmt: skip
    q = scores["risk_score"].quantile([0.5, 0.9, 0.99, 0.999]).to_dict() if len(scores) else {}
    return {
        "declarations": len(scores),
        "explore_share": explore,
        "per_mode": per_mode,
        "score_quantiles": {f"p{round(k * 1000) / 10:g}": float(v) for k, v in q.items()},
        "drift_warnings": drift[drift["warning"]][["column", "psi"]].to_dict("records") if len(drift) else [],
        "max_psi": float(drift["psi"].max()) if len(drift) else None,
    }
