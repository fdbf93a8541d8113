"""Training end to end on a tiny world: MLflow run, registry aliases, pickle-free loading, MLproject."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from targeting.cli import app
from targeting.serving.requests import request_rows
from targeting.simulate.config import preset
from targeting.simulate.run import simulate

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny world and an empty MLflow store in a temporary project folder."""
    folder = tmp_path_factory.mktemp("project")
    run = simulate(preset("tiny", seed=3, prevalence_multiplier=40), folder / "world")
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    cwd = os.getcwd()
    os.chdir(folder)
    yield folder, run
    os.chdir(cwd)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _train(run: Path) -> str:
    result = CliRunner().invoke(app, ["train", "--declarations", str(run / "declarations.parquet"),
                                      "--inspections", str(run / "inspections.parquet"), "--train-end", "2023-01-08",
                                      "--valid-end", "2023-01-11", "--test-days", "4", "--register"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def test_train_register_promote_and_load_without_pickle(project) -> None:
    import mlflow
    from mlflow import MlflowClient

    folder, run = project
    output = _train(run)
    assert "@challenger" in output and "precision" in output
    promoted = CliRunner().invoke(app, ["promote"])
    assert promoted.exit_code == 0 and "promoted to champion" in promoted.output, promoted.output
    client = MlflowClient()
    champion = client.get_model_version_by_alias("targeting", "champion")
    run_data = client.get_run(champion.run_id).data
    assert "pr_auc" in run_data.metrics and "precision_at_5pct_ALL" in run_data.metrics
    # lineage: the exact training and validation rows, as digests in the parameters and the dataset inputs
    inputs = {i.dataset.name: i.dataset.digest for i in client.get_run(champion.run_id).inputs.dataset_inputs}
    assert inputs["train rows"] == run_data.params["lineage_train_rows_digest"]
    assert inputs["valid rows"] == run_data.params["lineage_valid_rows_digest"]
    assert int(run_data.params["lineage_train_rows"]) > 0 and run_data.params["lineage_test_window"].startswith("[2023-01-11")
    artifacts = {a.path for a in client.list_artifacts(champion.run_id, "evaluation")}
    assert {"evaluation/shap_summary.png", "evaluation/budget_table.json"} <= artifacts

    model = mlflow.pyfunc.load_model("models:/targeting@champion")  # pickle deserialisation is disabled
    out = model.predict(request_rows(pd.read_parquet(run / "declarations.parquet").tail(20)))
    assert list(out.columns[:3]) == ["declaration_id", "risk_score", "risk_rank"]
    assert {"reason_1", "reason_1_feature", "reason_1_contribution", "reason_3"} <= set(out.columns)
    assert out["reason_1"].notna().any() and not out["reason_1"].dropna().str.contains("_").any()
    assert ((out["risk_score"] > 0) & (out["risk_score"] < 1)).all()
    assert sorted(out["risk_rank"]) == list(range(1, 21))

    # the same training again is not better on its test window: the champion stays, with the evidence logged
    _train(run)
    again = CliRunner().invoke(app, ["promote"])
    said = " ".join(again.output.split())
    assert "finds +0.0 estimated hits" in said and "kept the champion" in said, said
    assert client.get_model_version_by_alias("targeting", "champion").version == champion.version
    promotion = mlflow.search_runs(filter_string="tags.kind = 'promotion'", order_by=["attributes.start_time DESC"]).iloc[0]
    assert promotion["params.promoted"] == "False" and promotion["params.test_window"].startswith("[2023-01-11")
    evidence = mlflow.load_table("promotion/evidence.json", run_ids=[promotion["run_id"]])
    assert set(evidence["model"]) == {"challenger", "champion"} and "ALL" in set(evidence["slice"])
    forced = CliRunner().invoke(app, ["promote", "--force"])
    assert "promoted to champion (forced)" in " ".join(forced.output.split()), forced.output


def test_training_is_deterministic(project) -> None:
    from targeting.config import TrainConfig
    from targeting.training.splits import time_split
    from targeting.training.train import TrainingData, train

    _, run = project
    data = TrainingData(
        pd.read_parquet(run / "declarations.parquet"), pd.read_parquet(run / "inspections.parquet")
    )
    split = time_split("2023-01-10", "2023-01-15")
    a = train(data, split, TrainConfig()).valid_scores["risk_score"].to_numpy()
    b = train(data, split, TrainConfig()).valid_scores["risk_score"].to_numpy()
    np.testing.assert_array_equal(a, b)


def test_mlproject_train_defaults_match_the_cli() -> None:
    import inspect

    from targeting.cli.training import train as cli_train

    spec = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["train"]["parameters"]
    defaults = {name: p.default for name, p in inspect.signature(cli_train).parameters.items()}
    for name, param in spec.items():
        cli_default = defaults[name]
        cli_default = getattr(cli_default, "default", cli_default)
        assert str(param["default"]).removesuffix(".0") == str(cli_default), name


def test_search_tunes_on_the_training_window_and_logs_the_trials(project) -> None:
    import mlflow

    _, run = project
    result = CliRunner().invoke(app, ["train", "--declarations", str(run / "declarations.parquet"),
                                      "--inspections", str(run / "inspections.parquet"), "--train-end", "2023-01-10",
                                      "--valid-end", "2023-01-15", "--search", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "search: best tuning PR-AUC" in result.output
    last = mlflow.search_runs(order_by=["attributes.start_time DESC"], max_results=1).iloc[0]
    assert last["params.search_trials"] == "3"
    trials = mlflow.load_table("search/trials.json", run_ids=[last["run_id"]])
    assert len(trials) == 3 and trials["value"].between(0, 1).all()
    # the booster was fitted with the best trial's parameters
    best = trials.loc[trials["value"].idxmax()]
    assert last["params.searched_num_leaves"] == str(int(best["params_num_leaves"]))


def test_search_refuses_a_training_window_without_enough_positives() -> None:
    from targeting.config import TrainConfig
    from targeting.errors import ConfigError
    from targeting.training.search import search

    rows = pd.DataFrame({"filed_at": pd.date_range("2024-01-01", periods=100, freq="h", tz="UTC")})
    y = np.zeros(100, bool)
    y[:10] = True  # all positives in the fitting part, none in the tuning tail
    with pytest.raises(ConfigError, match="--search needs >= 5 positives"):
        search(rows, y, TrainConfig(), n_trials=2)


def test_mlflow_run_train_entry_point_works_offline(project) -> None:
    """`mlflow run . -e train --env-manager local`: the CLI logs into the run MLflow made for it."""
    import subprocess
    import sys

    import mlflow

    folder, run = project
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for inherited in (
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    ):  # set by earlier tests
        env.pop(inherited, None)
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "train", "--env-manager", "local",
         "--experiment-name", "targeting", "-P", f"declarations={run / 'declarations.parquet'}",
         "-P", f"inspections={run / 'inspections.parquet'}", "-P", "train_end=2023-01-10",
         "-P", "valid_end=2023-01-15"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    last = mlflow.search_runs(experiment_names=["targeting"], order_by=["attributes.start_time DESC"]).iloc[0]
    assert last["tags.mlflow.project.entryPoint"] == "train"
    assert np.isfinite(last["metrics.pr_auc"]) and last["params.train_end"] == "2023-01-10"


def test_a_models_requirements_are_checked_against_the_installed_versions() -> None:
    """The scoring job checks the logged model's pinned requirements itself (MLflow's check costs 0.45 s):
    a different version and a missing package are reported; pip options, comments and unpinned names that
    are installed are not."""
    from importlib import metadata

    from targeting.tracking import requirement_mismatches

    numpy_version = metadata.version("numpy")
    lines = [f"numpy=={numpy_version}", "numpy==0.0.1", "surely-not-installed-package==1.0", "pandas",
             "# a comment", "-r other.txt", ""]  # fmt: skip
    assert requirement_mismatches(lines) == [
        f"numpy==0.0.1 (installed: {numpy_version})",
        "surely-not-installed-package==1.0 (not installed)",
    ]
