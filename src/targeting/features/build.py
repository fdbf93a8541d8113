"""`build_features(config)`: the feature pipeline (a FeatureUnion of our transformers) and its JSON state."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import FeatureUnion

from targeting.config import FeatureConfig
from targeting.features.base import FrameTransformer, col
from targeting.features.categorical import CategoricalCodes
from targeting.features.declaration import DeclarationFeatures
from targeting.features.party_history import HistoryFeatures
from targeting.features.text import TextScore

FEATURE_STATE_VERSION = 1
TRANSFORMERS: dict[str, type[FrameTransformer]] = {
    "declaration": DeclarationFeatures, "history": HistoryFeatures, "text": TextScore, "categorical": CategoricalCodes,
}  # fmt: skip


class ExtraColumns(FrameTransformer):
    """Configured extra numeric columns, passed through as floats."""

    def __init__(self, columns: tuple[str, ...] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> ExtraColumns:
        self.names_ = [f"extra_{c}" for c in self.columns]
        return self

    def feature_columns(self, X: pd.DataFrame) -> dict[str, Any]:
        self.get_feature_names_out()
        return {f"extra_{c}": col(X, c) for c in self.columns}

    def reason_group(self, feature: str) -> str:
        return "other"


TRANSFORMERS["extra"] = ExtraColumns


def build_features(config: FeatureConfig | None = None) -> FeatureUnion:
    config = config or FeatureConfig()
    parts: list[tuple[str, FrameTransformer]] = [
        ("declaration", DeclarationFeatures()),
        ("history", HistoryFeatures(smoothing=config.smoothing)),
        ("categorical", CategoricalCodes(columns=tuple(config.categorical), min_count=config.min_count)),
    ]
    if config.text:
        parts.append(("text", TextScore(seed=config.seed)))
    if config.extra_numeric:
        parts.append(("extra", ExtraColumns(columns=tuple(config.extra_numeric))))
    union = FeatureUnion(parts, verbose_feature_names_out=False)
    return union.set_output(transform="pandas")


def feature_groups(union: FeatureUnion) -> dict[str, str]:
    """Each feature's reason group, as its transformer declares it."""
    return {name: group for _, t in union.transformer_list for name, group in t.reason_groups().items()}


def categorical_names(union: FeatureUnion) -> list[str]:
    return [n for n in union.get_feature_names_out() if n.startswith("cat_")]


def union_state(union: FeatureUnion) -> dict[str, Any]:
    return {"version": FEATURE_STATE_VERSION,
            "parts": [{"name": n, "state": t.to_state()} for n, t in union.transformer_list]}  # fmt: skip


def union_from_state(state: dict[str, Any]) -> FeatureUnion:
    parts = [(p["name"], TRANSFORMERS[p["name"]].from_state(p["state"])) for p in state["parts"]]
    union = FeatureUnion(parts, verbose_feature_names_out=False).set_output(transform="pandas")
    return union
