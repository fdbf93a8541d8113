"""The simulated world on the `tiny` preset: contract-valid, reproducible, no leaks, budgets kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from targeting.contract.io import read_raw
from targeting.contract.schema import DECLARATIONS, GROUND_TRUTH, INSPECTIONS
from targeting.contract.validate import check_inspections_against, validate_frame
from targeting.simulate.config import preset
from targeting.simulate.run import simulate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return simulate(preset("tiny", seed=11), tmp_path_factory.mktemp("tiny"))


def _load(run: Path):
    return (pd.read_parquet(run / "declarations.parquet"), pd.read_parquet(run / "inspections.parquet"),
            pd.read_parquet(run / "ground_truth.parquet"))  # fmt: skip


def test_outputs_are_contract_valid(tiny: Path) -> None:
    decl = validate_frame(read_raw(tiny / "declarations.parquet"), DECLARATIONS)
    assert decl.n_rejected == 0, decl.reason_counts()
    insp = check_inspections_against(
        validate_frame(read_raw(tiny / "inspections.parquet"), INSPECTIONS), decl.valid
    )
    assert insp.n_rejected == 0, insp.reason_counts()
    truth = validate_frame(read_raw(tiny / "ground_truth.parquet"), GROUND_TRUTH)
    assert truth.n_rejected == 0 and truth.n_valid == decl.n_valid
    for name in ("parties.parquet", "drift_log.json", "manifest.json", "config.yaml"):
        assert (tiny / name).exists()


def test_same_seed_gives_byte_identical_files(tiny: Path, tmp_path: Path) -> None:
    again = simulate(preset("tiny", seed=11), tmp_path / "again")
    for name in ("declarations.parquet", "inspections.parquet", "ground_truth.parquet", "parties.parquet"):
        a = hashlib.sha256((tiny / name).read_bytes()).hexdigest()
        b = hashlib.sha256((again / name).read_bytes()).hexdigest()
        assert a == b, name


def test_ground_truth_never_in_declarations(tiny: Path) -> None:
    decl, _, truth = _load(tiny)
    hidden = set(GROUND_TRUTH.names) - {"declaration_id", "drug_class", "concealment"} | {
        "rule_score",
        "cell_id",
    }
    assert not hidden & set(decl.columns)
    assert set(decl.columns) == set(DECLARATIONS.names)
    # pattern names never appear in observable text
    for col in ("consignee_id", "consignor_id", "goods_desc"):
        assert not decl[col].fillna("").str.contains(r"\bP(?:0[1-9]|1[0-2])\b", regex=True).any(), col


def test_volumes_and_modes_match_the_preset(tiny: Path) -> None:
    decl, _, _ = _load(tiny)
    cfg = preset("tiny")
    per_day = decl.groupby([decl["filed_at"].dt.date, "mode"]).size().unstack(fill_value=0)
    for mode in ("SEA", "AIR", "EXPRESS"):
        assert per_day[mode].median() == pytest.approx(cfg.volumes[mode], rel=0.25)
    sundays = per_day.index.map(lambda d: pd.Timestamp(d).day_of_week == 6)
    assert (per_day.loc[sundays, "POST"] <= 10).all()  # no post on Sundays (only smuggling bursts)


def test_inspection_rate_per_mode_within_10_percent_of_budget(tiny: Path) -> None:
    decl, insp, _ = _load(tiny)
    cfg = preset("tiny")
    budget_rows = insp[insp["selection_reason"].isin(["RULE", "OFFICER", "RANDOM", "MODEL"])]
    selected = decl[decl["declaration_id"].isin(budget_rows["declaration_id"])]
    for mode in ("SEA", "AIR", "EXPRESS"):
        rate = (selected["mode"] == mode).sum() / (decl["mode"] == mode).sum()
        assert rate == pytest.approx(cfg.inspection_rate[mode], rel=0.10), mode
    # POST: targeted mail that is not presented (10 %) has no inspection row
    post = (selected["mode"] == "POST").sum() / (decl["mode"] == "POST").sum()
    assert post == pytest.approx(cfg.inspection_rate["POST"] * cfg.post_presented, rel=0.15)


def test_propensities_are_probabilities_and_rule_picks_are_certain(tiny: Path) -> None:
    _, insp, _ = _load(tiny)
    assert insp["selection_propensity"].between(0, 1, inclusive="right").all()
    assert (insp.loc[insp["selection_reason"] == "RULE", "selection_propensity"] == 1).all()
    rnd = insp.loc[insp["selection_reason"] == "RANDOM", "selection_propensity"]
    assert (rnd < 1).all()


def test_generator_counters_match_point_in_time_recount(tiny: Path) -> None:
    decl, _, truth = _load(tiny)
    order = decl.sort_values("filed_at", kind="stable")
    recount = order.groupby("consignee_id").cumcount()
    merged = truth.set_index("declaration_id").loc[order["declaration_id"], "consignee_prior_decl"].to_numpy()
    np.testing.assert_array_equal(recount.to_numpy(), merged)


def test_smuggling_is_planted_and_partly_detected(tiny: Path) -> None:
    _, insp, truth = _load(tiny)
    assert truth["is_smuggling"].sum() > 50
    assert set(truth["pattern_id"].dropna()) >= {"P08", "P09", "P10"}
    hits = insp[insp["result"].isin(["DRUG", "PRECURSOR"])]
    assert len(hits) > 0
    smuggling_ids = set(truth.loc[truth["is_smuggling"].astype(bool), "declaration_id"])
    assert set(hits["declaration_id"]) <= smuggling_ids  # no false seizures
