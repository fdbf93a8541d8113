"""Data commands: validate a file, import the KCS declarations, simulate a world, describe a world."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from targeting import config as defaults
from targeting.cli.common import console, handles_errors, out, print_frame, summary
from targeting.config import KcsConfig
from targeting.errors import InputFileError


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
    from targeting.contract.files import validate_file

    result = validate_file(file, table, out_dir, declarations)
    summary(
        f"{file.name} as {result.table}",
        [("read", result.n_read), ("valid", result.n_valid), ("rejected", result.n_rejected)],
        result.reason_counts().to_dict(),
    )
    if out_dir is not None:
        out.print(f"wrote {out_dir}/{result.table}.parquet and {out_dir}/rejects.parquet/.csv")


@handles_errors
def import_kcs(
    csv_file: Annotated[Path, typer.Argument(help="KCS declarations CSV (df_syn_*_eng.csv)")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")],
    krw_per_usd: Annotated[
        float, typer.Option(help="fixed KRW per USD rate for declared_value_usd")
    ] = KcsConfig.krw_per_usd,
    exam_lag_days: Annotated[
        int, typer.Option(help="days from filing to the inspection outcome")
    ] = KcsConfig.exam_lag_days,
    history: Annotated[
        Path | None, typer.Option(help="also add the imported tables to this history folder")
    ] = None,
) -> None:
    """Convert the public KCS declarations into contract `declarations` and `inspections` tables."""
    from targeting.contract.files import import_kcs_file

    result = import_kcs_file(
        csv_file, out_dir, KcsConfig(krw_per_usd=krw_per_usd, exam_lag_days=exam_lag_days)
    )
    d, i = result.declarations, result.inspections
    summary(
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
    if history is not None:
        from targeting.history.add import add

        add(history, [out_dir / "declarations.parquet"], [out_dir / "inspections.parquet"])
        out.print(f"added the imported tables to the history {history}")


@handles_errors
def history_index(
    folder: Annotated[
        Path, typer.Argument(help="a history folder: partitioned by day, or declarations.parquet + inspections.parquet")
    ],
    target: Annotated[str, typer.Option(help="the models' target: hit or violation")] = "hit",
) -> None:
    """Index a history folder for fast as-of features. Days added later are read beside the index as its
    delta (rerun to fold them in); a single-file history's index is ignored once its files change."""
    from targeting.cli.common import stage_printer
    from targeting.history.folder import build_index

    say = stage_printer()
    path, counts = build_index(folder, target, progress=say)
    say("done")
    summary("history index", [("declarations", counts["declarations"]), ("outcomes", counts["outcomes"]),
                              ("entity keys", counts["keys"])], {})  # fmt: skip
    out.print(f"wrote {path} (scoring and serving use it until the history files change)")


@handles_errors
def simulate(
    preset_name: Annotated[str, typer.Option("--preset", help="tiny, small, dev or full")] = "small",
    seed: Annotated[int, typer.Option(help="master seed (same seed, same bytes)")] = 7,
    out_dir: Annotated[Path, typer.Option("--out", help="run folder")] = Path(defaults.DEFAULT_WORLD),
    daily: Annotated[bool, typer.Option("--daily", help="also write one declarations file per day")] = False,
    prevalence_multiplier: Annotated[float | None, typer.Option(help="scale every pattern's rate")] = None,
    history: Annotated[
        Path | None, typer.Option(help="also add the world's declarations and inspections to this history folder")
    ] = None,
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

    if history is not None:
        from targeting.history.add import add

        add(history, [out_dir / "declarations.parquet"], [out_dir / "inspections.parquet"])
        out.print(f"added the world to the history {history}")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    summary(f"{cfg.preset} world, seed {cfg.seed} -> {out_dir}",
             [(f"declarations {m}", n) for m, n in manifest["rows_per_mode"].items()]
             + [("inspections", manifest["rows"]["inspections"]), ("smuggling (ground truth)", manifest["smuggling"])],
             {})  # fmt: skip


@handles_errors
def world_stats(
    folder: Annotated[Path, typer.Argument(help="run folder written by `targeting simulate`")],
) -> None:
    """Print a simulated world's statistics: volumes, patterns, selection and hit rates, the rule's lift."""
    from targeting.simulate.stats import world_stats as compute

    if not (folder / "ground_truth.parquet").exists():
        raise InputFileError(f"{folder}: not a simulator run folder (no ground_truth.parquet)")
    stats = compute(folder)
    print_frame("declarations per mode", stats.rows_per_mode)
    print_frame("smuggling rows per pattern and mode", stats.patterns)
    print_frame("inspections per mode and selection reason", stats.selection)
    print_frame("legacy rule score vs ground truth", stats.rule)
