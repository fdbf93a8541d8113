"""Where MLflow keeps runs and models: an embedded SQLite store under the project, unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

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


def requirement_mismatches(requirements: list[str]) -> list[str]:
    """The lines of a model's requirements.txt that this environment does not satisfy, as
    "numpy==2.4.6 (installed: 2.3.0)" or "pycountry==26.2.16 (not installed)"."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for line in requirements:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue  # a URL or an option pip understands: not ours to judge
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            out.append(f"{line} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            out.append(f"{line} (installed: {installed})")
    return out


def load_pyfunc(model_uri: str) -> PyFuncModel:
    """`mlflow.pyfunc.load_model`, with its environment check done here: MLflow's maps every installed
    distribution's files to modules first, while comparing the model's pinned requirements with the
    installed versions is enough. A mismatch is a warning, as in MLflow."""
    import logging
    import platform

    import mlflow

    pyfunc = mlflow.pyfunc.load_model(model_uri, suppress_warnings=True)
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.WARNING)  # it would log a pip hint at INFO
    try:
        requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().splitlines()
    finally:
        pyfunc_logger.setLevel(level)
    problems = requirement_mismatches(requirements)
    trained_on = str(pyfunc.metadata.flavors.get("python_function", {}).get("python_version", ""))
    if trained_on and trained_on.split(".")[:2] != platform.python_version().split(".")[:2]:
        problems.append(f"python {trained_on} (running {platform.python_version()})")
    if problems:
        logging.getLogger("targeting").warning(
            "%s: this environment differs from the model's: %s", model_uri, "; ".join(problems)
        )
    return pyfunc
