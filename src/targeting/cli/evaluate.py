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
