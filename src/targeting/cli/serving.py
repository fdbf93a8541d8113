"""The platform engineer's command: `targeting serve`, the model server, bound to loopback by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from targeting import config as defaults
from targeting.cli.common import console, handles_errors
from targeting.errors import ConfigError


@handles_errors
def serve(
    model: Annotated[str, typer.Option(help="MLflow model URI")] = defaults.DEFAULT_MODEL_URI,
    host: Annotated[str, typer.Option(help="interface to bind (loopback by default)")] = defaults.SERVE_HOST,
    port: Annotated[int, typer.Option(help="TCP port")] = defaults.SERVE_PORT,
    history: Annotated[
        Path | None, typer.Option(help="history folder for the as-of features (default: the model's)")
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="serve without any history (every party new), explicitly")
    ] = False,
    workers: Annotated[int, typer.Option(help="server worker processes")] = defaults.SERVE_WORKERS,
    max_body_mb: Annotated[
        float, typer.Option(help="largest request body accepted, in MiB (larger: HTTP 413)")
    ] = defaults.MAX_BODY_BYTES / 2**20,
) -> None:
    """Serve the model over HTTP: POST declarations (dataframe_split or dataframe_records) to /invocations,
    get each row's risk score, rank within the request and top reasons. The process becomes the server:
    SIGTERM or Ctrl-C stops it."""
    from targeting.serving.launch import server_command

    if history is not None and no_history:
        raise ConfigError("--history and --no-history exclude each other")
    if workers < 1 or max_body_mb <= 0:
        raise ConfigError("--workers must be at least 1 and --max-body-mb more than 0")
    command, env = server_command(model, host, port, workers, history, no_history, int(max_body_mb * 2**20))
    console.print(f"serving {model} on http://{host}:{port}/invocations  (health: /ping; Ctrl-C stops)")
    os.execve(command[0], command, env)  # replaced by the server: signals reach it, not a wrapper
