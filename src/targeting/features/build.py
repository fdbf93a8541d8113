"""`build_features(config)`: the feature pipeline (a FeatureUnion of our transformers) and its JSON state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.pipeline import FeatureUnion

from targeting.features.base import FrameTransformer, col
from targeting.features.categorical import DEFAULT_COLUMNS, CategoricalCodes
from targeting.features.declaration import DeclarationFeatures
from targeting.features.history import HistoryFeatures
from targeting.features.text import TextScore

FEATURE_STATE_VERSION = 1
TRANSFORMERS: dict[str, type[FrameTransformer]] = {
    "declaration": DeclarationFeatures, "history": HistoryFeatures, "text": TextScore, "categorical": CategoricalCodes,
}  # fmt: skip


@dataclass(frozen=True)
class FeatureConfig:
    categorical: tuple[str, ...] = DEFAULT_COLUMNS
    #: numeric columns passed through as they are (e.g. the KCS adapter's extras for Protocol A)
    extra_numeric: tuple[str, ...] = ()
    min_count: int = 20
    smoothing: float = 20.0
    text: bool = True
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


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


def categorical_names(union: FeatureUnion) -> list[str]:
    return [n for n in union.get_feature_names_out() if n.startswith("cat_")]


def union_state(union: FeatureUnion) -> dict[str, Any]:
    return {"version": FEATURE_STATE_VERSION,
            "parts": [{"name": n, "state": t.to_state()} for n, t in union.transformer_list]}  # fmt: skip


def union_from_state(state: dict[str, Any]) -> FeatureUnion:
    parts = [(p["name"], TRANSFORMERS[p["name"]].from_state(p["state"])) for p in state["parts"]]
    union = FeatureUnion(parts, verbose_feature_names_out=False).set_output(transform="pandas")
    return union
