"""The daily batch operator's and the reviewing officer's commands: `targeting score`, `targeting report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from targeting import config as defaults
from targeting.cli.common import console, handles_errors, out, print_frame, stage_printer
from targeting.errors import ConfigError, InputFileError


@handles_errors
def score(
    manifests: Annotated[
        list[Path], typer.Argument(help="today's declarations (CSV or Parquet), one or more files")
    ],
    model: Annotated[str, typer.Option(help="MLflow model URI")] = defaults.DEFAULT_MODEL_URI,
    history: Annotated[
        Path | None,
        typer.Option(
            help="folder with past declarations.parquet + inspections.parquet (default: the model's)"
        ),
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="score without any history (every party new), explicitly")
    ] = False,
    budget: Annotated[
        str, typer.Option(help="per-mode capacity, % of the mode's rows or a count")
    ] = defaults.DEFAULT_BUDGETS,
    explore: Annotated[
        str, typer.Option(help="share of each budget drawn at random (exploration)")
    ] = defaults.DEFAULT_EXPLORE,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output folder (default data/processed/<UTC date>)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the exploration draw")] = 0,
    report: Annotated[bool, typer.Option(help="write report.html (the officers' review report)")] = True,
    engine: Annotated[
        str, typer.Option(help="pandas (one machine) or spark (needs the spark extra)")
    ] = "pandas",
    spark_master: Annotated[str, typer.Option(help="Spark master URL for --engine spark")] = "local[2]",
) -> None:
    """Score today's manifests: validate (bad rows to rejects), rank, decide INSPECT / EXPLORE / RELEASE per
    mode within its budget, explain the selected rows, write scores + rejects, log the run to MLflow."""
    import pandas as pd

    from targeting.scoring.decisions import parse_budgets, parse_share
    from targeting.scoring.job import score_files
    from targeting.scoring.outputs import run_folder
    from targeting.scoring.record import log_scoring_run

    budgets, share = parse_budgets(budget), parse_share(explore)
    out_dir = out_dir or Path("data/processed") / pd.Timestamp.now(tz="UTC").date().isoformat()
    say = stage_printer()
    if history is not None and no_history:
        raise ConfigError("--history and --no-history exclude each other")
    with run_folder(out_dir) as folder:  # replaces --out whole once every output is written
        result = score_files(manifests, model, history, folder, budgets, share, seed, progress=say, engine=engine,
                             spark_master=spark_master, no_history=no_history).result  # fmt: skip
        if report:
            from targeting.scoring.report import write_report

            say("writing the review report")
            write_report(folder)
    say("logging to MLflow")
    params = {"model": model, "model_uri": result.summary["model_uri"], "manifests": ",".join(result.summary["manifests"]),
              "budget": budget, "explore": explore, "seed": seed, "out": str(out_dir.resolve())}  # fmt: skip
    run_id = log_scoring_run(result, params, out_dir)
    say("done")
    s = result.summary
    print_frame(f"{s['declarations']:,} declarations scored, {s['rejected']:,} rejected (of {s['rows_read']:,} read) "
                f"with {s['model_uri']}", pd.DataFrame(s["per_mode"]).round(3))  # fmt: skip
    for w in s["drift_warnings"]:
        console.print(
            f"[bold yellow]drift warning:[/] {w['column']} PSI {w['psi']:.2f} (> 0.2) vs the training window"
        )
    out.print(
        f"wrote {out_dir}/scores.parquet|csv, rejects.parquet|csv, explanations.parquet, summary.json"
        + (", report.html" if report else "")
        + f"; MLflow run {run_id}"
    )


@handles_errors
def report(
    folder: Annotated[Path, typer.Argument(help="a scoring run's output folder (written by `targeting score`)")],
    cards: Annotated[int, typer.Option(help="selected shipments drawn as cards")] = defaults.REPORT_CARDS,
) -> None:
    """Draw the review report of a scoring run again (report.html in its folder), e.g. after `score --no-report`."""
    from targeting.scoring.report import write_report

    if not (folder / "summary.json").exists():
        raise InputFileError(f"{folder}: not a scoring run folder (no summary.json)")
    path = write_report(folder, max_cards=cards)
    out.print(f"wrote {path}")
