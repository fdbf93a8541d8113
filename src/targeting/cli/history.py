"""The history's commands: `targeting history add` (the daily loop's write), `history migrate` (a
single-file history into the partitioned layout), `history index` (fold what was added into the saved
index), and `targeting examine` (the simulated world's inspections of a scoring run's selection)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from targeting.cli.common import handles_errors, out, stage_printer, summary
from targeting.errors import InputFileError


@handles_errors
def add(
    history: Annotated[Path, typer.Argument(help="history folder (created when new)")],
    declarations: Annotated[
        list[Path] | None, typer.Option("--declarations", help="declarations (CSV or Parquet); repeat for more")
    ] = None,
    outcomes: Annotated[
        list[Path] | None, typer.Option("--outcomes", help="inspections (CSV or Parquet); repeat for more")
    ] = None,
    scores: Annotated[
        list[Path] | None,
        typer.Option("--scores", help="a scoring run's scores: the selection of outcomes that leave it out"),
    ] = None,
    before: Annotated[
        str | None, typer.Option(help="add only what was filed / known before this day (UTC): a backfill")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="pandas, or spark: stored ids looked up and the state for Spark scoring rebuilt by Spark")
    ] = "pandas",
    spark_master: Annotated[str, typer.Option(help="Spark master URL for --engine spark")] = "local[2]",
    target: Annotated[str, typer.Option(help="with --engine spark: the target of the state to rebuild")] = "hit",
) -> None:
    """Add a day's declarations and the outcomes known since to the history, in one commit: bad rows to the
    rejects (with reasons), duplicates refused, nothing added twice when run again."""
    from targeting.history.add import add as run
    from targeting.history.add import rejects_by_rule
    from targeting.scoring.job import check_engine
    from targeting.training.splits import utc

    if not declarations and not outcomes:
        raise InputFileError("give --declarations and/or --outcomes files to add")
    check_engine(engine)
    say = stage_printer()
    stored, spark = None, None
    if engine == "spark":
        from targeting.history.spark import SparkFilings
        from targeting.scoring.spark import session

        say(f"starting Spark ({spark_master})")
        spark = session(spark_master, "targeting-history-add")
        stored = partial(SparkFilings, spark)
    result = run(history, declarations or [], outcomes or [], scores or [], utc(before) if before else None,
                 progress=say, stored=stored)  # fmt: skip
    if spark is not None:
        from targeting.contract.labels import parse_target
        from targeting.history.spark import save_state

        say("rebuilding the history's state (Spark)")
        save_state(spark, history, parse_target(target).value)
    say("done")
    summary(f"{history}: version {result.version}", [
        ("declarations read", result.declarations_read), ("declarations added", result.declarations_added),
        ("outcomes read", result.outcomes_read), ("outcomes added", result.outcomes_added),
        ("outcomes already recorded", result.outcomes_skipped), ("rows left for later", result.later),
        ("rows rejected", len(result.rejects)),
    ], rejects_by_rule(result.rejects))  # fmt: skip
    if result.rejects_file is not None:
        out.print(f"rejected rows: {result.rejects_file} (and .parquet)")


@handles_errors
def migrate(
    folder: Annotated[Path, typer.Argument(help="a history in the single-file layout")],
    out_dir: Annotated[Path, typer.Option("--out", help="the new history folder (partitioned by day)")],
) -> None:
    """Copy a single-file history (declarations.parquet, inspections.parquet) into the partitioned layout."""
    from targeting.history.layout import LEGACY_FILES, is_legacy

    if not is_legacy(folder):
        raise InputFileError(f"{folder}: no {LEGACY_FILES['declarations']} (not a single-file history)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputFileError(f"--out {out_dir}: exists and is not empty")
    outcomes = folder / LEGACY_FILES["outcomes"]
    add(out_dir, [folder / LEGACY_FILES["declarations"]], [outcomes] if outcomes.exists() else None, None, None)


@handles_errors
def state(
    history: Annotated[Path, typer.Argument(help="a history folder (either layout)")],
    target: Annotated[str, typer.Option(help="the models' target: hit or violation")] = "hit",
    spark_master: Annotated[str, typer.Option(help="Spark master URL")] = "local[2]",
) -> None:
    """Build the history's state on Spark (per key value: declarations, outcomes, hits, first-seen and
    last-hit times; address-sender pairs) and save it beside the history, for `score --engine spark`."""
    from targeting.contract.labels import parse_target
    from targeting.history.folder import require_history
    from targeting.history.spark import save_state
    from targeting.scoring.job import check_engine
    from targeting.scoring.spark import session

    check_engine("spark")
    require_history(history, "history folder")
    say = stage_printer()
    say(f"starting Spark ({spark_master})")
    spark = session(spark_master, "targeting-history-state")
    say("building the state from the committed files")
    folder, sizes = save_state(spark, history, parse_target(target).value)
    say("done")
    summary("history state", list(sizes.items()), {})
    out.print(f"wrote {folder} (score --engine spark joins to it until the history commits again)")


@handles_errors
def examine(
    world: Annotated[Path, typer.Argument(help="a simulated world's folder (written by `targeting simulate`)")],
    scores: Annotated[Path, typer.Option(help="a scoring run's scores (Parquet or CSV)")],
    out_file: Annotated[Path, typer.Option("--out", help="the inspections to write (Parquet or CSV)")],
    seed: Annotated[int, typer.Option(help="seed of the examinations")] = 0,
) -> None:
    """Inspect a scoring run's selected declarations (INSPECT and EXPLORE) in a simulated world: the outcomes
    its officers would record, for `targeting history add --outcomes ... --scores ...`."""
    from targeting.contract.io import write_tables
    from targeting.simulate.examine import examine as run

    found = run(world, scores, seed)
    write_tables({out_file: found})
    hits = int(found.groupby("declaration_id")["result"].apply(lambda r: r.isin(["DRUG", "PRECURSOR"]).any()).sum())
    out.print(f"wrote {out_file}: {found['declaration_id'].nunique():,} declarations examined, {hits:,} with a "
              "seizure")  # fmt: skip


