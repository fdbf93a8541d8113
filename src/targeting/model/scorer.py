"""The one scoring path: contract rows -> as-of history -> features -> raw and calibrated scores.

REST requests (the pyfunc), the daily batch and the Spark executors all score through a `Scorer`: a fitted
model and the history its as-of features are answered from. Decision 1: the served model's input is the
raw declaration; nothing else computes features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from targeting.config import scoring_threads
from targeting.contract.schema import N_REASONS
from targeting.history.index import PrefetchedCodes
from targeting.history.source import HistorySource
from targeting.model.classifier import TargetingModel
from targeting.model.explain import Explanations, explain


@dataclass
class Scored:
    annotated: pd.DataFrame  # the rows with their as-of history counts
    matrix: pd.DataFrame  # the model's features
    raw: np.ndarray  # log-odds (what TreeSHAP contributions add up to)
    risk_score: np.ndarray  # calibrated probability

    def take(self, positions: np.ndarray) -> Scored:
        """The scored rows at these positions, in this order."""
        return Scored(self.annotated.iloc[positions], self.matrix.iloc[positions], self.raw[positions],
                      self.risk_score[positions])  # fmt: skip


class Scorer:
    """A fitted model and where its as-of history answers come from."""

    def __init__(self, model: TargetingModel, history: HistorySource) -> None:
        self.model = model
        self.history = history

    def use_history(self, folder: str | Path) -> None:
        """Answer as-of questions from this history folder instead of the configured one."""
        self.history = HistorySource(folder, self.model.meta.target)

    def score_rows(self, rows: pd.DataFrame, prefetched: PrefetchedCodes | None = None) -> Scored:
        """Contract-typed rows -> as-of annotated rows, the model's matrix, raw and calibrated scores (the
        batch passes the `PrefetchedCodes` it started for the saved index, if any)."""
        return self.score_annotated(self.history.annotate(rows, scoring_threads(), prefetched))

    def score_annotated(self, annotated: pd.DataFrame) -> Scored:
        """Rows that already carry their as-of answers (`h_*` columns, e.g. joined from the history's state
        on Spark) -> the model's matrix, raw and calibrated scores."""
        threads = scoring_threads()
        matrix = self.model.matrix(annotated, threads)
        raw = self.model.raw_score(matrix, threads)
        return Scored(annotated, matrix, raw, self.model.probability(raw))

    def explain(self, scored: Scored, every_group: bool = True) -> Explanations:
        """The top reasons of scored rows (TreeSHAP in reason groups); with `every_group` also the long
        table of every group (for reports)."""
        return explain(self.model.booster, scored.annotated, scored.matrix, self.model.feature_groups, N_REASONS,
                       num_threads=scoring_threads(), every_group=every_group)  # fmt: skip
