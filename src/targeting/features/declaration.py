"""Row-level features of a declaration: value, weight and packaging against peers, timing, route shape."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from targeting.contract.schema import DECLARATIONS
from targeting.features.base import FrameTransformer, codes_of, col, gather
from targeting.history.store import _seconds

_BOOLEANS = DECLARATIONS.of_kind("bool")
#: each feature's reason group (a declared boolean by its own entry)
_GROUPS = {
    "log_value_usd": "value", "log_value_per_kg": "value", "log_value_per_kg_peer": "value",
    "value_per_kg_vs_peer": "value", "log_weight_kg": "packaging", "weight_per_package_kg": "packaging",
    "n_packages": "packaging", "hs_chapter": "goods", "hs_missing": "goods", "lead_days": "timing",
    "filed_hour": "timing", "amend_count": "timing", "n_transit": "route", "is_transit_cargo": "route",
    "shipper_account_age_days": "consignor", "known_consignor": "consignor", "consignee_taxid_present": "consignee",
    "is_reefer": "transport", "seal_discrepancy": "transport", "simplified_clearance": "transport",
}  # fmt: skip


def _log_value_per_kg(X: pd.DataFrame) -> pd.Series:
    return np.log1p(col(X, "declared_value_usd")) - np.log(col(X, "gross_weight_kg").clip(lower=1e-3))


def _peer_key(X: pd.DataFrame, with_origin: bool) -> pd.Series:
    hs = X["hs_code"].astype("object").fillna("?") if "hs_code" in X else pd.Series("?", index=X.index)
    if not with_origin:
        return hs.astype(str)
    return hs.astype(str) + "|" + X["origin_country"].astype("object").fillna("?").astype(str)


def _epoch_days(dates: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a date column (Arrow dates, dates or text; unreadable -> NaN), converted
    once per distinct date."""
    codes, distinct = codes_of(dates)
    parsed = pd.to_datetime(pd.Series(distinct, dtype=object), errors="coerce")
    days = (parsed - pd.Timestamp("1970-01-01")).dt.days.to_numpy(dtype=float)
    return gather(days, codes)


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

    def feature_columns(self, X: pd.DataFrame) -> dict[str, Any]:
        """Per-value work (peer lookups, HS chapters, transit counts, dates) is done once per distinct value
        and gathered back to the rows: a day's manifest repeats a few thousand values a million times."""
        self.get_feature_names_out()
        lv = _log_value_per_kg(X)
        filed_s = _seconds(pd.to_datetime(X["filed_at"], utc=True))
        hs_codes, hs_values = codes_of(
            X["hs_code"] if "hs_code" in X else pd.Series(None, index=X.index, dtype=object)
        )
        hs_text = pd.Series(hs_values, dtype=object)
        transit_codes, transits = codes_of(X["transit_locs"] if "transit_locs" in X
                                           else pd.Series(None, index=X.index, dtype=object))  # fmt: skip
        data = {
            "log_value_usd": np.log1p(col(X, "declared_value_usd")),
            "log_weight_kg": np.log(col(X, "gross_weight_kg").clip(lower=1e-3)),
            "log_value_per_kg": lv,
            "log_value_per_kg_peer": (peer := self._peer_median(X, hs_codes, hs_text)),
            "value_per_kg_vs_peer": lv.to_numpy() - peer,
            "weight_per_package_kg": col(X, "gross_weight_kg") / col(X, "n_packages").clip(lower=1),
            "n_packages": col(X, "n_packages"),
            "amend_count": col(X, "amend_count"),
            "lead_days": _epoch_days(X["arrival_date"]) - filed_s // 86_400 if "arrival_date" in X
            else np.full(len(X), np.nan),
            "filed_hour": (filed_s % 86_400) // 3_600,
            "hs_chapter": gather(pd.to_numeric(hs_text.str[:2], errors="coerce").to_numpy(dtype=float), hs_codes),
            "hs_missing": (hs_codes < 0).astype("float64"),
            "n_transit": gather([float(len(t.split(";"))) if t else 0.0 for t in pd.Series(transits, dtype=object).astype(str)],
                                transit_codes, missing=0.0),
            "shipper_account_age_days": col(X, "shipper_account_age_days"),
            **{b: col(X, b) for b in _BOOLEANS},
        }  # fmt: skip
        return data

    def reason_group(self, feature: str) -> str:
        return _GROUPS[feature]

    def _peer_median(self, X: pd.DataFrame, hs_codes: np.ndarray, hs_text: pd.Series) -> np.ndarray:
        """The training window's median log value per kg of the row's HS6 x origin peers, else of its HS6,
        else of all rows; looked up once per distinct (HS6, origin) pair."""
        origin = (
            X["origin_country"] if "origin_country" in X else pd.Series(None, index=X.index, dtype=object)
        )
        or_codes, or_values = codes_of(origin)
        # labels as the peer keys were written in fit ("?" for a missing value), missing first: code + 1
        hs_label = ["?", *hs_text.astype(str)]
        or_label = ["?", *pd.Series(or_values, dtype=object).astype(str)]
        width = len(or_label)
        pairs, rows = np.unique((hs_codes.astype(np.int64) + 1) * width + or_codes + 1, return_inverse=True)
        hs_of, or_of = pairs // width, pairs % width
        per_pair = [self.peer_hs_origin_.get(f"{hs_label[h]}|{or_label[o]}",
                                             self.peer_hs_.get(hs_label[h], self.peer_all_))
                    for h, o in zip(hs_of, or_of, strict=True)]  # fmt: skip
        return np.asarray(per_pair, dtype=np.float64)[rows]

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "peer_hs_origin_": self.peer_hs_origin_, "peer_hs_": self.peer_hs_,
                "peer_all_": self.peer_all_}  # fmt: skip

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        super()._load_fitted(fitted)
        self.peer_hs_origin_, self.peer_hs_, self.peer_all_ = (fitted["peer_hs_origin_"], fitted["peer_hs_"],
                                                                fitted["peer_all_"])  # fmt: skip
