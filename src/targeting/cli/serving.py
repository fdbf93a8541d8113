"""`targeting serve`: MLflow's own model server for the logged pyfunc, bound to loopback by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from targeting.cli.common import console, handles_errors


@handles_errors
def serve(
    model: Annotated[str, typer.Option(help="MLflow model URI")] = "models:/targeting@champion",
    host: Annotated[str, typer.Option(help="interface to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 5001,
    history: Annotated[
        Path | None, typer.Option(help="history folder for the as-of features (default: the model's)")
    ] = None,
    workers: Annotated[int, typer.Option(help="server worker processes")] = 1,
) -> None:
    """Serve the model over HTTP: POST declarations (dataframe_split or dataframe_records) to /invocations,
    get each row's risk score, rank within the request and top reasons. Same as `mlflow models serve`."""
    from targeting import tracking
    from targeting.errors import InputFileError

    # MLflow starts `uvicorn` by name: the interpreter's own bin folder (the venv) must be on PATH
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
    }
    if history is not None:
        if not (history / "declarations.parquet").exists():
            raise InputFileError(f"--history {history}: no declarations.parquet")
        env["TARGETING_HISTORY"] = str(history.resolve())
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local",
               "-h", host, "-p", str(port), "--workers", str(workers)]  # fmt: skip
    console.print(f"serving {model} on http://{host}:{port}/invocations  (health: /ping; Ctrl-C stops)")
    raise typer.Exit(subprocess.call(command, env=env))
