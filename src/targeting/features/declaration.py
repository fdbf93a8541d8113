"""Row-level features of a declaration: value, weight and packaging against peers, timing, route shape."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from targeting.features.base import FrameTransformer, col
from targeting.schema import DECLARATIONS

_BOOLEANS = DECLARATIONS.of_kind("bool")


def _log_value_per_kg(X: pd.DataFrame) -> pd.Series:
    return np.log1p(col(X, "declared_value_usd")) - np.log(col(X, "gross_weight_kg").clip(lower=1e-3))


def _peer_key(X: pd.DataFrame, with_origin: bool) -> pd.Series:
    hs = X["hs_code"].astype("object").fillna("?") if "hs_code" in X else pd.Series("?", index=X.index)
    if not with_origin:
        return hs.astype(str)
    return hs.astype(str) + "|" + X["origin_country"].astype("object").fillna("?").astype(str)


class DeclarationFeatures(FrameTransformer):
    """Value per kg vs the HS6 x origin peer median of the training window, and row-level numbers."""

    def __init__(self, min_peers: int = 20) -> None:
        self.min_peers = min_peers

    def fit(self, X: pd.DataFrame, y: Any = None) -> DeclarationFeatures:
        lv = _log_value_per_kg(X)
        by_pair = lv.groupby(_peer_key(X, True)).agg(["median", "size"])
        by_hs = lv.groupby(_peer_key(X, False)).agg(["median", "size"])
        self.peer_hs_origin_ = by_pair.loc[by_pair["size"] >= self.min_peers, "median"].round(6).to_dict()
        self.peer_hs_ = by_hs.loc[by_hs["size"] >= self.min_peers, "median"].round(6).to_dict()
        self.peer_all_ = float(lv.median()) if len(lv) else 0.0
        self.names_ = ["log_value_usd", "log_weight_kg", "log_value_per_kg", "log_value_per_kg_peer",
                       "value_per_kg_vs_peer", "weight_per_package_kg", "n_packages", "amend_count",
                       "lead_days", "filed_hour", "hs_chapter", "hs_missing", "n_transit",
                       "shipper_account_age_days", *_BOOLEANS]  # fmt: skip
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self.get_feature_names_out()
        lv = _log_value_per_kg(X)
        peer = _peer_key(X, True).map(self.peer_hs_origin_)
        peer = peer.fillna(_peer_key(X, False).map(self.peer_hs_)).fillna(self.peer_all_).astype(float)
        filed = pd.to_datetime(X["filed_at"], utc=True)
        arrival = pd.to_datetime(X["arrival_date"].astype("object"), errors="coerce").dt.tz_localize("UTC") \
            if "arrival_date" in X else pd.Series(pd.NaT, index=X.index)  # fmt: skip
        hs = X["hs_code"].astype("object") if "hs_code" in X else pd.Series(None, index=X.index, dtype=object)
        transit = (
            X["transit_locs"].astype("object").fillna("")
            if "transit_locs" in X
            else pd.Series("", index=X.index)
        )
        data = {
            "log_value_usd": np.log1p(col(X, "declared_value_usd")),
            "log_weight_kg": np.log(col(X, "gross_weight_kg").clip(lower=1e-3)),
            "log_value_per_kg": lv,
            "log_value_per_kg_peer": peer,
            "value_per_kg_vs_peer": lv - peer,
            "weight_per_package_kg": col(X, "gross_weight_kg") / col(X, "n_packages").clip(lower=1),
            "n_packages": col(X, "n_packages"),
            "amend_count": col(X, "amend_count"),
            "lead_days": (arrival - filed.dt.normalize()).dt.days.astype("float64"),
            "filed_hour": filed.dt.hour.astype("float64"),
            "hs_chapter": pd.to_numeric(hs.str[:2], errors="coerce"),
            "hs_missing": hs.isna().astype("float64"),
            "n_transit": transit.map(lambda t: float(len(t.split(";"))) if t else 0.0),
            "shipper_account_age_days": col(X, "shipper_account_age_days"),
            **{b: col(X, b) for b in _BOOLEANS},
        }
        return self._frame(X, data)

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "peer_hs_origin_": self.peer_hs_origin_, "peer_hs_": self.peer_hs_,
                "peer_all_": self.peer_all_}  # fmt: skip

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        super()._load_fitted(fitted)
        self.peer_hs_origin_, self.peer_hs_, self.peer_all_ = (fitted["peer_hs_origin_"], fitted["peer_hs_"],
                                                                fitted["peer_all_"])  # fmt: skip
