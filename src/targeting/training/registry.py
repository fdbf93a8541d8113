"""The registry side of training: log a training run and its model, register it as the challenger, and
promote a challenger to champion only when it is shown better on days neither model saw
(`promotion.py`).

Everything here talks to MLflow (the store `tracking.setup` points at); the training itself does not.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
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
from targeting.config import DEFAULT_BUDGETS, NO_HISTORY_ENV, PROMOTION_CONFIDENCE, scoring_threads
from targeting.contract.io import read_parquet
from targeting.errors import ModelNotFoundError
from targeting.history.folder import read_declarations, read_outcomes
from targeting.history.layout import day_files
from targeting.history.source import HistorySource, annotate
from targeting.history.store import HistoryStore
from targeting.scoring.decisions import Budget, format_budgets, parse_budgets
from targeting.serving.pyfunc import ENTRY_FILE, open_scorer, signature
from targeting.serving.requests import request_rows
from targeting.tracking import REGISTERED_MODEL
from targeting.training.promotion import judge, window_of
from targeting.training.splits import Window
from targeting.training.train import Progress, TrainingData, TrainResult, labelled_rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _version(client: MlflowClient, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None


def window_rows(declarations: pd.DataFrame, inspections: pd.DataFrame, window: Window, target: str,
                answer: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:  # fmt: skip
    """Every declaration of the window with its as-of history (`answer`), `label` (NaN where not
    inspected) and the `selection_propensity` of its first inspection: what `promotion.judge` reads."""
    decl = declarations[window.mask(declarations["filed_at"])]
    decl = decl.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)
    labelled = labelled_rows(TrainingData(decl, inspections), target)[["declaration_id", "label", "selection_propensity"]]
    rows = decl.merge(labelled, on="declaration_id", how="left")
    rows["label"] = rows["label"].astype(float)
    return answer(rows)


def history_window_rows(history: Path, window: Window, target: str) -> pd.DataFrame:
    """`window_rows` from a history folder, reading only the window's days (and the outcomes known from its
    start on), answered by the saved index and its delta (or the store, without a saved index)."""
    assert window.start is not None
    declarations = read_declarations(day_files(history, "declarations", window.start, window.end))
    inspections = read_outcomes(day_files(history, "outcomes", window.start, None))
    source = HistorySource(history, target)
    return window_rows(declarations, inspections, window, target, lambda rows: source.annotate(rows, scoring_threads()))


def files_window_rows(declarations: Path, inspections: Path, window: Window, target: str) -> pd.DataFrame:
    """`window_rows` from two files (a model trained on files rather than a history folder)."""
    decl, insp = read_parquet(declarations), read_parquet(inspections)
    store = HistoryStore.from_tables(decl, insp, target)
    return window_rows(decl, insp, window, target, lambda rows: annotate(rows, store))


def promote(force: bool = False, budgets: dict[str, Budget] | None = None,
            confidence: float = PROMOTION_CONFIDENCE) -> str:  # fmt: skip
    """Judge the challenger against the champion on the challenger's test window (`promotion.judge`), log
    the evidence as a `promotion` run, and move the champion alias when the challenger is shown better
    (or with `force`, logged as such)."""
    from targeting.model.classifier import TargetingModel

    tracking.setup()
    client = MlflowClient()
    challenger = _version(client, "challenger")
    if challenger is None:
        raise ModelNotFoundError(
            f"no model version of {REGISTERED_MODEL!r} has the alias challenger: train --register first"
        )
    champion = _version(client, "champion")
    params = client.get_run(challenger.run_id).data.params
    budgets = budgets or parse_budgets(DEFAULT_BUDGETS)
    new: TargetingModel = open_scorer(f"models:/{REGISTERED_MODEL}@challenger").model
    old = open_scorer(f"models:/{REGISTERED_MODEL}@champion").model if champion else None
    window = window_of(new.meta.test_window)
    rows = pd.DataFrame()
    if window is not None:
        target = new.meta.target
        if "history" in params:
            rows = history_window_rows(Path(params["history"]), window, target)
        elif "declarations" in params and "inspections" in params:
            rows = files_window_rows(Path(params["declarations"]), Path(params["inspections"]), window, target)
        else:
            raise ModelNotFoundError(f"the challenger's run {challenger.run_id} records neither a history folder "
                                     "nor its declarations and inspections (as `targeting train` does)")  # fmt: skip
    evidence = judge(new, old, rows, budgets, confidence)
    move = evidence.promote or force
    with mlflow.start_run(run_name="promotion"):
        mlflow.set_tag("kind", "promotion")
        mlflow.log_params({"challenger_version": challenger.version,
                           "champion_version": champion.version if champion else "none",
                           "test_window": evidence.window or "none", "budgets": format_budgets(budgets),
                           "confidence": confidence, "forced": force, "promoted": move,
                           "challenger_windows": f"train {new.meta.train_window} valid {new.meta.valid_window}",
                           "champion_windows": f"train {old.meta.train_window} valid {old.meta.valid_window}" if old else "none"})  # fmt: skip
        mlflow.set_tag("evidence", evidence.reason)
        if np.isfinite(evidence.difference):
            mlflow.log_metrics({"estimated_hits_difference": evidence.difference,
                                "difference_interval_low": evidence.interval[0],
                                "difference_interval_high": evidence.interval[1],
                                "difference_lower_bound": evidence.lower_bound,
                                "selection_jaccard": evidence.overlap})  # fmt: skip
        if len(evidence.table):
            for row in evidence.table[evidence.table["slice"] == "ALL"].itertuples():
                mlflow.log_metric(f"{row.model}_hits_estimated", float(row.hits_estimated))
            mlflow.log_table(evidence.table, "promotion/evidence.json")
    if move:
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", challenger.version)
    verdict = "promoted to champion" if move else "kept the champion"
    was = f"champion v{champion.version}" if champion else "no champion yet"
    return f"challenger v{challenger.version} vs {was}: {evidence.reason}; {verdict}" + (
        " (forced)" if force and not evidence.promote else ""
    )


def promotion_log() -> pd.DataFrame:
    """The `promotion` runs of the tracking store, oldest first: when decided, the challenger's version,
    whether it was promoted, the overlap of the two selections, the estimated difference and its lower
    bound, the reason (empty when the store does not exist yet: nothing is created)."""
    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return pd.DataFrame()
    tracking.setup()
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], filter_string="tags.kind = 'promotion'",
                              order_by=["attributes.start_time ASC"])  # fmt: skip
    if not isinstance(runs, pd.DataFrame) or not len(runs):
        return pd.DataFrame()

    def column(name: str) -> pd.Series:
        return runs[name] if name in runs else pd.Series(np.nan, index=runs.index)

    return pd.DataFrame({"decided": runs["start_time"].astype(str), "version": column("params.challenger_version"),
                         "promoted": column("params.promoted"), "overlap": column("metrics.selection_jaccard"),
                         "difference": column("metrics.estimated_hits_difference"),
                         "lower_bound": column("metrics.difference_lower_bound"), "reason": column("tags.evidence")})  # fmt: skip


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
        # lineage: the exact rows (counts and digests of the training and validation rows, the windows), and
        # the data they came from as MLflow dataset inputs carrying those digests
        mlflow.log_params({f"lineage_{k}": v for k, v in result.lineage.items()})
        source = params.get("history") or params.get("declarations") or ""
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways" (both local)
            warnings.filterwarnings("ignore", message=".*dataset source can be interpreted.*")
            from mlflow.data.dataset_source_registry import resolve_dataset_source
            from mlflow.data.meta_dataset import MetaDataset

            for context in ("train", "valid"):
                if f"{context}_rows_digest" in result.lineage:
                    dataset = MetaDataset(resolve_dataset_source(str(source)), name=f"{context} rows",
                                          digest=str(result.lineage[f"{context}_rows_digest"]))  # fmt: skip
                    mlflow.log_input(dataset, context="training" if context == "train" else "validation")
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
