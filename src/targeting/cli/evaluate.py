"""Evaluation protocols: `evaluate kcs` (Protocol A), `evaluate world` (Protocol B)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from targeting.cli.common import handles_errors, out, print_frame, stage_printer


@handles_errors
def kcs(
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
    from targeting.config import TrainConfig
    from targeting.evaluation.kcs import PAPER, TARGETS, log_protocol_a, protocol_a

    say = stage_printer()
    result = protocol_a(train_csv, valid_csv, TrainConfig(num_threads=threads, seed=seed), progress=say)
    say("logging to MLflow")
    log_protocol_a(result, {"train_csv": str(train_csv), "valid_csv": str(valid_csv), "seed": seed})
    say("done")
    print_frame("Protocol A: KCS 2021 Q1, label Fraud (violation)", result.budget.round(4))
    for k in ("precision_at_5pct", "precision_at_10pct"):
        out.print(
            f"{k}: {result.headline[k]:.3f}  (target {TARGETS[k]:.2f}; paper's LightGBM on 2021 Q2 {PAPER[k]:.3f})"
        )


@handles_errors
def world(
    folder: Annotated[Path, typer.Argument(help="world folder written by `targeting simulate`")] = Path(
        "data/raw/sim-dev"
    ),
    target: Annotated[str, typer.Option(help="hit (DRUG/PRECURSOR) or violation")] = "hit",
    budget: Annotated[float, typer.Option(help="daily budget per mode, in % of its declarations")] = 1.0,
    oracle: Annotated[
        bool, typer.Option(help="also fit ORACLE-FEATURES on ground truth (slow on dev)")
    ] = True,
    threads: Annotated[int, typer.Option(help="LightGBM threads")] = 1,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Protocol B: train on days [0,240), validate [240,300), then select each mode's daily top BUDGET % on
    [300,365) and report recall and seized-kg against ground truth beside RANDOM, RULE and ORACLE-FEATURES."""
    from targeting.config import Target, TrainConfig
    from targeting.evaluation.world import (
        TARGETS,
        WorldProtocol,
        load_manifest,
        log_protocol_b,
        protocol_b,
        wide,
    )

    say = stage_printer()
    days = int(load_manifest(folder)["config"]["days"])
    protocol = WorldProtocol.scaled(
        days, budget_pct=budget, target=Target(target), oracle=oracle, random_seed=seed
    )
    result = protocol_b(folder, TrainConfig(num_threads=threads, seed=seed), protocol, progress=say)
    say("logging to MLflow")
    log_protocol_b(result, protocol, {"world": str(folder.resolve()), "target": target, "budget_pct": budget,
                                      "seed": seed})  # fmt: skip
    say("done")
    c = result.counts
    out.print(f"test days {protocol.test_days}: {c['test_rows']:,} declarations, {c['test_smuggling']:,} smuggling; "
              f"trained on {c['train_labelled']:,} inspected rows ({c['train_labelled_positive']} hits) of "
              f"{c['train_rows']:,}")  # fmt: skip
    print_frame(f"Protocol B: recall (and kg seized) of ground-truth smuggling at each mode's daily {budget:g} %",
                wide(result.table).round(3))  # fmt: skip
    h = result.headline
    for key, goal in TARGETS.items():
        if key in h:
            verdict = "met" if h[key] >= goal else "NOT met"
            out.print(f"{key}: {h[key]:.2f}  (target >= {goal:g}: {verdict})")


@handles_errors
def backtest(
    preset: Annotated[str, typer.Option(help="the simulated world's preset (tiny, small, dev, full)")] = "small",
    seed: Annotated[int, typer.Option(help="the world's seed (same seed, same result)")] = 7,
    days: Annotated[int, typer.Option(help="the world's length in days (0: the preset's)")] = 0,
    warmup_days: Annotated[
        int, typer.Option(help="days of the legacy policy alone before the first model (0: day 120 of 365, scaled)")
    ] = 0,
    retrain_every: Annotated[int, typer.Option(help="days between retrainings")] = 7,
    valid_days: Annotated[int, typer.Option(help="each retraining's validation window (early stopping, calibration)")] = 21,
    test_days: Annotated[int, typer.Option(help="each retraining's held-out test window (promotion)")] = 7,
    epsilons: Annotated[str, typer.Option(help="exploration shares of the model's budget, one policy each")] = "0,0.05,0.1,0.2",
    oracle: Annotated[bool, typer.Option(help="also run ORACLE-loop (trained on ground truth): the bound")] = True,
    rule: Annotated[bool, typer.Option(help="also run RULE-only (the legacy service)")] = True,
    workers: Annotated[
        int, typer.Option(help="policies run side by side in this many processes (default: one per core)")
    ] = 0,
    out_dir: Annotated[
        Path, typer.Option("--out", help="output folder (tables, plots, summary.json; working histories)")
    ] = Path("data/backtest"),
) -> None:
    """Protocol C: the closed loop on the simulated world. After a warm-up with the legacy policy, each
    policy scores every day through the daily job, the world inspects its selection, the outcomes join its
    history (`history add`), and a challenger is trained and judged every few days; recall and seized kg
    against ground truth per week, mode, pattern and drift event, logged to MLflow."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from targeting.config import backtest_workers
    from targeting.errors import ConfigError
    from targeting.evaluation.backtest.loop import BacktestConfig, run_backtest
    from targeting.evaluation.backtest.metrics import tables
    from targeting.evaluation.backtest.record import log_backtest, write_outputs

    try:
        shares = tuple(float(e) for e in epsilons.split(",") if e.strip())
    except ValueError:
        raise ConfigError(f"--epsilons: {epsilons!r} is not a comma-separated list of shares such as 0,0.1") from None
    if any(not 0 <= e <= 1 for e in shares):
        raise ConfigError(f"--epsilons: every share must be between 0 and 1, got {epsilons!r}")
    cfg = BacktestConfig(preset=preset, seed=seed, days=days or None, warmup_days=warmup_days or None,
                         retrain_every=retrain_every, epsilons=shares, oracle=oracle, rule=rule,
                         valid_days=valid_days, test_days=test_days)  # fmt: skip
    world = cfg.world()
    warmup = cfg.warmup(world)
    total = len(cfg.specs()) * (world.days - warmup)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("warm-up", total=total)

        def progress(what: str, done: int) -> None:
            bar.update(task, description=what, advance=done)

        records = run_backtest(cfg, out_dir, progress, workers or backtest_workers())
    seconds = time.perf_counter() - started
    result = tables(records, world, warmup)
    write_outputs(result, cfg, world, warmup, out_dir, seconds)
    run_id = log_backtest(result, cfg, out_dir)
    columns = ["policy", "attempts", "caught", "recall", "kg_share", "caught_by_model", "caught_by_rule",
               "p07_days_to_first_seizure"]  # fmt: skip
    print_frame(f"Protocol C: days {warmup}-{world.days - 1} of {preset} (seed {seed}), every channel",
                result.summary[columns].round(3))  # fmt: skip
    if len(result.drift):
        drift = result.drift.pivot_table(index=["event", "day"], columns="policy", values="recall", sort=False)
        print_frame(f"recall in the {28} days after each drift event", drift.reset_index().round(3))
    if len(result.exploration):
        print_frame("the model's selection: INSPECT vs EXPLORE", result.exploration.round(3))
    if len(result.calibration):
        shown = "eps=0.1" if (result.calibration["policy"] == "eps=0.1").any() else result.calibration["policy"].iloc[0]
        print_frame(f"{shown}: risk_score against ground truth over all traffic, and the inspected rows' hit rate",
                    result.calibration[result.calibration["policy"] == shown].drop(columns=["policy"]).round(4))  # fmt: skip
    out.print(f"{seconds / 60:.1f} min; tables and plots in {out_dir}; MLflow run {run_id}")


@handles_errors
def monitor(
    history: Annotated[Path, typer.Argument(help="a history folder")],
    scores: Annotated[
        list[Path] | None,
        typer.Option(help="scoring runs' scores (files, or folders searched for *.parquet), for the calibration"),
    ] = None,
    target: Annotated[str, typer.Option(help="hit (DRUG/PRECURSOR) or violation")] = "hit",
    promotions: Annotated[
        Path | None,
        typer.Option(help="a promotion log as CSV (a backtest policy's promotions.csv); default: the promotion "
                     "runs in MLflow"),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="output folder: monitor.html and CSV tables")] = Path(
        "data/monitor"
    ),
) -> None:
    """Real performance over time from the outcomes the history recorded: per mode and week the hit rate of
    the model's selection, of exploration and of the other channels, inverse-propensity estimates of
    recall, calibration of risk_score, an audit of the selection by origin and consignee type, and a
    warning when the model's hit rate falls towards exploration's."""
    import pandas as pd

    from targeting.contract.io import read_parquet
    from targeting.contract.labels import parse_target
    from targeting.errors import InputFileError
    from targeting.history.folder import read_history, require_history
    from targeting.monitoring.page import write_page
    from targeting.monitoring.performance import monitor as run

    declarations, outcomes = read_history(require_history(history, "HISTORY"))
    files = [f for p in scores or [] for f in (sorted(p.rglob("*.parquet")) if p.is_dir() else [p])]
    for f in files:
        if not f.exists():
            raise InputFileError(f"--scores {f}: no such file")
    frames = [read_parquet(f, columns=["declaration_id", "risk_score"]) for f in files]
    if promotions is not None:
        if not promotions.is_file():
            raise InputFileError(f"--promotions {promotions}: no such file")
        decisions = pd.read_csv(promotions)
    else:
        from targeting.training.registry import promotion_log

        decisions = promotion_log()
    result = run(declarations, outcomes, pd.concat(frames, ignore_index=True) if frames else None,
                 parse_target(target), decisions)  # fmt: skip
    page = write_page(result, history, out_dir)
    for warning in result.warnings:
        out.print(f"[bold yellow]warning:[/] {warning}")
    pooled = result.weekly.groupby("channel")[["inspected", "hits"]].sum()
    pooled["hit_rate"] = pooled["hits"] / pooled["inspected"]
    print_frame("inspections and hit rate by channel, whole history", pooled.reset_index().round(4))
    if len(result.champions):
        shown = result.champions[["decided", "version", "promoted", "overlap", "difference", "lower_bound"]]
        print_frame("promotion decisions: overlap of the challenger's selection with the champion's", shown.round(3))
    out.print(f"page: {page}")
