"""When pytest runs the notebooks (nbmake), they work in a scratch folder with their own MLflow store,
so a test run never writes runs or models into the project's store."""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config) -> None:
    scratch = tempfile.mkdtemp(prefix="targeting-notebooks-")
    os.environ.setdefault("TARGETING_NOTEBOOK_DIR", scratch)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{scratch}/mlflow.db")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
