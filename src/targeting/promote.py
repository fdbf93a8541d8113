"""Champion/challenger: compare on the same holdout, move the `champion` alias only when better."""

from __future__ import annotations

from typing import Any

import numpy as np

from targeting.errors import ModelNotFoundError
from targeting.tracking import REGISTERED_MODEL


def _version(client: Any, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None


def holdout(declarations: Any, inspections: Any, window: Any, target: str) -> tuple[Any, np.ndarray]:
    """The inspected rows of the holdout window with their as-of history, and their labels.

    The history does not depend on the model, so both models are scored on the same annotated rows.
    """
    from targeting.history import HistoryStore
    from targeting.model import annotate
    from targeting.train import TrainingData, labelled_rows

    rows = labelled_rows(TrainingData(declarations, inspections), target)
    rows = rows[window.mask(rows["filed_at"])].reset_index(drop=True)
    annotated = annotate(rows, HistoryStore.from_tables(declarations, inspections, target))
    return annotated, rows["label"].to_numpy(dtype=bool)


def model_metric(model_uri: str, annotated: Any, y: np.ndarray, metric: str) -> float:
    import mlflow

    from targeting.metrics import ranking

    model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model
    return float(ranking(y, model.predict_annotated(annotated))[metric])


#: run parameters that locate the holdout (written by `targeting train`)
HOLDOUT_PARAMS = ("declarations", "inspections", "valid_window")


def promote(force: bool = False, metric: str = "pr_auc") -> str:
    """Evaluate challenger and champion on the challenger's validation window; log; maybe move the alias."""
    import mlflow
    from mlflow import MlflowClient

    from targeting import tracking
    from targeting.io import read_parquet
    from targeting.splits import Window, utc

    tracking.setup()
    client = MlflowClient()
    challenger = _version(client, "challenger")
    if challenger is None:
        raise ModelNotFoundError(
            f"no model version of {REGISTERED_MODEL!r} has the alias challenger: train --register first"
        )
    champion = _version(client, "champion")
    params = client.get_run(challenger.run_id).data.params
    missing = [k for k in HOLDOUT_PARAMS if k not in params]
    if missing:
        raise ModelNotFoundError(f"the challenger's run {challenger.run_id} has no {', '.join(missing)} parameter(s): "
                                 "log it with the training data's paths (as `targeting train` does)")  # fmt: skip
    start, end = params["valid_window"].strip("[)").split(", ")
    window = Window(utc(start), utc(end))
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
