"""What every command shares: consoles, the one-line error handler, stage progress, tables."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table as RichTable

from targeting.errors import TargetingError

if TYPE_CHECKING:
    from targeting.training.train import TrainingData

console = Console(stderr=True)
#: results go to stdout; wide enough for the evaluation tables when piped to a file
out = Console(width=None if sys.stdout.isatty() else 140)

F = TypeVar("F", bound=Callable[..., object])


def _setup_environment() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
    )  # bars for 3-file downloads are noise


def handles_errors(fn: F) -> F:
    """Turn a TargetingError, or the system refusing a file (a full disk, no permission), into one red line
    on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        _setup_environment()
        try:
            return fn(*args, **kwargs)
        except TargetingError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            console.print(f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def summary(title: str, rows: list[tuple[str, int]], reasons: dict[str, int]) -> None:
    tbl = RichTable(title=title, show_header=True, header_style="bold")
    tbl.add_column("")
    tbl.add_column("rows", justify="right")
    for label, n in rows:
        tbl.add_row(label, f"{n:,}")
    out.print(tbl)
    if reasons:
        rt = RichTable(title="rejected rows by rule", header_style="bold")
        rt.add_column("column: rule")
        rt.add_column("rows", justify="right")
        for reason, n in reasons.items():
            rt.add_row(reason, f"{n:,}")
        out.print(rt)


def stage_printer() -> Callable[[str], None]:
    """Progress for multi-stage jobs: one line per stage with the time since the previous one."""
    import time

    last = [time.perf_counter(), ""]

    def say(stage: str) -> None:
        now = time.perf_counter()
        if last[1]:
            console.print(f"  [dim]{last[1]}: {now - last[0]:.1f} s[/]")
        console.print(f"[bold]>[/] {stage}")
        last[0], last[1] = now, stage

    return say


def print_frame(title: str, frame: Any) -> None:
    tbl = RichTable(title=title, header_style="bold")
    for col in frame.columns:
        tbl.add_column(str(col), justify="right" if frame[col].dtype.kind in "iuf" else "left")
    for row in frame.itertuples(index=False):
        tbl.add_row(
            *[
                f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
                for v in row
            ]
        )
    out.print(tbl)


def load_tables(declarations: Path, inspections: Path) -> TrainingData:
    from targeting.contract.io import read_parquet
    from targeting.training.train import TrainingData

    return TrainingData(read_parquet(declarations), read_parquet(inspections))
