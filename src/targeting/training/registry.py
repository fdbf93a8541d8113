"""The registry side of training: log a training run and its model, register it as the challenger, and
promote a challenger to champion only when it is better on the same holdout.

Everything here talks to MLflow (the store `tracking.setup` points at); the training itself does not.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from targeting import tracking
from targeting.config import NO_HISTORY_ENV, scoring_threads
from targeting.contract.io import read_parquet
from targeting.errors import ModelNotFoundError
from targeting.history.folder import read_declarations, read_outcomes
from targeting.history.layout import day_files
from targeting.history.source import HistorySource, annotate
from targeting.history.store import HistoryStore
from targeting.metrics import ranking
from targeting.serving.pyfunc import ENTRY_FILE, open_scorer, signature
from targeting.serving.requests import request_rows
from targeting.tracking import REGISTERED_MODEL
from targeting.training.splits import Window, utc
from targeting.training.train import Progress, TrainingData, TrainResult, labelled_rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _version(client: MlflowClient, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None


def holdout(declarations: pd.DataFrame, inspections: pd.DataFrame, window: Window,
            target: str) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """The inspected rows of the holdout window with their as-of history, and their labels.

    The history does not depend on the model, so both models are scored on the same annotated rows.
    """

    rows = labelled_rows(TrainingData(declarations, inspections), target)
    rows = rows[window.mask(rows["filed_at"])].reset_index(drop=True)
    annotated = annotate(rows, HistoryStore.from_tables(declarations, inspections, target))
    return annotated, rows["label"].to_numpy(dtype=bool)


def history_holdout(history: Path, window: Window, target: str) -> tuple[pd.DataFrame, np.ndarray]:
    """`holdout` from a history folder, reading only the window: its days' declarations, the outcomes known
    from its start on, and the as-of answers of the saved index and its delta (or the store, for a
    history without a saved index)."""
    start, end = window.start or pd.Timestamp.min.tz_localize("UTC"), window.end
    declarations = read_declarations(day_files(history, "declarations", start, end))
    inspections = read_outcomes(day_files(history, "outcomes", start, None))
    rows = labelled_rows(TrainingData(declarations, inspections), target)
    rows = rows[window.mask(rows["filed_at"])].reset_index(drop=True)
    annotated = HistorySource(history, target).annotate(rows, scoring_threads())
    return annotated, rows["label"].to_numpy(dtype=bool)


def model_metric(model_uri: str, annotated: pd.DataFrame, y: np.ndarray, metric: str) -> float:
    model = open_scorer(model_uri).model
    return float(ranking(y, model.predict_annotated(annotated))[metric])


#: run parameters that locate the holdout (written by `targeting train`): a history folder, or two files
HOLDOUT_PARAMS = ("declarations", "inspections", "valid_window")


def promote(force: bool = False, metric: str = "pr_auc") -> str:
    """Evaluate challenger and champion on the challenger's validation window; log; maybe move the alias."""
    tracking.setup()
    client = MlflowClient()
    challenger = _version(client, "challenger")
    if challenger is None:
        raise ModelNotFoundError(
            f"no model version of {REGISTERED_MODEL!r} has the alias challenger: train --register first"
        )
    champion = _version(client, "champion")
    params = client.get_run(challenger.run_id).data.params
    missing = [k for k in HOLDOUT_PARAMS if k not in params and not ("history" in params and k != "valid_window")]
    if missing:
        raise ModelNotFoundError(f"the challenger's run {challenger.run_id} has no {', '.join(missing)} parameter(s): "
                                 "log it with the training data's paths (as `targeting train` does)")  # fmt: skip
    start, end = params["valid_window"].strip("[)").split(", ")
    window = Window(utc(start), utc(end))
    if "history" in params:
        annotated, y = history_holdout(Path(params["history"]), window, params.get("target", "hit"))
    else:
        decl, insp = read_parquet(params["declarations"]), read_parquet(params["inspections"])
        annotated, y = holdout(decl, insp, window, params.get("target", "hit"))
    new = model_metric(f"models:/{REGISTERED_MODEL}@challenger", annotated, y, metric)
    old = model_metric(f"models:/{REGISTERED_MODEL}@champion", annotated, y, metric) if champion else np.nan
    better = champion is None or (np.isfinite(new) and (not np.isfinite(old) or new > old))
    move = better or force
    with mlflow.start_run(run_name="promotion"):
        mlflow.set_tag("kind", "promotion")
        mlflow.log_params({"challenger_version": challenger.version,
                           "champion_version": champion.version if champion else "none",
                           "holdout": str(window), "metric": metric, "forced": force, "promoted": move})  # fmt: skip
        mlflow.log_metrics(
            {f"challenger_{metric}": new, **({f"champion_{metric}": old} if np.isfinite(old) else {})}
        )
    if move:
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", challenger.version)
    was = f"champion v{champion.version} {metric}={old:.4f}" if champion else "no champion yet"
    verdict = "promoted to champion" if move else "kept the champion (challenger not better)"
    return f"challenger v{challenger.version} {metric}={new:.4f} vs {was} on {window}: {verdict}" + (
        " (forced)" if force and not better else ""
    )


def log_run(result: TrainResult, data: TrainingData, params: dict[str, Any], history_dir: str | None,
            register: bool, progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """Log params, metrics, tables, plots, datasets and the pyfunc model; optionally register it."""
    import matplotlib.pyplot as plt

    say = progress or (lambda _s: None)
    tracking.setup()
    say("logging to MLflow")
    warnings.filterwarnings("ignore", message=".*Integer columns in Python cannot represent missing values.*")
    meta = result.model.meta  # the windows and target travel with the model; promote reads them back
    params = {"target": meta.target, "train_window": meta.train_window, "valid_window": meta.valid_window,
              **params}  # fmt: skip
    with mlflow.start_run() as run:
        # inside `mlflow run` the entry point's parameters are logged already (as given): keep those
        logged = mlflow.get_run(run.info.run_id).data.params
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, dict | list | tuple) else v)
                           for k, v in params.items() if k not in logged})  # fmt: skip
        mlflow.log_params({"n_train": result.n_train, "n_valid": result.n_valid,
                           "best_iteration": meta.best_iteration})  # fmt: skip
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
        with tempfile.TemporaryDirectory() as tmp, _without_history():
            folder = result.model.save(Path(tmp) / "model")
            example = request_rows(decl.head(3))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(ENTRY_FILE),
                artifacts={"model_dir": str(folder)},
                model_config={"history_dir": str(Path(history_dir).resolve()) if history_dir else ""},
                signature=signature(),
                input_example=example,
            )
        out: dict[str, Any] = {"run_id": run.info.run_id, "model_uri": info.model_uri}
    if register:
        out["version"] = register_challenger(info.model_uri)
    return out


@contextmanager
def _without_history() -> Iterator[None]:
    """MLflow checks the input example by loading the logged model and scoring it: against no history,
    not by reading the whole history folder (the example's rows are scored all the same)."""
    before = os.environ.get(NO_HISTORY_ENV)
    os.environ[NO_HISTORY_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NO_HISTORY_ENV, None)
        else:
            os.environ[NO_HISTORY_ENV] = before


def register_challenger(model_uri: str) -> str:
    """Register a logged model as a new version of `targeting` with the alias challenger."""
    version = mlflow.register_model(model_uri, REGISTERED_MODEL)
    MlflowClient().set_registered_model_alias(REGISTERED_MODEL, "challenger", version.version)
    return str(version.version)


def _shap_summary(result: TrainResult) -> Figure:
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
