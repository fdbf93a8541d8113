"""The daily job, `targeting score`: today's manifests in; scores, rejects, explanations and a summary out.

The steps, in order:
1. read and validate the manifests (bad rows to rejects; a bad file stops the job before anything is
   written), while the model and its history load beside them; a declaration id the history already holds
   with other content is a reject too;
2. score every valid declaration against its as-of history, decide within each mode's budget, explain
   the selected rows, compare the batch with the training window (on Spark, the scores come from executors);
3. check that every row read is in exactly one of scores and rejects;
4. write every output atomically.
The report and the MLflow record are separate steps (`report.py`, `record.py`) that read what this wrote.
Which thread does what, and the job's memory policy, live in `_concurrency.py`.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from targeting.contract.io import write_json, write_tables
from targeting.contract.manifests import Manifests, read_manifests
from targeting.errors import ConfigError
from targeting.history import _compiled as history_loops
from targeting.history.index import PrefetchedCodes
from targeting.model.scorer import Scorer
from targeting.scoring._concurrency import Loaded, Loading, job_policy
from targeting.scoring.batch import ScoreResult, empty_result, score_batch
from targeting.scoring.decisions import Budget

ENGINES = ("pandas", "spark")


@dataclass
class Model:
    """The scorer of the job, the model URI resolved to a version, and where its history answers come from."""

    scorer: Scorer
    uri: str
    history_source: str


@dataclass
class ScoreRun:
    result: ScoreResult
    manifests: Manifests


def score_files(paths: list[Path], model_uri: str, history: Path | None, out_dir: Path, budgets: dict[str, Budget],
                explore: float, seed: int = 0, progress: Callable[[str], None] | None = None,
                engine: str = "pandas", spark_master: str = "local[2]", no_history: bool = False) -> ScoreRun:  # fmt: skip
    """Score today's manifests into `out_dir` (see the module docstring for the steps); the history is the
    `history` folder, else the model's, or none with `no_history`."""
    say = progress or (lambda _s: None)
    check_engine(engine)
    with job_policy():
        with Loading(partial(load_model, model_uri, history, no_history, engine), paths,
                     lookups=engine == "pandas") as loading:  # fmt: skip
            say(f"reading and validating {len(paths)} manifest(s)")
            manifests = read_manifests(paths, loading.on_first_read)
            say("loading the model" + (" and the history index" if engine == "pandas" else ""))
            model = loading.result()
            say(f"as-of history from {model.history_source}")
            manifests = manifests.reject(conflicts(model.scorer, manifests, engine, spark_master))
            prefetched = loading.prefetched(manifests.kept_rows[0])
            result = score(manifests, model, budgets, explore, seed, engine, spark_master, say, prefetched)
    check_row_accounting(result, manifests)
    scored_at = result.scores["scored_at"].iloc[0].isoformat() if len(result.scores) else None
    result.summary.update({"run_id": uuid.uuid4().hex, "scored_at": scored_at,
                           "model_uri": model.uri, "manifests": [str(p) for p in paths],
                           "rows_read": manifests.n_read, "rejected": len(manifests.rejects),
                           "history": model.scorer.history.folder,
                           "shap_expected_value": result.expected_value})  # fmt: skip
    say("writing outputs")
    write_outputs(out_dir, result, manifests)
    if engine == "spark" and len(manifests.valid):
        from targeting.scoring.spark import session, write_partitioned

        say("writing scores partitioned by mode (Spark)")
        write_partitioned(session(spark_master), result.scores, out_dir / "scores_by_mode")
    return ScoreRun(result, manifests)


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: choose pandas or spark")
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        raise ConfigError(
            "--engine spark needs the optional `spark` extra: make spark (or pip install 'targeting[spark]')"
        )


def load_model(model_uri: str, history: Path | None, no_history: bool, engine: str, large_batch: bool) -> Loaded[Model]:
    """The logged model's scorer, with its saved history index (if any) and the compiled loops loaded, and
    for a large batch the index's table of stored ids (a small batch never uses that table). On Spark the
    driver loads the model only: the history is read by the executors."""
    from targeting.serving.pyfunc import load_scorer

    scorer, resolved = load_scorer(model_uri, history, no_history)
    if engine == "spark":
        return Loaded(Model(scorer, resolved, f"the state of {scorer.history.folder or 'no history'} (Spark)"), None)
    history_loops.load()
    source = scorer.history.describe()  # loads the saved index, if any
    if large_batch:
        scorer.history.prepare_for_batch()
    saved = scorer.history.saved_index()
    # the manifest's key values are looked up ahead in the saved index (a delta's rows are looked up later)
    lookups = saved.index if saved is not None else None
    return Loaded(Model(scorer, resolved, source), lookups)


def conflicts(scorer: Scorer, manifests: Manifests, engine: str, spark_master: str) -> dict[int, str]:
    """Valid rows whose id the history holds with other content (position -> reason); on Spark the stored
    rows of the batch's ids are found by the executors."""
    if engine != "spark" or not len(manifests.valid):
        return scorer.history.conflicts(manifests.valid)
    from targeting.scoring.spark import session, stored_conflicts

    return stored_conflicts(session(spark_master), scorer.history.folder, manifests.valid)


def score(manifests: Manifests, model: Model, budgets: dict[str, Budget], explore: float, seed: int, engine: str,
          spark_master: str, say: Callable[[str], None], prefetched: PrefetchedCodes | None) -> ScoreResult:  # fmt: skip
    """Scores, decisions, reasons and drift of the valid rows, on this machine or on Spark."""
    if not len(manifests.valid):
        return empty_result(budgets, explore)
    if engine == "spark":
        from targeting.scoring.spark import score_spark, session

        say(f"starting Spark ({spark_master})")
        return score_spark(session(spark_master), manifests.valid, model.scorer, model.uri, budgets, explore, seed,
                           progress=say)  # fmt: skip
    return score_batch(manifests.valid, model.scorer, model.uri, budgets, explore, seed, progress=say,
                       prefetched=prefetched)  # fmt: skip


def check_row_accounting(result: ScoreResult, manifests: Manifests) -> None:
    """Every row read is in exactly one of scores and rejects (data-contract.md §4)."""
    if len(result.scores) + len(manifests.rejects) != manifests.n_read:
        raise AssertionError("row accounting broken: scores + rejects != rows read")


def write_outputs(out_dir: Path, result: ScoreResult, manifests: Manifests) -> None:
    """scores, rejects, explanations, drift and the selected declarations (Parquet, and CSV for people), then
    the summary; each written to a temporary file and renamed into place."""
    selected = manifests.valid.iloc[result.selected_rows]
    write_tables({out_dir / "scores.parquet": result.scores, out_dir / "scores.csv": result.scores,
                  out_dir / "rejects.parquet": manifests.rejects, out_dir / "rejects.csv": manifests.rejects,
                  out_dir / "explanations.parquet": result.explanations, out_dir / "drift.csv": result.drift,
                  out_dir / "selected.parquet": selected})  # fmt: skip
    write_json(result.summary, out_dir / "summary.json")
