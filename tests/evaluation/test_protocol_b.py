"""Protocol B: daily per-mode selection, recall against ground truth, and the command on a small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from targeting.evaluation.world import WorldProtocol, recall_table
from targeting.metrics import select_top_per_group
from targeting.tracking import EXPERIMENT


def test_daily_selection_takes_floor_k_percent_of_each_group_with_ties_by_id() -> None:
    # group A: 250 rows -> floor(2.5) = 2 selected; group B: 40 rows -> max(1, 0) = 1 selected
    groups = np.array(["A"] * 250 + ["B"] * 40)
    scores = np.zeros(290)
    scores[[10, 20, 30]] = [0.9, 0.9, 0.5]  # A: two tied at the top, then 0.5
    scores[[260, 270]] = 0.7  # B: a tie, the smaller id wins
    ids = np.array([f"D{i:04d}" for i in range(290)])
    chosen = select_top_per_group(scores, ids, groups, 1.0)
    assert np.flatnonzero(chosen).tolist() == [10, 20, 260]


def test_recall_table_counts_hits_and_kilograms_of_the_selected_rows() -> None:
    # one day, one mode, 200 rows: 1 % = 2 rows; smuggling on rows 0 (10 kg), 1 (30 kg) and 5 (60 kg)
    n = 200
    test = pd.DataFrame({"declaration_id": [f"D{i:03d}" for i in range(n)], "day": 0, "mode": "SEA",
                         "is_smuggling": False, "pattern_id": None, "true_qty_kg": np.nan})  # fmt: skip
    test.loc[[0, 1, 5], "is_smuggling"] = True
    test.loc[[0, 1, 5], "true_qty_kg"] = [10.0, 30.0, 60.0]
    test.loc[[0, 1], "pattern_id"] = "P01"
    test.loc[5, "pattern_id"] = "P02"
    score = np.zeros(n)
    score[[1, 5]] = 1.0  # selects rows 1 and 5
    table = recall_table(test, {"MODEL": score}, 1.0).set_index("slice")
    assert table.loc["ALL", "selected"] == 2
    assert table.loc["ALL", "recall"] == pytest.approx(2 / 3)
    assert table.loc["ALL", "seized_kg"] == pytest.approx(90 / 100)
    assert table.loc["pattern=P01", "recall"] == pytest.approx(1 / 2)
    assert table.loc["pattern=P02", "seized_kg"] == pytest.approx(1.0)


def test_windows_scale_with_the_world_length() -> None:
    dev = WorldProtocol.scaled(365)
    assert (dev.train_days, dev.valid_days, dev.test_days) == ((0, 240), (240, 300), (300, 365))
    small = WorldProtocol.scaled(180)
    assert small.train_days[1] < small.valid_days[1] < small.test_days[1] == 180


@pytest.mark.slow
def test_evaluate_world_prints_the_table_and_logs_the_run(small_world, tmp_path, monkeypatch) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = CliRunner().invoke(app, ["evaluate", "world", str(small_world)])
    assert result.exit_code == 0, result.output
    assert "lift_over_rule" in result.output and "ORACLE" in result.output
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.protocol = 'B'")
    assert len(runs) == 1
    m = runs.iloc[0]
    # every policy was scored, and the learned model beats the legacy rule and uniform selection
    for policy in ("model", "oracle_features", "rule", "random"):
        assert 0.0 <= m[f"metrics.recall_{policy}"] <= 1.0
    assert m["metrics.recall_model"] >= 2 * m["metrics.recall_rule"]
    assert m["metrics.recall_model"] > m["metrics.recall_random"]
    assert m["metrics.recall_oracle_features"] > m["metrics.recall_rule"]
    table = mlflow.load_table("evaluation/protocol_b_recall.json", run_ids=[m["run_id"]])
    per_mode = table[(table["policy"] == "MODEL") & table["slice"].str.startswith("mode=")]
    pooled = table[(table["policy"] == "MODEL") & (table["slice"] == "ALL")].iloc[0]
    assert per_mode["smuggling"].sum() == pooled["smuggling"] > 0
    assert per_mode["caught"].sum() == pooled["caught"]


def test_evaluate_world_rejects_a_folder_that_is_not_a_world(tmp_path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "world", str(tmp_path)])
    assert result.exit_code == 1
    assert "no manifest.json" in result.output
