"""Training in three steps: prepare (labelled rows of a time split with their as-of history), fit
(features + LightGBM + calibration, optionally after a search), evaluate (at the inspection budget).

Only inspected declarations carry labels (decision 3): the model is fitted on the inspected rows of the
training window and evaluated on the inspected rows of the validation window. The MLflow record of a
run is `registry.log_run`'s job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from targeting.config import REFERENCE_ROWS, Target, TrainConfig, scoring_threads
from targeting.contract.labels import labels, parse_target
from targeting.errors import InputFileError
from targeting.history.source import HistorySource, annotate
from targeting.history.store import HistoryStore
from targeting.metrics import budget_table, ranking, reliability
from targeting.model.classifier import TargetingModel
from targeting.model.drift import profile
from targeting.training.search import SearchResult, search
from targeting.training.splits import TimeSplit

Progress = Callable[[str], None]


@dataclass
class TrainingData:
    declarations: pd.DataFrame
    inspections: pd.DataFrame  # the outcomes: labels of the inspected rows, and the as-of history of all
    #: ground truth of every declaration (declaration_id, label): labels for every row instead of the
    #: inspections' (the closed loop's ORACLE bound); the as-of history still comes from the inspections
    truth: pd.DataFrame | None = None
    #: the history folder the tables were read from: its saved index (the history's state, kept up to date
    #: by `history add` and `history index`) answers the as-of counts, the same answers as a store built
    #: from the tables at a fraction of the cost; without a saved index the store is built
    history: HistorySource | None = None
    #: the as-of answers (`h_*` columns) of every row of `declarations`, by `declaration_id`, computed
    #: elsewhere (Spark: `training/spark.py`); then `declarations` may hold only the rows training reads
    answers: pd.DataFrame | None = None
    #: the declarations the drift reference is sampled from (default: `declarations`)
    reference_pool: pd.DataFrame | None = None


@dataclass
class Prepared:
    """The labelled rows of a time split, annotated with their as-of history, and the drift sample."""

    train: pd.DataFrame
    valid: pd.DataFrame
    reference: pd.DataFrame  # a sample of every declaration of the training window (inspected or not)
    y_train: np.ndarray
    y_valid: np.ndarray
    weights: np.ndarray | None  # 1 / selection propensity, with `propensity_weights`
    target: Target
    split: TimeSplit


@dataclass
class TrainResult:
    model: TargetingModel
    valid_scores: pd.DataFrame  # declaration_id, mode, label, risk_score (inspected validation rows)
    metrics: dict[str, float]
    budget: pd.DataFrame
    calibration: pd.DataFrame
    importance: pd.DataFrame
    n_train: int
    n_valid: int
    valid_matrix: pd.DataFrame  # up to 2,000 validation rows as the model sees them (for SHAP plots)
    search: SearchResult | None = None
    #: the exact rows it was fitted and validated on: counts and digests (`rows_digest`), and the windows
    lineage: dict[str, str | int] = field(default_factory=dict)


def labelled_rows(data: TrainingData, target: Target | str) -> pd.DataFrame:
    """Declarations that were inspected, with `label` and the selection propensity of their first exam
    (with `data.truth`: every declaration, labelled by it, propensity 1)."""
    if data.truth is not None:
        truth = data.truth[["declaration_id", "label"]].assign(selection_propensity=1.0)
        rows = data.declarations.merge(truth, on="declaration_id", how="inner")
        return rows.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)
    lab = labels(data.inspections, target)
    first = data.inspections.drop_duplicates("declaration_id")
    # the propensity is optional in the contract: most outcome exports do not record it
    propensity = first["selection_propensity"] if "selection_propensity" in first else pd.Series(float("nan"), index=first.index)
    first = pd.DataFrame({"declaration_id": first["declaration_id"], "selection_propensity": propensity})
    lab = lab.merge(first, on="declaration_id", how="left")
    rows = data.declarations.merge(lab, on="declaration_id", how="inner")
    return rows.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)


def train(data: TrainingData, split: TimeSplit, config: TrainConfig, target: Target | str = Target.HIT,
          progress: Progress | None = None) -> TrainResult:  # fmt: skip
    """Prepare, fit and evaluate (see the module docstring)."""
    say = progress or (lambda _s: None)
    say("history")
    prepared = prepare(data, split, config, target)
    model, found = fit(prepared, config, say)
    say("evaluation")
    result = evaluate(model, prepared, config.seed, found)
    result.lineage = lineage(prepared)
    return result


def rows_digest(rows: pd.DataFrame) -> str:
    """A digest of labelled rows (ids, filing times, labels; in time order), so that a run can be re-run and
    checked to have used exactly the same rows."""
    key = pd.DataFrame({"id": rows["declaration_id"].astype(str).to_numpy(),
                        "filed": rows["filed_at"].astype("int64").to_numpy(), "label": rows["label"].astype(bool).to_numpy()})  # fmt: skip
    return hashlib.sha256(pd.util.hash_pandas_object(key, index=False).to_numpy().tobytes()).hexdigest()[:32]


def lineage(prepared: Prepared) -> dict[str, str | int]:
    split = prepared.split
    return {"train_window": str(split.train), "valid_window": str(split.valid),
            "test_window": str(split.test) if split.test is not None else "",
            "train_rows": len(prepared.train), "train_positives": int(prepared.y_train.sum()),
            "train_rows_digest": rows_digest(prepared.train), "valid_rows": len(prepared.valid),
            "valid_positives": int(prepared.y_valid.sum()), "valid_rows_digest": rows_digest(prepared.valid)}  # fmt: skip


def prepare(data: TrainingData, split: TimeSplit, config: TrainConfig, target: Target | str) -> Prepared:
    """The inspected rows of the training and validation windows and a drift sample of the training window,
    annotated with their as-of history in one pass; one clear error when a window has nothing to learn."""
    target = parse_target(target)
    rows = labelled_rows(data, target)
    train_rows = rows[split.train.mask(rows["filed_at"])]
    valid_rows = rows[split.valid.mask(rows["filed_at"])]
    for name, part in (("training", train_rows), ("validation", valid_rows)):
        if len(part) == 0:
            raise InputFileError(f"no inspected declarations in the {name} window")
    if not train_rows["label"].any():
        raise InputFileError(f"no positive labels ({target.value}) in the training window {split.train}")
    # a sample of every declaration of the training window (not only the inspected ones) is the drift
    # reference that scoring compares its batches with; annotated in the same as-of pass
    pool = data.reference_pool if data.reference_pool is not None else data.declarations
    window = pool[split.train.mask(pool["filed_at"])]
    sample = window.sample(min(REFERENCE_ROWS, len(window)), random_state=config.seed)
    annotated = _annotated(data, pd.concat([train_rows, valid_rows, sample], ignore_index=True), target)
    n_tr, n_va = len(train_rows), len(valid_rows)
    a_train, a_valid, a_ref = (
        annotated.iloc[:n_tr],
        annotated.iloc[n_tr : n_tr + n_va],
        annotated.iloc[n_tr + n_va :],
    )
    weights = None
    if config.propensity_weights:
        weights = 1.0 / a_train["selection_propensity"].fillna(1.0).clip(lower=0.01).to_numpy()
    return Prepared(a_train, a_valid, a_ref, a_train["label"].to_numpy(dtype=bool),
                    a_valid["label"].to_numpy(dtype=bool), weights, target, split)  # fmt: skip


def _annotated(data: TrainingData, rows: pd.DataFrame, target: Target) -> pd.DataFrame:
    """`rows` with their as-of history: given with the data (Spark), else from the history folder's saved
    index when it has one for `target`, else from a store built from the tables."""
    if data.answers is not None:
        found = data.answers.reindex(rows["declaration_id"].astype(str).to_numpy())
        return pd.concat([rows, found.set_axis(rows.index)], axis=1)
    if data.history is not None and data.history.target == target.value and data.history.saved_index() is not None:
        return data.history.annotate(rows, threads=scoring_threads())
    return annotate(rows, HistoryStore.from_tables(data.declarations, data.inspections, target))


def fit(prepared: Prepared, config: TrainConfig, progress: Progress | None = None) -> tuple[TargetingModel, SearchResult | None]:  # fmt: skip
    """The model of the prepared rows (after `config.search_trials` trials of a search, if any), with its
    target, windows and drift reference recorded in its metadata."""
    say = progress or (lambda _s: None)
    found = None
    if config.search_trials > 0:
        say(f"hyperparameter search ({config.search_trials} trials on the training window's last quarter)")
        found = search(prepared.train, prepared.y_train, config, config.search_trials, weights=prepared.weights)
        config = replace(config, params={**config.params, **found.best_params})
    model = TargetingModel.fit(prepared.train, prepared.y_train, prepared.valid, prepared.y_valid, config,
                               prepared.weights, progress=say)  # fmt: skip
    model.meta.target = prepared.target.value
    model.meta.train_window, model.meta.valid_window = str(prepared.split.train), str(prepared.split.valid)
    model.meta.test_window = str(prepared.split.test) if prepared.split.test is not None else ""
    ref_matrix = model.matrix(prepared.reference)
    ref_scores = model.probability(model.raw_score(ref_matrix))
    model.meta.reference = profile(ref_matrix, ref_scores, model.meta.categorical_features)
    return model, found


def evaluate(model: TargetingModel, prepared: Prepared, seed: int, found: SearchResult | None = None) -> TrainResult:
    """Precision and recall at budget per mode, ranking metrics, calibration and feature importance on the
    inspected rows of the validation window."""
    a_valid, y_valid = prepared.valid, prepared.y_valid
    score = model.predict_annotated(a_valid)
    scores = pd.DataFrame({"declaration_id": a_valid["declaration_id"].to_numpy(), "mode": a_valid["mode"].to_numpy(),
                           "label": y_valid, "risk_score": score})  # fmt: skip
    budget = budget_table(scores)
    metrics = ranking(y_valid, score)
    for row in budget.itertuples():
        k = f"{row.budget_pct:g}pct"
        metrics[f"precision_at_{k}_{row.slice}"] = row.precision
        metrics[f"recall_at_{k}_{row.slice}"] = row.recall
    imp = pd.DataFrame({"feature": model.feature_names,
                        "gain": model.booster.feature_importance("gain"),
                        "splits": model.booster.feature_importance("split")}).sort_values("gain", ascending=False)  # fmt: skip
    sample = model.matrix(a_valid.sample(min(2000, len(a_valid)), random_state=seed))
    return TrainResult(model, scores, metrics, budget, reliability(y_valid, score), imp, len(prepared.train),
                       len(a_valid), sample, found)  # fmt: skip
