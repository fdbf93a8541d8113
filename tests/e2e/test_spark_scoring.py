"""`targeting score --engine spark` in local mode equals the pandas path row for row (pyspark is the
optional `spark` extra; `make test` installs it, Java 17 comes with the machine)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from tests.helpers import make_champion, scratch_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    with scratch_project(tmp_path_factory.mktemp("spark"), SPARK_LOCAL_IP="127.0.0.1") as folder:
        yield folder, make_champion(folder)


def test_spark_scores_equal_the_pandas_scores_row_for_row(champion, small_world) -> None:
    folder, _ = champion
    # the manifest: the last two days of the `small` world, in two files; its history: the small world
    decl = pd.read_parquet(small_world / "declarations.parquet")
    days = decl["filed_at"].dt.normalize()
    manifests = []
    for day in sorted(days.unique())[-2:]:
        path = folder / f"manifest-{day.date()}.parquet"
        decl[days == day].to_parquet(path)
        manifests.append(path)
    common = ["--history", str(small_world), "--budget", "SEA=10%,AIR=5%,POST=5%,EXPRESS=3%", "--explore", "20%",
              "--seed", "3", "--no-report"]  # fmt: skip
    runs = {}
    for engine in ("pandas", "spark"):
        out = folder / engine
        args = [
            "score",
            *map(str, manifests),
            *common,
            "--out",
            str(out),
            "--engine",
            engine,
            "--spark-master",
            "local[2]",
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs[engine] = out
    pandas_scores = pd.read_parquet(runs["pandas"] / "scores.parquet").drop(columns=["scored_at"])
    spark_scores = pd.read_parquet(runs["spark"] / "scores.parquet").drop(columns=["scored_at"])
    assert len(pandas_scores) > 1500 and (pandas_scores["decision"] == "EXPLORE").any()
    pd.testing.assert_frame_equal(spark_scores, pandas_scores, check_exact=False, rtol=1e-12)

    # the Spark writer's dataset partitioned by mode holds the same rows
    by_mode = pd.read_parquet(runs["spark"] / "scores_by_mode")
    assert sorted(p.name for p in (runs["spark"] / "scores_by_mode").glob("mode=*")) == [
        f"mode={m}" for m in sorted(pandas_scores["mode"].unique())
    ]
    merged = by_mode.astype({"mode": "str"}).set_index("declaration_id").loc[pandas_scores["declaration_id"]]
    assert (merged["mode"].to_numpy() == pandas_scores["mode"].to_numpy()).all()
    assert (merged["decision"].to_numpy() == pandas_scores["decision"].to_numpy()).all()
    assert (merged["risk_score"].to_numpy() == pandas_scores["risk_score"].to_numpy()).all()

    # drift: executors' bin counts summed on the driver give the pandas path's PSI
    psi_pandas = pd.read_csv(runs["pandas"] / "drift.csv").set_index("column")["psi"]
    psi_spark = pd.read_csv(runs["spark"] / "drift.csv").set_index("column")["psi"]
    pd.testing.assert_series_equal(psi_spark.loc[psi_pandas.index], psi_pandas, check_exact=False, rtol=1e-9)


def test_spark_reads_a_partitioned_history_with_a_delta_as_the_pandas_path_does(champion, small_world) -> None:
    """The history folder in the partitioned layout (migrated, indexed, then one more day added: a delta):
    the executors' answers equal the pandas path's."""
    folder, _ = champion
    decl = pd.read_parquet(small_world / "declarations.parquet")
    days = decl["filed_at"].dt.normalize()
    last, before = sorted(days.unique())[-1], sorted(days.unique())[-2]
    history = folder / "partitioned"
    insp = pd.read_parquet(small_world / "inspections.parquet")
    decl[days < before].to_parquet(folder / "older.parquet")
    insp[insp["exam_at"] < before].to_parquet(folder / "older-outcomes.parquet")
    decl[days == before].to_parquet(folder / "day.parquet")
    known = (insp["exam_at"] >= before) & (insp["exam_at"] < last)
    insp[known].to_parquet(folder / "day-outcomes.parquet")
    for args in (["history", "add", str(history), "--declarations", str(folder / "older.parquet"), "--outcomes",
                  str(folder / "older-outcomes.parquet")], ["history", "index", str(history)],
                 ["history", "add", str(history), "--declarations", str(folder / "day.parquet"), "--outcomes",
                  str(folder / "day-outcomes.parquet")]):  # fmt: skip
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, done.output
    manifest = folder / "manifest-last.parquet"
    decl[days == last].to_parquet(manifest)
    scores, said = {}, {}
    for engine in ("pandas", "spark"):
        out = folder / f"partitioned-{engine}"
        result = CliRunner().invoke(app, ["score", str(manifest), "--history", str(history), "--budget", "SEA=10%",
                                          "--no-report", "--out", str(out), "--engine", engine, "--spark-master", "local[2]"])  # fmt: skip
        assert result.exit_code == 0, result.output
        scores[engine] = pd.read_parquet(out / "scores.parquet").drop(columns=["scored_at"])
        said[engine] = " ".join(result.output.split())
    assert "committed after it" in said["pandas"]  # answered from the index and its delta
    # Spark: the state computed from the committed files (none saved yet), the batch after its last event
    assert "no saved state covers it" in said["spark"] and "joined to the history's state" in said["spark"]
    pd.testing.assert_frame_equal(scores["spark"], scores["pandas"], check_exact=False, rtol=1e-12)


def test_spark_joins_the_saved_state_and_executors_read_no_driver_local_file(champion, small_world) -> None:
    """`targeting history state` saves the state beside the partitioned history; scoring a later day joins the
    batch to it (scores, decisions and reasons equal the pandas path's), and every file a Spark scan of the
    scoring job reads lies under the history folder (nothing in a driver-local temporary folder)."""
    from targeting.scoring import spark as spark_scoring

    folder, _ = champion
    history = folder / "partitioned"  # written by the test before (the delta folded into a new state)
    done = CliRunner().invoke(app, ["history", "state", str(history), "--spark-master", "local[2]"])
    assert done.exit_code == 0, done.output
    assert (history / "as_of_state" / "hit" / "state.json").exists()
    decl = pd.read_parquet(small_world / "declarations.parquet")
    days = decl["filed_at"].dt.normalize()
    manifest = folder / "manifest-last.parquet"
    read: list[str] = []
    annotate = spark_scoring.annotate_spark

    def recording(spark, query, history_folder, target, say):
        frame = annotate(spark, query, history_folder, target, say)
        read.extend(frame.inputFiles())
        return frame

    spark_scoring.annotate_spark = recording
    try:
        scores = {}
        for engine in ("pandas", "spark"):
            out = folder / f"state-{engine}"
            result = CliRunner().invoke(app, ["score", str(manifest), "--history", str(history), "--budget",
                                              "SEA=10%,AIR=5%,POST=5%,EXPRESS=3%", "--explore", "10%", "--no-report", "--out", str(out), "--engine", engine,
                                              "--spark-master", "local[2]"])  # fmt: skip
            assert result.exit_code == 0, result.output
            scores[engine] = pd.read_parquet(out / "scores.parquet").drop(columns=["scored_at"])
    finally:
        spark_scoring.annotate_spark = annotate
    assert "joined to the history's state" in " ".join(result.output.split())
    assert (days == days.max()).sum() == len(scores["spark"])
    assert scores["pandas"]["reason_1"].notna().sum() > 10  # the selected rows' reasons, compared below
    pd.testing.assert_frame_equal(scores["spark"], scores["pandas"], check_exact=False, rtol=1e-12)
    assert read and all(Path(p.removeprefix("file:")).resolve().is_relative_to(history.resolve()) for p in read), read


def test_history_add_on_spark_refuses_stored_ids_and_keeps_the_state_fresh(champion, small_world) -> None:
    """`history add --engine spark` commits what the pandas add commits (stored ids found by a Spark join:
    a day added twice is refused the second time) and leaves a state that covers the new commit."""
    from targeting.history.layout import read_manifest

    folder, _ = champion
    history = folder / "spark-added"
    older, day = folder / "older.parquet", folder / "day.parquet"  # written by the partitioned test above
    runs = [["--declarations", str(older), "--outcomes", str(folder / "older-outcomes.parquet")],
            ["--declarations", str(day), "--outcomes", str(folder / "day-outcomes.parquet")],
            ["--declarations", str(day)]]  # fmt: skip
    said = []
    for args in runs:
        done = CliRunner().invoke(app, ["history", "add", str(history), *args, "--engine", "spark",
                                        "--spark-master", "local[2]"])  # fmt: skip
        assert done.exit_code == 0, done.output
        said.append(" ".join(done.output.split()))
    n_day = len(pd.read_parquet(day))
    assert "already in the history" in said[2] and read_manifest(history).version == 2
    pandas_built = read_manifest(folder / "partitioned")
    assert read_manifest(history).adds[-1]["declarations"] == pandas_built.adds[-1]["declarations"] == n_day
    manifest = folder / "manifest-last.parquet"
    out = folder / "spark-added-score"
    result = CliRunner().invoke(app, ["score", str(manifest), "--history", str(history), "--budget", "SEA=10%",
                                      "--no-report", "--out", str(out), "--engine", "spark", "--spark-master", "local[2]"])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "joined to the history's state" in text and "no saved state covers it" not in text


def test_train_on_spark_fits_the_model_the_pandas_engine_fits(champion, small_world) -> None:
    """`train --engine spark`: the inspected rows of the windows and their as-of features built by Spark;
    the same rows (lineage digests), the same fitted model (validation metrics) as the pandas engine."""
    import mlflow

    folder, _ = champion
    history = folder / "partitioned"  # the small world's partitioned history (written above)
    runs = {}
    for engine in ("pandas", "spark"):
        done = CliRunner().invoke(app, ["train", "--history", str(history), "--train-end", "2023-05-01",
                                        "--valid-end", "2023-06-01", "--engine", engine, "--spark-master", "local[2]"])  # fmt: skip
        assert done.exit_code == 0, done.output
        run_id = done.output.split("MLflow run ")[1].split()[0]
        runs[engine] = mlflow.get_run(run_id).data
    pandas_run, spark_run = runs["pandas"], runs["spark"]
    for key in ("lineage_train_rows", "lineage_train_rows_digest", "lineage_valid_rows_digest", "n_train",
                "best_iteration"):  # fmt: skip
        assert spark_run.params[key] == pandas_run.params[key], key
    assert int(pandas_run.params["lineage_train_positives"]) > 10
    for key in ("pr_auc", "roc_auc", "brier"):
        assert abs(spark_run.metrics[key] - pandas_run.metrics[key]) < 1e-9, key
