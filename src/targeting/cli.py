"""The `targeting` command: options -> config -> one library call; domain errors exit 1 with one line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table as RichTable

from targeting.errors import InputFileError, TargetingError

app = typer.Typer(
    name="targeting",
    help="Machine-learning shipment targeting for customs: validate, simulate, train, score, explain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., object])


def _setup_environment() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def handles_errors(fn: F) -> F:
    """Turn a TargetingError into one red line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        _setup_environment()
        try:
            return fn(*args, **kwargs)
        except TargetingError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _summary(title: str, rows: list[tuple[str, int]], reasons: dict[str, int]) -> None:
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


@app.command()
@handles_errors
def validate(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file to check")],
    table: Annotated[str, typer.Option(help="contract table: declarations or inspections")] = "declarations",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for the valid rows and rejects")
    ] = None,
    declarations: Annotated[
        Path | None, typer.Option(help="declarations file, to check that inspections reference them")
    ] = None,
) -> None:
    """Check FILE against the data contract: valid rows and rejects (with reasons) add up to the input."""
    from targeting.pipeline import validate_file

    result = validate_file(file, table, out_dir, declarations)
    _summary(
        f"{file.name} as {result.table}",
        [("read", result.n_read), ("valid", result.n_valid), ("rejected", result.n_rejected)],
        result.reason_counts().to_dict(),
    )
    if out_dir is not None:
        out.print(f"wrote {out_dir}/{result.table}.parquet and {out_dir}/rejects.parquet/.csv")


@app.command("import-kcs")
@handles_errors
def import_kcs(
    csv_file: Annotated[Path, typer.Argument(help="KCS declarations CSV (df_syn_*_eng.csv)")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")],
    krw_per_usd: Annotated[
        float, typer.Option(help="fixed KRW per USD rate for declared_value_usd")
    ] = 1180.1,
    exam_lag_days: Annotated[int, typer.Option(help="days from filing to the inspection outcome")] = 1,
) -> None:
    """Convert the public KCS declarations into contract `declarations` and `inspections` tables."""
    from targeting.config import KcsConfig
    from targeting.pipeline import import_kcs_file

    result = import_kcs_file(
        csv_file, out_dir, KcsConfig(krw_per_usd=krw_per_usd, exam_lag_days=exam_lag_days)
    )
    d, i = result.declarations, result.inspections
    _summary(
        f"{csv_file.name} -> {out_dir}",
        [
            ("read", d.n_read),
            ("declarations valid", d.n_valid),
            ("declarations rejected", d.n_rejected),
            ("inspections valid", i.n_valid),
            ("inspections rejected", i.n_rejected),
        ],
        d.reason_counts().add(i.reason_counts(), fill_value=0).astype(int).to_dict(),
    )


@app.command()
@handles_errors
def simulate(
    preset_name: Annotated[str, typer.Option("--preset", help="tiny, small, dev or full")] = "small",
    seed: Annotated[int, typer.Option(help="master seed (same seed, same bytes)")] = 7,
    out_dir: Annotated[Path, typer.Option("--out", help="run folder")] = Path("data/raw/sim-small"),
    daily: Annotated[bool, typer.Option("--daily", help="also write one declarations file per day")] = False,
    prevalence_multiplier: Annotated[float | None, typer.Option(help="scale every pattern's rate")] = None,
) -> None:
    """Generate a simulated customs world (declarations, inspections, ground truth, drift log)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from targeting.simulate.config import preset
    from targeting.simulate.run import simulate as run

    overrides = {"seed": seed}
    if prevalence_multiplier is not None:
        overrides["prevalence_multiplier"] = prevalence_multiplier
    cfg = preset(preset_name, **overrides)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:  # fmt: skip
        task = bar.add_task(f"simulating {cfg.preset}", total=cfg.days)
        run(cfg, out_dir, daily=daily, progress=lambda _day: bar.advance(task))
    import json

    manifest = json.loads((out_dir / "manifest.json").read_text())
    _summary(f"{cfg.preset} world, seed {cfg.seed} -> {out_dir}",
             [(f"declarations {m}", n) for m, n in manifest["rows_per_mode"].items()]
             + [("inspections", manifest["rows"]["inspections"]), ("smuggling (ground truth)", manifest["smuggling"])],
             {})  # fmt: skip


def _print_frame(title: str, frame: Any) -> None:
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


@app.command("world-stats")
@handles_errors
def world_stats(
    folder: Annotated[Path, typer.Argument(help="run folder written by `targeting simulate`")],
) -> None:
    """Print a simulated world's statistics: volumes, patterns, selection and hit rates, the rule's lift."""
    from targeting.simulate.stats import world_stats as compute

    if not (folder / "ground_truth.parquet").exists():
        raise InputFileError(f"{folder}: not a simulator run folder (no ground_truth.parquet)")
    stats = compute(folder)
    _print_frame("declarations per mode", stats.rows_per_mode)
    _print_frame("smuggling rows per pattern and mode", stats.patterns)
    _print_frame("inspections per mode and selection reason", stats.selection)
    _print_frame("legacy rule score vs ground truth", stats.rule)


def main() -> None:  # pragma: no cover - console entry for `python -m targeting`
    app()
    sys.exit(0)
