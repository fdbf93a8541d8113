"""Targets: drug/precursor hits by default, any violation on request; labels known at exam time."""

from __future__ import annotations

import pandas as pd
import pytest

from targeting.contract.labels import labels, parse_target, positive
from targeting.errors import ConfigError


def _insp() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "declaration_id": ["a", "a", "b", "c", "d"],
            "result": ["NO_FINDING", "DRUG", "OTHER_VIOLATION", "NO_FINDING", "PRECURSOR"],
            "exam_at": pd.to_datetime(
                ["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-04", "2024-01-05"], utc=True
            ),
        }
    )


def test_hit_target_counts_drugs_and_precursors_only() -> None:
    assert positive(_insp()["result"]).tolist() == [False, True, False, False, True]
    assert positive(_insp()["result"], "violation").tolist() == [False, True, True, False, True]


def test_labels_one_row_per_declaration_known_at_first_hit() -> None:
    lab = labels(_insp()).set_index("declaration_id")
    assert lab["label"].to_dict() == {"a": True, "b": False, "c": False, "d": True}
    assert lab.loc["a", "known_at"] == pd.Timestamp("2024-01-03", tz="UTC")
    assert lab.loc["c", "known_at"] == pd.Timestamp("2024-01-04", tz="UTC")


def test_unknown_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--target: must be one of hit, violation"):
        parse_target("fraud")
