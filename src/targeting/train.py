"""Training: time split, as-of history, features + LightGBM + calibration, evaluation at budget, MLflow.

Only inspected declarations carry labels (decision 3): the model is fitted on the inspected rows of the
training window and evaluated on the inspected rows of the validation window.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from targeting.config import Target
from targeting.drift import profile
from targeting.errors import InputFileError
from targeting.history import HistoryStore
from targeting.labels import labels, parse_target
from targeting.metrics import budget_table, ranking, reliability
from targeting.model import TargetingModel, TrainConfig, annotate, fit
from targeting.search import SearchResult, search
from targeting.splits import TimeSplit

Progress = Callable[[str], None]
#: training-window declarations profiled as the drift reference (drift.py)
REFERENCE_ROWS = 20_000


@dataclass
class TrainingData:
    declarations: pd.DataFrame
    inspections: pd.DataFrame


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


def labelled_rows(data: TrainingData, target: Target | str) -> pd.DataFrame:
    """Declarations that were inspected, with `label` and the selection propensity of their first exam."""
    lab = labels(data.inspections, target)
    first = data.inspections.drop_duplicates("declaration_id")[["declaration_id", "selection_propensity"]]
    lab = lab.merge(first, on="declaration_id", how="left")
    rows = data.declarations.merge(lab, on="declaration_id", how="inner")
    return rows.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)


def train(data: TrainingData, split: TimeSplit, config: TrainConfig, target: Target | str = Target.HIT,
          progress: Progress | None = None) -> TrainResult:  # fmt: skip
    say = progress or (lambda _s: None)
    target = parse_target(target)
    say("history")
    store = HistoryStore.from_tables(data.declarations, data.inspections, target)
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
    window = data.declarations[split.train.mask(data.declarations["filed_at"])]
    sample = window.sample(min(REFERENCE_ROWS, len(window)), random_state=config.seed)
    annotated = annotate(pd.concat([train_rows, valid_rows, sample], ignore_index=True), store)
    n_tr, n_va = len(train_rows), len(valid_rows)
    a_train, a_valid, a_ref = (
        annotated.iloc[:n_tr],
        annotated.iloc[n_tr : n_tr + n_va],
        annotated.iloc[n_tr + n_va :],
    )
    y_train = a_train["label"].to_numpy(dtype=bool)
    y_valid = a_valid["label"].to_numpy(dtype=bool)
    weights = None
    if config.propensity_weights:
        weights = 1.0 / a_train["selection_propensity"].fillna(1.0).clip(lower=0.01).to_numpy()
    found = None
    if config.search_trials > 0:
        say(f"hyperparameter search ({config.search_trials} trials on the training window's last quarter)")
        found = search(a_train, y_train, config, config.search_trials, weights=weights)
        config = replace(config, params={**config.params, **found.best_params})
    model = fit(a_train, y_train, a_valid, y_valid, config, weights, progress=say)
    model.meta.update(
        {"target": target.value, "train_window": str(split.train), "valid_window": str(split.valid)}
    )
    say("evaluation")
    ref_matrix = model.matrix(a_ref)
    ref_scores = model.probability(model.raw_score(ref_matrix))
    model.meta["reference"] = profile(ref_matrix, ref_scores, model.meta["categorical_features"])
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
    sample = model.matrix(a_valid.sample(min(2000, len(a_valid)), random_state=config.seed))
    return TrainResult(model, scores, metrics, budget, reliability(y_valid, score), imp, len(a_train), len(a_valid),
                       sample, found)  # fmt: skip


# ---- MLflow --------------------------------------------------------------------------------------


def log_run(result: TrainResult, data: TrainingData, params: dict[str, Any], history_dir: str | None,
            register: bool, progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """Log params, metrics, tables, plots, datasets and the pyfunc model; optionally register it."""
    import warnings

    import matplotlib.pyplot as plt
    import mlflow

    from targeting import tracking
    from targeting.serving import request_rows, signature

    say = progress or (lambda _s: None)
    tracking.setup()
    say("logging to MLflow")
    warnings.filterwarnings("ignore", message=".*Integer columns in Python cannot represent missing values.*")
    meta = result.model.meta  # the windows and target travel with the model; promote reads them back
    params = {"target": meta["target"], "train_window": meta["train_window"], "valid_window": meta["valid_window"],
              **params}  # fmt: skip
    with mlflow.start_run() as run:
        # inside `mlflow run` the entry point's parameters are logged already (as given): keep those
        logged = mlflow.get_run(run.info.run_id).data.params
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, dict | list | tuple) else v)
                           for k, v in params.items() if k not in logged})  # fmt: skip
        mlflow.log_params({"n_train": result.n_train, "n_valid": result.n_valid,
                           "best_iteration": result.model.meta["best_iteration"]})  # fmt: skip
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if np.isfinite(v)})
        mlflow.log_table(result.budget, "evaluation/budget_table.json")
        mlflow.log_table(result.calibration, "evaluation/calibration.json")
        mlflow.log_table(result.importance, "evaluation/feature_importance.json")
        if result.search is not None:
            mlflow.log_params({f"searched_{k}": v for k, v in result.search.best_params.items()})
            mlflow.log_metric("search_best_tuning_pr_auc", result.search.best_value)
            mlflow.log_table(result.search.trials, "search/trials.json")
        decl = data.declarations
        # lineage: the source path plus a sample's schema and digest (object dtype: MLflow's digest code
        # cannot compare pandas 3 string columns)
        sample = decl.head(1000).astype("object")
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways" (both local)
            warnings.filterwarnings("ignore", message=".*dataset source can be interpreted.*")
            dataset = mlflow.data.from_pandas(
                sample, name="declarations", source=params.get("declarations", "")
            )
        mlflow.log_input(dataset, context="training")
        say("SHAP summary")
        figure = _shap_summary(result)
        mlflow.log_figure(figure, "evaluation/shap_summary.png")
        plt.close(figure)
        say("logging the model")
        with tempfile.TemporaryDirectory() as tmp:
            folder = result.model.save(Path(tmp) / "model")
            example = request_rows(decl.head(3))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={"model_dir": str(folder)},
                model_config={"history_dir": str(Path(history_dir).resolve()) if history_dir else ""},
                signature=signature(),
                input_example=example,
            )
        out: dict[str, Any] = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    if register:
        out["version"] = register_challenger(info.model_uri)
    return out


def register_challenger(model_uri: str) -> str:
    import mlflow
    from mlflow import MlflowClient

    from targeting.tracking import REGISTERED_MODEL

    version = mlflow.register_model(model_uri, REGISTERED_MODEL)
    MlflowClient().set_registered_model_alias(REGISTERED_MODEL, "challenger", version.version)
    return str(version.version)


def _shap_summary(result: TrainResult):
    """Beeswarm of exact TreeSHAP values (LightGBM pred_contrib) on up to 2,000 validation rows."""
    import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
    import shap

    sample = result.valid_matrix
    contrib = result.model.booster.predict(sample.to_numpy(np.float32), pred_contrib=True)
    plt.figure(figsize=(8, 6))
    shap.summary_plot(contrib[:, :-1], sample, show=False, max_display=20)
    fig = plt.gcf()
    fig.tight_layout()
    return fig
