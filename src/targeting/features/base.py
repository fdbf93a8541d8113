"""What every transformer here shares: pandas in, pandas out (index kept), state as plain JSON, and the
reason group of every feature it emits (what an officer reads in an explanation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

#: reason group -> short label (for pictures); the order is the tie-break when contributions are equal.
#: Explanations sum each feature's contribution into its group (model/explain.py).
REASON_GROUPS: dict[str, str] = {
    "value": "declared value vs peers",
    "packaging": "weight and packaging",
    "goods": "goods and tariff line",
    "description": "goods description",
    "timing": "filing timing and amendments",
    "route": "route and origin",
    "consignee": "consignee history",
    "consignor": "consignor history",
    "forwarder": "forwarder history",
    "declarant": "declarant history",
    "phone": "linked phone number",
    "email": "linked e-mail address",
    "address": "delivery address",
    "transport": "transport details",
    "other": "other declared fields",
}


class FrameTransformer(TransformerMixin, BaseEstimator):
    """A transformer whose fitted state is JSON (so a model artifact never needs pickle), and which
    declares the reason group of each feature it emits."""

    #: its `feature_columns` spends most of its time in Arrow or NumPy calls that release the GIL, so a
    #: model's matrix can be built with it on a second thread beside the others
    releases_gil = False

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "names_")
        return np.asarray(self.names_, dtype=object)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._frame(X, self.feature_columns(X))

    def feature_columns(self, X: pd.DataFrame) -> dict[str, Any]:
        """Each feature's values for the rows of X (arrays or Series in X's order), by feature name."""
        raise NotImplementedError

    def reason_group(self, feature: str) -> str:
        """The reason group (a key of REASON_GROUPS) of one of this transformer's features."""
        raise NotImplementedError(f"{type(self).__name__} declares no reason group for {feature!r}")

    def reason_groups(self) -> dict[str, str]:
        """Feature name -> reason group, for every feature this transformer emits."""
        return {name: self.reason_group(name) for name in self.get_feature_names_out()}

    def _frame(self, X: pd.DataFrame, data: dict[str, Any]) -> pd.DataFrame:
        """The named columns as one float64 block (filled once: no per-column frame, reorder or cast copies)."""
        block = np.empty((len(X), len(self.names_)), np.float64, order="F")
        for j, name in enumerate(self.names_):
            block[:, j] = np.asarray(data[name], dtype=np.float64)
        return pd.DataFrame(block, index=X.index, columns=list(self.names_), copy=False)

    def to_state(self) -> dict[str, Any]:
        check_is_fitted(self, "names_")
        return {"params": self.get_params(), "fitted": self._fitted_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FrameTransformer:
        obj = cls(**state["params"])
        obj._load_fitted(state["fitted"])
        return obj

    def _fitted_state(self) -> dict[str, Any]:
        return {"names_": list(self.names_)}

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        self.names_ = list(fitted["names_"])


def col(X: pd.DataFrame, name: str, default: float = np.nan) -> pd.Series:
    """A column as float, or the default where the input does not have it."""
    if name not in X:
        return pd.Series(default, index=X.index, dtype="float64")
    s = X[name]
    if s.dtype == np.float64:
        return s
    if s.dtype == bool or str(s.dtype) == "boolean":
        return s.astype("float64")
    return pd.to_numeric(s, errors="coerce").astype("float64")


def codes_of(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for missing) and the distinct values: per-value work is then done once per distinct
    value and gathered back, instead of once per row."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    return codes, pd.Index(distinct)


def gather(per_value: np.ndarray, codes: np.ndarray, missing: float = np.nan) -> np.ndarray:
    """`per_value[codes]`, with `missing` where the code is -1."""
    return np.append(np.asarray(per_value, dtype=np.float64), missing)[codes]
