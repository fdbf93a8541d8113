"""Shared fixtures: a contract-valid declaration and inspection, the KCS train file, simulated worlds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import GOOD_DECLARATION, GOOD_INSPECTION, KCS_DIR


@pytest.fixture
def good_declaration() -> dict[str, str]:
    return dict(GOOD_DECLARATION)


@pytest.fixture
def good_inspection() -> dict[str, str]:
    return dict(GOOD_INSPECTION)


@pytest.fixture
def kcs_train() -> Path:
    path = KCS_DIR / "df_syn_train_eng.csv"
    assert path.exists(), f"shared data missing: {path} (tests need ../shared beside the repository)"
    return path


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """The `small` preset at its default prevalence (seed 7), generated once per test session."""
    from targeting.simulate.config import preset
    from targeting.simulate.run import simulate

    return simulate(preset("small", seed=7), tmp_path_factory.mktemp("small7"))


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The `tiny` preset, seed 5: declarations, inspections and ground truth."""
    from targeting.simulate.config import preset
    from targeting.simulate.run import simulate

    run = simulate(preset("tiny", seed=5), tmp_path_factory.mktemp("tiny5"))
    return pd.read_parquet(run / "declarations.parquet"), pd.read_parquet(run / "inspections.parquet"), \
        pd.read_parquet(run / "ground_truth.parquet")  # fmt: skip


@pytest.fixture(scope="session")
def labelled(world):
    """Its inspected declarations with their as-of history, and their labels."""
    from targeting.contract.labels import labels
    from targeting.history.source import annotate
    from targeting.history.store import HistoryStore

    decl, insp, _ = world
    lab = labels(insp)
    rows = decl.merge(lab, on="declaration_id").sort_values("filed_at").reset_index(drop=True)
    return annotate(rows, HistoryStore.from_tables(decl, insp)), rows["label"].to_numpy(bool)
