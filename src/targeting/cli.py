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


def _stage_printer() -> Callable[[str], None]:
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


def _load_tables(declarations: Path, inspections: Path) -> Any:
    from targeting.io import read_parquet
    from targeting.train import TrainingData

    return TrainingData(read_parquet(declarations), read_parquet(inspections))


@app.command()
@handles_errors
def train(
    declarations: Annotated[Path, typer.Option(help="declarations Parquet (contract)")] = Path(
        "data/raw/sim-small/declarations.parquet"
    ),
    inspections: Annotated[Path, typer.Option(help="inspections Parquet (contract)")] = Path(
        "data/raw/sim-small/inspections.parquet"
    ),
    train_end: Annotated[
        str, typer.Option(help="end of the training window (exclusive, UTC)")
    ] = "2023-05-01",
    valid_end: Annotated[
        str, typer.Option(help="end of the validation window (exclusive, UTC)")
    ] = "2023-06-30",
    train_start: Annotated[str | None, typer.Option(help="start of the training window")] = None,
    target: Annotated[str, typer.Option(help="hit (DRUG/PRECURSOR) or violation (any finding)")] = "hit",
    register: Annotated[
        bool, typer.Option("--register", help="register as `targeting`, alias challenger")
    ] = False,
    threads: Annotated[int, typer.Option(help="LightGBM threads")] = 1,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    propensity_weights: Annotated[
        bool, typer.Option("--propensity-weights", help="weight rows by 1/propensity")
    ] = False,
    extra_numeric: Annotated[
        str, typer.Option(help="comma-separated extra numeric columns to use as features")
    ] = "",
) -> None:
    """Train on the inspected declarations of a time window, evaluate at budget, log everything to MLflow."""
    from targeting.features import FeatureConfig
    from targeting.model import TrainConfig
    from targeting.splits import time_split
    from targeting.train import log_run
    from targeting.train import train as run_training

    say = _stage_printer()
    say("reading tables")
    data = _load_tables(declarations, inspections)
    split = time_split(train_end, valid_end, train_start)
    extras = tuple(c for c in extra_numeric.split(",") if c)
    config = TrainConfig(features=FeatureConfig(extra_numeric=extras, seed=seed), num_threads=threads, seed=seed,
                         propensity_weights=propensity_weights)  # fmt: skip
    result = run_training(data, split, config, target, progress=say)
    params = {"declarations": str(declarations), "inspections": str(inspections), "train_window": str(split.train),
              "valid_window": str(split.valid), "target": target, "threads": threads, "seed": seed,
              "propensity_weights": propensity_weights, "extra_numeric": ",".join(extras)}  # fmt: skip
    logged = log_run(result, data, params, str(declarations.parent), register, progress=say)
    say("done")
    _print_frame("validation window, inspected rows: precision / recall at budget",
                 result.budget.round(4))  # fmt: skip
    m = result.metrics
    out.print(f"PR-AUC {m['pr_auc']:.4f}  ROC-AUC {m['roc_auc']:.4f}  Brier {m['brier']:.5f}")
    out.print(
        f"MLflow run {logged['run_id']}  model {logged['model_uri']}"
        + (f"  registered targeting v{logged['version']} @challenger" if "version" in logged else "")
    )


@app.command("evaluate-kcs")
@handles_errors
def evaluate_kcs(
    train_csv: Annotated[Path, typer.Option(help="KCS 2020 file")] = Path(
        "../shared/external/customs-declaration-datasets/df_syn_train_eng.csv"
    ),
    valid_csv: Annotated[Path, typer.Option(help="KCS 2021 Q1 file")] = Path(
        "../shared/external/customs-declaration-datasets/df_syn_valid_eng.csv"
    ),
    threads: Annotated[int, typer.Option(help="LightGBM threads")] = 1,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Protocol A: fit on KCS 2020, report precision at 1/2/5/10 % on 2021 Q1 (label: any fraud); log to MLflow."""
    import mlflow

    from targeting import tracking
    from targeting.model import TrainConfig
    from targeting.protocols import PAPER, TARGETS, protocol_a

    say = _stage_printer()
    result = protocol_a(train_csv, valid_csv, TrainConfig(num_threads=threads, seed=seed), progress=say)
    say("logging to MLflow")
    tracking.setup()
    with mlflow.start_run(run_name="protocol-A-kcs"):
        mlflow.set_tag("protocol", "A")
        mlflow.log_params({"train_csv": str(train_csv), "valid_csv": str(valid_csv), "seed": seed,
                           "n_train": result.n_train, "n_test": result.n_test})  # fmt: skip
        mlflow.log_metrics({k: v for k, v in result.headline.items() if v == v})
        mlflow.log_table(result.budget, "evaluation/protocol_a_budget.json")
    say("done")
    _print_frame("Protocol A: KCS 2021 Q1, label Fraud (violation)", result.budget.round(4))
    for k in ("precision_at_5pct", "precision_at_10pct"):
        out.print(
            f"{k}: {result.headline[k]:.3f}  (target {TARGETS[k]:.2f}; paper's LightGBM on 2021 Q2 {PAPER[k]:.3f})"
        )


@app.command()
@handles_errors
def promote(
    force: Annotated[
        bool, typer.Option("--force", help="move champion even if the challenger is not better")
    ] = False,
    metric: Annotated[str, typer.Option(help="holdout metric to compare (higher is better)")] = "pr_auc",
) -> None:
    """Compare challenger with champion on the challenger's validation window; move `champion` if better."""
    from targeting.promote import promote as run

    decision = run(force=force, metric=metric)
    out.print(decision)


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
