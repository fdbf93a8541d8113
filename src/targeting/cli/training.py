"""The data scientist's commands: train (and register), promote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from targeting import config as defaults
from targeting.cli.common import (
    handles_errors,
    load_tables,
    out,
    print_frame,
    stage_printer,
)
from targeting.errors import ConfigError

if TYPE_CHECKING:
    from targeting.training.splits import TimeSplit
    from targeting.training.train import TrainingData

WORLD = Path(defaults.DEFAULT_WORLD)


@handles_errors
def train(
    declarations: Annotated[Path, typer.Option(help="declarations Parquet (contract)")] = WORLD / "declarations.parquet",
    inspections: Annotated[Path, typer.Option(help="inspections Parquet (contract)")] = WORLD / "inspections.parquet",
    history: Annotated[
        Path | None,
        typer.Option(help="a history folder to train on instead (its committed declarations and outcomes)"),
    ] = None,
    train_end: Annotated[
        str,
        typer.Option(help=f"end of the training window (exclusive, UTC; empty: {defaults.VALID_DAYS} days "
                          "before the validation window's end)"),
    ] = "",
    valid_end: Annotated[
        str,
        typer.Option(help="end of the validation window (exclusive, UTC; empty: the test window ends at "
                          "midnight after the last declaration's day)"),
    ] = "",
    train_start: Annotated[str | None, typer.Option(help="start of the training window")] = None,
    test_days: Annotated[
        int,
        typer.Option(help="days after the validation window held out of fitting, early stopping and "
                          "calibration, for `promote` to judge the model on (0: none)"),
    ] = defaults.TEST_DAYS,
    target: Annotated[str, typer.Option(help="hit (DRUG/PRECURSOR) or violation (any finding)")] = "hit",
    register: Annotated[
        bool, typer.Option("--register", help="register as `targeting`, alias challenger")
    ] = False,
    threads: Annotated[int, typer.Option(help="LightGBM threads")] = defaults.TrainConfig.num_threads,
    seed: Annotated[int, typer.Option(help="random seed")] = defaults.TrainConfig.seed,
    propensity_weights: Annotated[
        bool, typer.Option("--propensity-weights", help="weight rows by 1/propensity")
    ] = False,
    extra_numeric: Annotated[
        str, typer.Option(help="comma-separated extra numeric columns to use as features")
    ] = "",
    extra_categorical: Annotated[
        str,
        typer.Option(help="comma-separated extra categorical columns (codes from the training vocabulary)"),
    ] = "",
    search: Annotated[
        int,
        typer.Option(help="Optuna trials to tune LightGBM on the training window's last quarter (0 = off)"),
    ] = 0,
    engine: Annotated[
        str, typer.Option(help="pandas, or spark (with --history): the training rows and their as-of features "
                               "built by Spark, LightGBM fitted here")
    ] = "pandas",
    spark_master: Annotated[str, typer.Option(help="Spark master URL for --engine spark")] = "local[2]",
) -> None:
    """Train on the inspected declarations of a time window, evaluate at budget, log everything to MLflow."""
    from targeting.config import CATEGORICAL_COLUMNS, FeatureConfig, TrainConfig
    from targeting.scoring.job import check_engine
    from targeting.training.registry import log_run
    from targeting.training.splits import time_split
    from targeting.training.train import train as run_training

    check_engine(engine)
    say = stage_printer()
    if engine == "spark":
        if history is None:
            raise ConfigError("--engine spark trains on a history folder: give --history FOLDER")
        data, split = spark_data(history, train_end, valid_end, train_start, test_days, target, seed, spark_master, say)
    else:
        say("reading tables")
        if history is not None:
            from targeting.contract.labels import parse_target
            from targeting.history.folder import read_history, require_history
            from targeting.history.source import HistorySource
            from targeting.training.train import TrainingData

            source = HistorySource(require_history(history, "--history"), parse_target(target).value)
            data = TrainingData(*read_history(history), history=source)
        else:
            data = load_tables(declarations, inspections)
        split = time_split(train_end, valid_end, train_start, filed_at=data.declarations["filed_at"],
                           test_days=test_days)  # fmt: skip
    extras = tuple(c for c in extra_numeric.split(",") if c)
    extra_cats = tuple(c for c in extra_categorical.split(",") if c)
    features = FeatureConfig(categorical=(*CATEGORICAL_COLUMNS, *extra_cats), extra_numeric=extras, seed=seed)
    config = TrainConfig(features=features, num_threads=threads, seed=seed, propensity_weights=propensity_weights,
                         search_trials=search)  # fmt: skip
    result = run_training(data, split, config, target, progress=say)
    if history is not None:  # the history's committed state the model was trained on
        from targeting.history import layout

        if layout.is_partitioned(history):
            manifest = layout.read_manifest(history)
            days = sorted({f.split("/")[1].removeprefix("day=") for f in manifest.files["declarations"]})
            params_history = {"history_version": manifest.version, "history_days": f"{days[0]}..{days[-1]}" if days else ""}
        else:
            params_history = {"history_version": "single-file"}
    source = {"history": str(history.resolve())} if history is not None else \
        {"declarations": str(declarations), "inspections": str(inspections)}  # fmt: skip
    params = {**source, "train_window": str(split.train),
              "valid_window": str(split.valid), "test_window": str(split.test or ""), "target": target, "threads": threads, "seed": seed,
              "propensity_weights": propensity_weights, "extra_numeric": ",".join(extras),
              "extra_categorical": ",".join(extra_cats), "search_trials": search,
              **(params_history if history is not None else {})}  # fmt: skip
    history_dir = history if history is not None else declarations.parent
    logged = log_run(result, data, params, str(history_dir), register, progress=say)
    say("done")
    print_frame("validation window, inspected rows: precision / recall at budget",
                 result.budget.round(4))  # fmt: skip
    m = result.metrics
    out.print(f"PR-AUC {m['pr_auc']:.4f}  ROC-AUC {m['roc_auc']:.4f}  Brier {m['brier']:.5f}")
    if result.search is not None:
        best = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result.search.best_params.items()
        )
        out.print(f"search: best tuning PR-AUC {result.search.best_value:.4f} with {best}")
    out.print(
        f"MLflow run {logged['run_id']}  model {logged['model_uri']}"
        + (f"  registered targeting v{logged['version']} @challenger" if "version" in logged else "")
    )


def spark_data(history: Path, train_end: str, valid_end: str, train_start: str | None, test_days: int, target: str,
               seed: int, spark_master: str, say: Callable[[str], None]) -> tuple[TrainingData, TimeSplit]:  # fmt: skip
    """The training rows of the split and their as-of answers, built on Spark from the history folder."""
    from targeting.contract.labels import parse_target
    from targeting.history.folder import require_history
    from targeting.scoring.spark import session
    from targeting.training.spark import filing_bounds, spark_training_data
    from targeting.training.splits import time_split

    require_history(history, "--history")
    say(f"starting Spark ({spark_master})")
    spark = session(spark_master, "targeting-train")
    say("the history's filing times (Spark)")
    split = time_split(train_end, valid_end, train_start, filed_at=filing_bounds(spark, history), test_days=test_days)
    say("the inspected rows of the windows and their as-of features (Spark)")
    data = spark_training_data(spark, history, split, parse_target(target), seed)
    say(f"{len(data.declarations):,} rows on the driver")
    return data, split


@handles_errors
def promote(
    force: Annotated[
        bool, typer.Option("--force", help="move champion even if the challenger is not shown better (logged)")
    ] = False,
    budget: Annotated[
        str, typer.Option(help="the daily inspection budget per mode each model selects within")
    ] = defaults.DEFAULT_BUDGETS,
    confidence: Annotated[
        float, typer.Option(help="one-sided confidence that the challenger finds more hits, to promote")
    ] = defaults.PROMOTION_CONFIDENCE,
) -> None:
    """Judge the challenger against the champion on the challenger's test window (days neither model was
    fitted, early-stopped or calibrated on), at the budget, by inverse-propensity estimated hits with a
    bootstrap interval; move `champion` only when the challenger is shown better."""
    from targeting.scoring.decisions import parse_budgets
    from targeting.training.registry import promote as run

    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence: must be between 0 and 1, got {confidence}")
    decision = run(force=force, budgets=parse_budgets(budget), confidence=confidence)
    out.print(decision)
