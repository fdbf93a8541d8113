"""Every optional column of the contract may be absent from any input: with each one dropped in turn from
the declarations (or the inspections), a tiny world still validates, joins a history, trains, scores as a
batch and answers a request, every row accounted for."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from targeting.config import FeatureConfig, TrainConfig
from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.history.source import HistorySource
from targeting.model.scorer import Scorer
from targeting.scoring.batch import score_batch
from targeting.scoring.decisions import parse_budgets
from targeting.serving.requests import answer, request_rows
from targeting.training.splits import time_split
from targeting.training.train import TrainingData, train

pytestmark = pytest.mark.slow
OPTIONAL = [("declarations", c.name) for c in DECLARATIONS.columns if not c.required] + \
           [("inspections", c.name) for c in INSPECTIONS.columns if not c.required]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    from targeting.simulate.config import preset
    from targeting.simulate.run import simulate

    world = simulate(preset("tiny", seed=3, prevalence_multiplier=40), tmp_path_factory.mktemp("tiny"))
    return pd.read_parquet(world / "declarations.parquet"), pd.read_parquet(world / "inspections.parquet")


@pytest.mark.parametrize(("table", "column"), OPTIONAL, ids=[f"{t}.{c}" for t, c in OPTIONAL])
def test_each_optional_column_may_be_absent_everywhere(tiny, tmp_path, table, column) -> None:
    decl, insp = tiny
    if table == "declarations":
        decl = decl.drop(columns=[column])
    else:
        insp = insp.drop(columns=[column])
    last_day = decl["filed_at"].max().floor("D")
    past, today = decl[decl["filed_at"] < last_day], decl[decl["filed_at"] >= last_day]
    past.to_parquet(tmp_path / "past.parquet")
    insp.to_parquet(tmp_path / "inspections.parquet")
    today.to_csv(tmp_path / "today.csv", index=False)
    runner = CliRunner()
    for command in (["validate", str(tmp_path / "today.csv")],
                    ["validate", str(tmp_path / "inspections.parquet"), "--table", "inspections",
                     "--declarations", str(tmp_path / "past.parquet")]):  # fmt: skip
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    history = tmp_path / "history"
    added = runner.invoke(app, ["history", "add", str(history), "--declarations", str(tmp_path / "past.parquet"),
                                "--outcomes", str(tmp_path / "inspections.parquet"), "--before", str(last_day.date())])  # fmt: skip
    assert added.exit_code == 0, added.output
    model = train(TrainingData(past, insp), time_split("2023-01-09", "2023-01-13"),
                  TrainConfig(num_boost_round=30, features=FeatureConfig(text=False))).model  # fmt: skip
    scorer = Scorer(model, HistorySource(history, "hit"))
    from targeting.contract.io import read_raw
    from targeting.contract.validate import validate_frame

    rows = validate_frame(read_raw(tmp_path / "today.csv", DECLARATIONS.coded), DECLARATIONS)
    result = score_batch(rows.valid, scorer, "test-model", parse_budgets("SEA=10%,AIR=10%,POST=10%,EXPRESS=10%"), 0.1)
    assert len(result.scores) + rows.n_rejected == len(today) and result.scores["risk_score"].between(0, 1).all()
    served = answer(scorer, request_rows(today.head(20)))
    assert len(served) == 20 and served["risk_score"].between(0, 1).all()
