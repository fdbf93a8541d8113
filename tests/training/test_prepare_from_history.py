"""Training from a history folder reads each labelled row's as-of counts from the folder's saved index and
its delta (the history's state, kept by `history add`), and prepares exactly what a store built from the
tables prepares."""

from __future__ import annotations

import pandas as pd

from targeting.config import Target, TrainConfig
from targeting.history.folder import read_history
from targeting.history.source import HistorySource
from targeting.history.store import HistoryStore
from targeting.training.splits import time_split
from targeting.training.train import TrainingData, prepare
from tests.history.test_living import _add_days, _days, _world


def test_prepared_rows_from_the_saved_index_and_its_delta_equal_those_from_the_tables(tmp_path, monkeypatch) -> None:
    decl, insp = _world(seed=4, n=900, days=40)
    folder = tmp_path / "history"
    _add_days(folder, decl, insp, _days(decl, insp), tmp_path, index_after=20)  # later days: the delta
    source = HistorySource(folder, Target.HIT.value)
    assert source.saved_index() is not None and len(source.saved_index().delta) > 0
    declarations, inspections = read_history(folder)
    split = time_split(None, None, filed_at=declarations["filed_at"], valid_days=10, test_days=5)
    config = TrainConfig(seed=3)
    with monkeypatch.context() as patched:  # no store is built: the saved index answers
        patched.setattr(HistoryStore, "from_tables", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
        from_index = prepare(TrainingData(declarations, inspections, history=source), split, config, Target.HIT)
    from_tables = prepare(TrainingData(declarations, inspections), split, config, Target.HIT)
    for part in ("train", "valid", "reference"):
        a, b = getattr(from_index, part), getattr(from_tables, part)
        counts = [c for c in b.columns if c.startswith("h_")]
        assert len(counts) >= 40 and len(a) == len(b) > 0
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_like=True)
