"""Where MLflow keeps runs and models: an embedded SQLite store under the project, unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT = "targeting"
REGISTERED_MODEL = "targeting"


def tracking_uri(project: Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` when set (a real server), else `sqlite:////abs/path/mlflow.db` in the project."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = (project or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def setup(experiment: str = EXPERIMENT, project: Path | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists (artifacts under ./mlruns, absolute)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri(project)
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # child processes (mlflow models serve) see the same store
    if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: log into the run (and experiment) it made
        return uri
    if mlflow.get_experiment_by_name(experiment) is None:
        root = (project or Path.cwd()).resolve()
        location = (root / "mlruns").as_uri() if uri.startswith("sqlite") else None
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri
