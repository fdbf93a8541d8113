"""Categorical columns as integer codes from the training window's vocabulary.

Levels seen fewer than `min_count` times in training, and levels never seen there, share one "rare" code;
missing values are NaN, so LightGBM treats them as missing rather than as some arbitrary category (and no pandas `category`
dtype crosses the pyfunc boundary, mlflow#12910).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from targeting.config import CATEGORICAL_COLUMNS
from targeting.contract.schema import DECLARATIONS
from targeting.features.base import FrameTransformer, codes_of, gather

#: the reason group of each contract column that may be coded; a column outside the contract (an adapter's
#: extra, such as KCS's `kcs_import_type`) is "other declared fields"
COLUMN_GROUPS = {
    "origin_country": "route", "goods_origin_country": "route", "load_loc": "route", "discharge_loc": "route",
    "transit_locs": "route", "hs_code": "goods", "item_category": "goods", "mode": "transport",
    "package_type": "transport", "freight_payment": "transport", "container_type": "transport",
    "fcl_lcl": "transport", "mail_class": "transport", "cn_form": "transport", "express_operator": "transport",
    "carrier_id": "transport", "consignee_type": "consignee", "consignee_addr_type": "consignee",
    "consignor_type": "consignor", "consignor_country": "consignor",
}  # fmt: skip
RARE = "__rare__"


def _as_text(values: pd.Series) -> pd.Series:
    """Levels as text, the same whether a numeric code arrived as an int or as a float with missing
    values (1 and 1.0 are both "1"); missing stays missing."""
    if pd.api.types.is_float_dtype(values.dtype):
        v = values.to_numpy(dtype=float)
        finite = v[np.isfinite(v)]
        if np.array_equal(finite, np.round(finite)):
            values = values.astype("Int64")
    return values.astype("str")


class CategoricalCodes(FrameTransformer):
    releases_gil = True  # one Arrow hash (dictionary_encode) per column and row, then small lookups

    def __init__(self, columns: tuple[str, ...] = CATEGORICAL_COLUMNS, min_count: int = 20) -> None:
        self.columns = columns
        self.min_count = min_count

    def fit(self, X: pd.DataFrame, y: Any = None) -> CategoricalCodes:
        self.vocab_: dict[str, list[str]] = {}
        for c in self.columns:
            if c not in X:
                self.vocab_[c] = []
                continue
            counts = _as_text(X[c]).dropna().value_counts()
            self.vocab_[c] = sorted(counts[counts >= self.min_count].index) + [RARE]
        self.names_ = [f"cat_{c}" for c in self.columns]
        return self

    def feature_columns(self, X: pd.DataFrame) -> dict[str, Any]:
        self.get_feature_names_out()
        data = {}
        for c in self.columns:
            vocab = self.vocab_[c]
            if c not in X or not vocab:
                data[f"cat_{c}"] = np.full(len(X), np.nan)
                continue
            # as text, exactly as the vocabulary was counted (a numeric code 1 is the level "1")
            codes, distinct = codes_of(_as_text(X[c]))
            per_value = pd.Index(vocab[:-1]).get_indexer(distinct)
            per_value[per_value < 0] = len(vocab) - 1  # unseen in training: the rare code
            data[f"cat_{c}"] = gather(per_value, codes)  # missing stays missing
        return data

    def reason_group(self, feature: str) -> str:
        column = feature.removeprefix("cat_")
        if column in DECLARATIONS.names:  # a contract column must have its group declared above
            return COLUMN_GROUPS[column]
        return "other"

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "vocab_": self.vocab_}

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        super()._load_fitted(fitted)
        self.vocab_ = fitted["vocab_"]
