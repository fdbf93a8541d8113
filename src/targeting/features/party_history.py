"""Party, token and route history features from the store's raw as-of counts (`h_*` columns)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from targeting.features.base import FrameTransformer, col
from targeting.history.store import PARTY_KEYS, ROUTE_KEYS, _seconds


class HistoryFeatures(FrameTransformer):
    """Prior filings, tenure, prior inspections and hits, smoothed hit rates, days since a linked hit.

    Hit rates are shrunk towards the training window's overall rate with `smoothing` pseudo-inspections,
    so one lucky inspection does not make a party look certain.
    """

    def __init__(self, smoothing: float = 20.0) -> None:
        self.smoothing = smoothing

    def fit(self, X: pd.DataFrame, y: Any = None) -> HistoryFeatures:
        insp = col(X, "h_origin_insp").fillna(0).sum()
        hits = col(X, "h_origin_hits").fillna(0).sum()
        self.prior_rate_ = float(hits / insp) if insp > 0 else 0.0
        names = []
        for name in PARTY_KEYS:
            names += [f"{name}_prior_decl", f"{name}_tenure_days", f"{name}_prior_insp", f"{name}_prior_hits",
                      f"{name}_hit_rate", f"{name}_days_since_hit"]  # fmt: skip
        for name in ROUTE_KEYS:
            names += [f"{name}_hit_rate"]
        self.names_ = [*names, "address_new_senders_30d"]
        return self

    def feature_columns(self, X: pd.DataFrame) -> dict[str, Any]:
        self.get_feature_names_out()
        now = _seconds(pd.to_datetime(X["filed_at"], utc=True))
        m, p0 = self.smoothing, self.prior_rate_
        data: dict[str, Any] = {}
        for name in PARTY_KEYS:
            insp, hits = col(X, f"h_{name}_insp"), col(X, f"h_{name}_hits")
            data[f"{name}_prior_decl"] = col(X, f"h_{name}_decl")
            data[f"{name}_tenure_days"] = (now - col(X, f"h_{name}_first_seen_s")) / 86_400
            data[f"{name}_prior_insp"] = insp
            data[f"{name}_prior_hits"] = hits
            data[f"{name}_hit_rate"] = (hits + m * p0) / (insp + m)
            data[f"{name}_days_since_hit"] = (now - col(X, f"h_{name}_last_hit_s")) / 86_400
        for name in ROUTE_KEYS:
            insp, hits = col(X, f"h_{name}_insp"), col(X, f"h_{name}_hits")
            data[f"{name}_hit_rate"] = (hits + m * p0) / (insp + m)
        data["address_new_senders_30d"] = col(X, "h_address_new_senders_30d")
        return data

    def reason_group(self, feature: str) -> str:
        """A party's or linked token's own group; route hit rates are the route's."""
        if feature == "address_new_senders_30d":
            return "address"
        head = feature.split("_")[0]
        if head in PARTY_KEYS:
            return head
        if head in ROUTE_KEYS:
            return "route"
        raise KeyError(feature)

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "prior_rate_": self.prior_rate_}

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        super()._load_fitted(fitted)
        self.prior_rate_ = fitted["prior_rate_"]
