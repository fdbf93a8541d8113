"""File-to-file jobs behind the CLI commands: read, call the library, write every output atomically."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from targeting.adapters.kcs import KcsImport, import_kcs
from targeting.config import KcsConfig
from targeting.errors import ConfigError, InputFileError, ModelNotFoundError
from targeting.io import RawTable, arrow_text, file_format, read_raw, write_json, write_tables
from targeting.schema import DECLARATION_ID, DECLARATIONS, INSPECTIONS, REJECT_REASON, SOURCE_ROW, table
from targeting.validate import ValidationResult, check_inspections_against, register_backends, validate_frame


def validate_file(
    path: Path, table_name: str, out_dir: Path | None = None, declarations: Path | None = None
) -> ValidationResult:
    """Validate one file; with `out_dir`, write `<table>.parquet` and `rejects.parquet/.csv` there."""
    spec = table(table_name)
    result = validate_frame(read_raw(path, spec.coded), spec)
    if declarations is not None:
        decl = validate_frame(read_raw(declarations, DECLARATIONS.coded), DECLARATIONS)
        result = check_inspections_against(result, decl.valid)
    if out_dir is not None:
        write_tables(
            {
                out_dir / f"{spec.name}.parquet": result.valid,
                out_dir / "rejects.parquet": result.rejects,
                out_dir / "rejects.csv": result.rejects,
            }
        )
    return result


def import_kcs_file(path: Path, out_dir: Path, config: KcsConfig = KcsConfig()) -> KcsImport:
    """Convert a KCS CSV; writes declarations/inspections and their rejects into `out_dir`."""
    result = import_kcs(path, config)
    write_tables(
        {
            out_dir / "declarations.parquet": result.declarations.valid,
            out_dir / "inspections.parquet": result.inspections.valid,
            out_dir / "rejects.parquet": result.declarations.rejects,
            out_dir / "inspections_rejects.parquet": result.inspections.rejects,
        }
    )
    return result


def build_history_index(history: Path, target: str = "hit",
                        progress: Callable[[str], None] | None = None) -> tuple[Path, dict[str, int]]:  # fmt: skip
    """Index a history folder for scoring and serving (`history_index.py`) and save it beside the history.
    Run it whenever the folder's declarations or inspections change: scoring ignores an index whose files
    changed since (their size and modification time are recorded)."""
    from targeting.history import HistoryStore
    from targeting.history_index import HistoryIndex, fingerprint, index_folder
    from targeting.io import read_parquet
    from targeting.labels import parse_target
    from targeting.serving import history_columns

    say = progress or (lambda _s: None)
    target = parse_target(target).value
    if not (history / "declarations.parquet").exists():
        raise InputFileError(f"{history}: no declarations.parquet (a folder with past declarations and "
                             "inspections, as the simulator and the adapters write them)")  # fmt: skip
    stamp = fingerprint(history, target)  # before reading: a file replaced meanwhile makes the index stale
    say("reading the history")
    decl = read_parquet(history / "declarations.parquet", columns=history_columns(history))
    insp = read_parquet(history / "inspections.parquet") if (history / "inspections.parquet").exists() \
        else INSPECTIONS.empty_frame()  # fmt: skip
    store = HistoryStore.from_tables(decl, insp, target)
    say(f"indexing {len(store.declarations):,} declarations and {len(store.outcomes):,} outcomes")
    index = HistoryIndex(store, threads=2)
    say("saving")
    folder = index.save(index_folder(history, target), stamp)
    return folder, {"declarations": len(store.declarations), "outcomes": len(store.outcomes),
                    "keys": len(index.keys)}  # fmt: skip


# ---- the daily batch ----------------------------------------------------------------------------


@dataclass
class Manifests:
    """Today's declarations from one or more files: the valid rows and every rejected row."""

    valid: pd.DataFrame
    rejects: pd.DataFrame  # the row as read + source_file, source_row, reject_reason
    n_read: int
    #: per file, the positions among its rows as read of the rows it contributes to `valid`, in order
    kept_rows: list[np.ndarray]


def read_manifests(paths: list[Path], first_read: Callable[[RawTable], None] | None = None) -> Manifests:
    """Validate each file (file-level problems raise before anything is written); a declaration id that
    an earlier file already holds is rejected as a duplicate. `first_read` is given the first file as read,
    before it is validated."""
    valid, rejects, kept_rows = [], [], []
    earlier = []  # (file, its accepted ids as Arrow)
    n_read = 0
    for i, path in enumerate(paths):
        raw = read_raw(path, DECLARATIONS.coded)
        if first_read is not None and i == 0:
            first_read(raw)
        result = validate_frame(raw, DECLARATIONS)
        n_read += result.n_read
        rej = result.rejects.copy()
        rej.insert(0, "source_file", str(path))
        ids = result.valid[DECLARATION_ID].astype(str)  # unique within the file: validation rejects repeats
        first_file = np.full(len(ids), "", dtype=object)
        these = arrow_text(ids) if earlier else None
        for file, accepted in earlier:  # set lookups in Arrow, not a Python dict of every id
            found = pc.is_in(these, value_set=accepted).to_numpy(zero_copy_only=False)
            first_file[found & (first_file == "")] = file
        dup = first_file != ""
        if dup.any():
            positions = result.valid_pos[dup]
            extra = result.raw.iloc[positions].copy()
            extra.insert(0, SOURCE_ROW, positions + 1)
            extra.insert(0, "source_file", str(path))
            extra[REJECT_REASON] = [
                f"{DECLARATION_ID}: duplicate of a row in {f or path}" for f in first_file[dup]
            ]
            rej = pd.concat([rej, extra.reset_index(drop=True)], ignore_index=True)
        kept = ids[~dup] if dup.any() else ids
        if len(paths) > 1:
            earlier.append((str(path), arrow_text(kept)))
        valid.append(result.valid[~dup] if dup.any() else result.valid)  # no copy of a clean file
        kept_rows.append(result.valid_pos[~dup])
        rejects.append(rej)
    frame = valid[0] if len(valid) == 1 else pd.concat(valid, ignore_index=True)
    return Manifests(frame, pd.concat(rejects, ignore_index=True), n_read, kept_rows)


def load_scorer(model_uri: str, history: Path | None) -> tuple[Any, str]:
    """The logged pyfunc (loaded without unpickling) and the model URI resolved to a version."""
    import os

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from targeting import tracking

    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    tracking.setup()
    resolved = model_uri
    try:
        m = re.fullmatch(r"models:/([^/@]+)@(.+)", model_uri)
        if m:
            resolved = (
                f"models:/{m.group(1)}/{MlflowClient().get_model_version_by_alias(*m.groups()).version}"
            )
        pyfunc = tracking.load_pyfunc(resolved)
    except MlflowException as exc:
        raise ModelNotFoundError(f"--model {model_uri}: {str(exc).splitlines()[0]}") from None
    scorer = pyfunc.unwrap_python_model()
    if history is not None:
        if not (Path(history) / "declarations.parquet").exists():
            raise InputFileError(f"--history {history}: no declarations.parquet (a folder with past declarations "
                                 "and inspections, as the simulator and the adapters write them)")  # fmt: skip
        scorer.use_history(history)
    return scorer, resolved


def _parquet_rows(path: Path) -> int | None:
    """The row count a Parquet file's footer states, or None (not Parquet, or unreadable: the read reports it)."""
    try:
        return pq.read_metadata(path).num_rows if file_format(path) == "parquet" else None
    except Exception:  # noqa: BLE001 - the read that follows reports the file's problem in one line
        return None


def _load_for_scoring(model_uri: str, history: Path | None, large_batch: bool) -> tuple[Any, str, str]:
    """The scorer, its resolved model URI and where its as-of answers come from, with the saved history
    index and the compiled loops loaded (the pyfunc loads `kernels` with the model), and for a large batch
    the index's table of stored ids (this runs beside validation; a small batch never uses that table)."""
    from targeting import string_table

    scorer, resolved = load_scorer(model_uri, history)
    string_table.load()
    source = scorer.history_source()  # loads the saved index, if any
    if large_batch:
        scorer.prepare_for_batch()
    return scorer, resolved, source


def score_files(paths: list[Path], model_uri: str, history: Path | None, out_dir: Path, budgets: dict[str, Any],
                explore: float, seed: int = 0, progress: Callable[[str], None] | None = None,
                engine: str = "pandas", spark_master: str = "local[2]") -> Any:  # fmt: skip
    """The daily job: read + validate, score, decide, explain, write scores/rejects/explanations/summary
    (keeping the memory it frees for its next allocations, and the collector off the objects that were
    there before it: see memory.py)."""
    from targeting.memory import frozen_gc, retained_memory

    with retained_memory(), frozen_gc():
        return _score_files(paths, model_uri, history, out_dir, budgets, explore, seed, say=progress or (lambda _s: None),
                            engine=engine, spark_master=spark_master)  # fmt: skip


def _score_files(paths: list[Path], model_uri: str, history: Path | None, out_dir: Path, budgets: dict[str, Any],
                 explore: float, seed: int, say: Callable[[str], None], engine: str, spark_master: str) -> Any:  # fmt: skip
    import importlib.util

    from targeting import kernels, string_table  # noqa: F401 - imported here, not on the loading thread
    from targeting.score import empty_result, score_batch

    if engine not in ("pandas", "spark"):
        raise ConfigError(f"--engine {engine!r}: choose pandas or spark")
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        raise ConfigError(
            "--engine spark needs the optional `spark` extra: make spark (or pip install 'targeting[spark]')"
        )
    from targeting.history_index import SET_LOOKUP_ROWS, PrefetchedCodes

    register_backends()  # before any thread starts (see its docstring)
    # The model and the history index load on a second thread while the manifests are read and validated
    # (a bad manifest is still reported first). For a single Parquet manifest it starts before the read
    # (the footer tells whether the batch is large): MLflow's Python work then runs beside Arrow's decoding,
    # which releases the GIL, more than beside pandera's validation, which holds it (1 M rows: run
    # 7.7-7.9 -> 7.6-7.8 s); otherwise once the first file is read. Then that thread looks the manifest's
    # key values up in the saved index (PrefetchedCodes), which validation would otherwise leave idle.
    pool = ThreadPoolExecutor(1)
    loading: list[Any] = []
    prefetched: list[PrefetchedCodes] = []

    def start_loading(large: bool) -> None:
        if not loading:
            loading.append(pool.submit(_load_for_scoring, model_uri, history, large))

    known_rows = _parquet_rows(paths[0]) if len(paths) == 1 else None
    if known_rows is not None:
        start_loading(known_rows > SET_LOOKUP_ROWS)

    def first_read(raw: RawTable) -> None:
        large = len(raw.frame) > SET_LOOKUP_ROWS  # a small batch looks its values up itself
        start_loading(large)
        if len(paths) == 1 and raw.format == "parquet" and engine == "pandas" and large:
            codes = PrefetchedCodes()
            pool.submit(lambda: codes.run(loading[0].result()[0].saved_index(), raw.frame))
            prefetched.append(codes)

    try:
        say(f"reading and validating {len(paths)} manifest(s)")
        manifests = read_manifests(paths, first_read)
        say("loading the model and the history index")
        scorer, resolved, source = loading[0].result()
        say(f"as-of history from {source}")
        for codes in prefetched:
            codes.rows = manifests.kept_rows[0]
            codes.ids_unique = True  # validation rejects a repeated id
        spark = None
        if len(manifests.valid) and engine == "spark":
            from targeting.spark import score_spark, session

            say(f"starting Spark ({spark_master})")
            spark = session(spark_master)
            result = score_spark(
                spark, manifests.valid, scorer, resolved, budgets, explore, seed, progress=say
            )
        elif len(manifests.valid):
            result = score_batch(manifests.valid, scorer, resolved, budgets, explore, seed, progress=say,
                                 prefetched=prefetched[0] if prefetched else None)  # fmt: skip
        else:
            result = empty_result(budgets, explore)
    finally:
        for codes in prefetched:
            codes.claim()
        pool.shutdown(wait=True)
    if len(result.scores) + len(manifests.rejects) != manifests.n_read:
        raise AssertionError("row accounting broken: scores + rejects != rows read")
    result.summary.update({"model_uri": resolved, "manifests": [str(p) for p in paths], "rows_read": manifests.n_read,
                           "rejected": len(manifests.rejects), "history": str(scorer.history_dir),
                           "shap_expected_value": result.expected_value})  # fmt: skip
    selected = manifests.valid.iloc[result.selected_rows]
    say("writing outputs")
    write_tables({out_dir / "scores.parquet": result.scores, out_dir / "scores.csv": result.scores,
                  out_dir / "rejects.parquet": manifests.rejects, out_dir / "rejects.csv": manifests.rejects,
                  out_dir / "explanations.parquet": result.explanations, out_dir / "drift.csv": result.drift,
                  out_dir / "selected.parquet": selected})  # fmt: skip
    write_json(result.summary, out_dir / "summary.json")
    if spark is not None:
        from targeting.spark import write_partitioned

        say("writing scores partitioned by mode (Spark)")
        write_partitioned(spark, result.scores, out_dir / "scores_by_mode")
    return result, manifests
