"""How hard the simulated world is to target (§4.10 check 4), measured on its observable columns.

Two measurements keep the world honest: no single observable yes/no indicator separates a pattern
from the legitimate traffic in the same goods (AUC <= 0.75), while a plain gradient-boosted model on
the observable columns does well overall (AUC 0.85-0.95), so targeting is a multivariate problem.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from targeting.contract.schema import DECLARATIONS
from targeting.simulate.patterns import PATTERNS

BOOLEAN_COLUMNS = DECLARATIONS.of_kind("bool")
CATEGORICAL_COLUMNS = ("mode", "origin_country", "goods_origin_country", "load_loc", "transit_locs", "discharge_loc",
                       "consignor_type", "consignee_type", "consignee_addr_type", "package_type", "freight_payment",
                       "item_category", "container_type", "fcl_lcl", "mail_class", "cn_form", "express_operator",
                       "hs_code", "goods_desc")  # fmt: skip
NUMERIC_COLUMNS = (
    "amend_count",
    "n_packages",
    "gross_weight_kg",
    "declared_value_usd",
    "shipper_account_age_days",
)


def pattern_population(
    decl: pd.DataFrame, truth: pd.DataFrame, pattern_id: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rows compared for one pattern (its modes and cover HS6 lines, other patterns left out) and labels."""
    p = PATTERNS[pattern_id]
    is_pattern = (truth["pattern_id"] == pattern_id).to_numpy()
    legit = ~truth["is_smuggling"].fillna(False).to_numpy(dtype=bool)
    same_goods = decl["mode"].isin(list(p.modes)).to_numpy() & decl["hs_code"].isin(set(p.covers)).to_numpy()
    pop = same_goods & (is_pattern | legit)
    return pop, is_pattern[pop]


def binary_feature_aucs(decl: pd.DataFrame, truth: pd.DataFrame, pattern_id: str) -> pd.Series:
    """Ground-truth AUC of every observable yes/no indicator (booleans, one-hot levels) for a pattern.

    The AUC of a binary score is (1 + TPR - FPR) / 2; an indicator that marks absence counts the same,
    so max(AUC, 1 - AUC) is reported. Sorted, strongest first.
    """
    pop, y = pattern_population(decl, truth, pattern_id)
    sub = decl[pop]
    out: dict[str, float] = {}

    def add(name: str, x: np.ndarray) -> None:
        auc = (1 + x[y].mean() - x[~y].mean()) / 2
        out[name] = max(auc, 1 - auc)

    if y.sum() == 0 or y.all():
        return pd.Series(dtype=float)
    for col in BOOLEAN_COLUMNS:
        add(col, sub[col].fillna(False).to_numpy(dtype=bool))
    add("amended", sub["amend_count"].to_numpy(dtype=float) > 0)
    for col in CATEGORICAL_COLUMNS:
        values = sub[col].fillna("<missing>").to_numpy(dtype=object)
        for level in pd.unique(values[y]):
            add(f"{col}={level}", values == level)
    return pd.Series(out).sort_values(ascending=False)


def observable_matrix(decl: pd.DataFrame) -> pd.DataFrame:
    """The declaration columns as numbers, plus the obvious derived ones (value per kg, prior filings)."""
    x = pd.DataFrame(index=decl.index)
    for col in CATEGORICAL_COLUMNS:
        x[col] = decl[col].astype("category").cat.codes
    x["hs_chapter"] = decl["hs_code"].str[:2].astype("category").cat.codes
    for col in NUMERIC_COLUMNS:
        x[col] = pd.to_numeric(decl[col]).astype(float)
    for col in BOOLEAN_COLUMNS:
        x[col] = decl[col].astype("float")
    x["log_value_per_kg"] = np.log1p(decl["declared_value_usd"]) - np.log(decl["gross_weight_kg"])
    order = decl["filed_at"].argsort(kind="stable")
    prior = decl.iloc[order].groupby("consignee_id", sort=False).cumcount()
    x["consignee_prior_filings"] = prior.reindex(decl.index).to_numpy()
    return x


def gbdt_auc(
    decl: pd.DataFrame, truth: pd.DataFrame, train_share: float = 0.6, seed: int = 0
) -> dict[str, float]:
    """Ground-truth AUC of a LightGBM model on the observable columns: train on the first `train_share`
    of the time line, score the rest; overall and per mode."""
    decl = decl.sort_values("filed_at", kind="stable").reset_index(drop=True)
    truth = truth.set_index("declaration_id").loc[decl["declaration_id"]].reset_index()
    y = truth["is_smuggling"].fillna(False).to_numpy(dtype=bool)
    x = observable_matrix(decl)
    cut = int(len(decl) * train_share)
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, random_state=seed,
                               deterministic=True, num_threads=1, verbose=-1)  # fmt: skip
    model.fit(x.iloc[:cut], y[:cut])
    p = model.predict_proba(x.iloc[cut:])[:, 1]
    out = {"overall": float(roc_auc_score(y[cut:], p))}
    modes = decl["mode"].to_numpy()[cut:]
    for mode in pd.unique(modes):
        sel = modes == mode
        if 0 < y[cut:][sel].sum() < sel.sum():
            out[str(mode)] = float(roc_auc_score(y[cut:][sel], p[sel]))
    return out
