"""`targeting serve`: MLflow's own model server for the logged pyfunc, bound to loopback by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from targeting import config as defaults
from targeting.cli.common import console, handles_errors


@handles_errors
def serve(
    model: Annotated[str, typer.Option(help="MLflow model URI")] = defaults.DEFAULT_MODEL_URI,
    host: Annotated[str, typer.Option(help="interface to bind (loopback by default)")] = defaults.SERVE_HOST,
    port: Annotated[int, typer.Option(help="TCP port")] = defaults.SERVE_PORT,
    history: Annotated[
        Path | None, typer.Option(help="history folder for the as-of features (default: the model's)")
    ] = None,
    workers: Annotated[int, typer.Option(help="server worker processes")] = defaults.SERVE_WORKERS,
) -> None:
    """Serve the model over HTTP: POST declarations (dataframe_split or dataframe_records) to /invocations,
    get each row's risk score, rank within the request and top reasons. Same as `mlflow models serve`."""
    from targeting import tracking
    from targeting.history.folder import require_history

    # MLflow starts `uvicorn` by name: the interpreter's own bin folder (the venv) must be on PATH
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
    }
    if history is not None:
        env[defaults.HISTORY_ENV] = str(require_history(history).resolve())
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local",
               "-h", host, "-p", str(port), "--workers", str(workers)]  # fmt: skip
    console.print(f"serving {model} on http://{host}:{port}/invocations  (health: /ping; Ctrl-C stops)")
    raise typer.Exit(subprocess.call(command, env=env))
