"""What `targeting serve` does before the server starts: resolve and fetch the model once, check that it
loads (its files match their checksums) and that its history exists, then the command that becomes the
server (the wrapper process is replaced by it, so a signal to `targeting serve` reaches the server)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from targeting import tracking
from targeting.config import HISTORY_ENV, MAX_BODY_ENV, MODEL_PATH_ENV, NO_HISTORY_ENV
from targeting.contract.io import replace_folder
from targeting.errors import ModelNotFoundError
from targeting.history.folder import require_history
from targeting.serving.pyfunc import open_scorer


def server_command(model_uri: str, host: str, port: int, workers: int, history: Path | None, no_history: bool,
                   max_body_bytes: int) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """The uvicorn command line and environment of the server, after the checks above (each failure one
    clear error)."""
    local = fetch_model(model_uri)
    scorer = open_scorer(str(local))
    env = {**os.environ, MODEL_PATH_ENV: str(local), MAX_BODY_ENV: str(max_body_bytes),
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "MLFLOW_TRACKING_URI": tracking.tracking_uri()}  # fmt: skip
    env.pop(NO_HISTORY_ENV, None)
    if history is not None:
        env[HISTORY_ENV] = str(require_history(history).resolve())
    elif no_history:
        env[NO_HISTORY_ENV] = "1"
    else:
        env.pop(HISTORY_ENV, None)
        scorer.history.check()
    command = [sys.executable, "-m", "uvicorn", "--factory", "targeting.serving.app:create_app", "--host", host,
               "--port", str(port), "--workers", str(workers), "--timeout-graceful-shutdown", "10"]  # fmt: skip
    return command, env


def fetch_model(model_uri: str) -> Path:
    """The model's files in a local folder (a cache keyed by the resolved model, reused by later starts)."""
    tracking.setup()
    resolved = model_uri
    try:
        m = re.fullmatch(r"models:/([^/@]+)@(.+)", model_uri)
        if m:
            resolved = f"models:/{m.group(1)}/{MlflowClient().get_model_version_by_alias(*m.groups()).version}"
        key = hashlib.sha256(f"{tracking.tracking_uri()} {resolved}".encode()).hexdigest()[:16]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "targeting" / "models" / key
        if not (cache / "MLmodel").exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            fetched = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache.parent))
            try:  # fetched whole, then put in place: an interrupted fetch leaves no half model in the cache
                download_artifacts(artifact_uri=resolved, dst_path=str(fetched))
                replace_folder(fetched, cache)
            finally:
                shutil.rmtree(fetched, ignore_errors=True)
    except MlflowException as exc:
        raise ModelNotFoundError(f"--model {model_uri}: {str(exc).splitlines()[0]}") from None
    return cache
