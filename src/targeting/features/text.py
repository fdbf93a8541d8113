"""The goods description: a text score learned from data (char n-gram hashing + logistic regression).

The score is out-of-time on the training window: rows of each time block are scored by a model fitted
on the earlier blocks only, so the trees downstream never see a score that memorised their own label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier

from targeting.features.base import FrameTransformer


def _vectorizer(n_features: int) -> HashingVectorizer:
    return HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=n_features, alternate_sign=False,
                             norm="l2", lowercase=True)  # fmt: skip


def _texts(X: pd.DataFrame) -> list[str]:
    return (
        X["goods_desc"].astype("object").fillna("").astype(str).tolist()
        if "goods_desc" in X
        else [""] * len(X)
    )


class TextScore(FrameTransformer):
    """`desc_text_score` (log-odds from the description alone), plus its length in characters and words."""

    def __init__(self, n_features: int = 2**16, blocks: int = 4, alpha: float = 1e-5, seed: int = 0) -> None:
        self.n_features = n_features
        self.blocks = blocks
        self.alpha = alpha
        self.seed = seed

    def _fit_lr(self, hashed: sparse.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, float]:
        if y.all() or not y.any():
            rate = (y.sum() + 0.5) / (len(y) + 1)
            return np.zeros(self.n_features), float(np.log(rate / (1 - rate)))
        lr = SGDClassifier(loss="log_loss", alpha=self.alpha, class_weight="balanced", max_iter=20, tol=None,
                           random_state=self.seed)  # fmt: skip
        lr.fit(hashed, y)
        return lr.coef_.ravel().copy(), float(lr.intercept_[0])

    def fit(self, X: pd.DataFrame, y: Any = None) -> TextScore:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **_: Any) -> pd.DataFrame:
        if y is None:
            raise ValueError("TextScore needs labels to fit")
        y = np.asarray(y, dtype=bool)
        texts = _texts(X)
        hashed = _vectorizer(self.n_features).transform(texts)  # once; the blocks are row slices of it
        order = np.argsort(pd.to_datetime(X["filed_at"], utc=True).to_numpy(), kind="stable")
        blocks = np.array_split(order, self.blocks)
        oot = np.zeros(len(X))
        base = float(np.log((y.sum() + 0.5) / (len(y) - y.sum() + 0.5)))
        oot[blocks[0]] = base
        for k in range(1, len(blocks)):
            seen = np.concatenate(blocks[:k])
            coef, b = self._fit_lr(hashed[seen], y[seen])
            oot[blocks[k]] = hashed[blocks[k]] @ coef + b
        self.coef_, self.intercept_ = self._fit_lr(hashed, y)
        self.names_ = ["desc_text_score", "desc_length", "desc_words"]
        return self._frame(X, {"desc_text_score": oot, **self._lengths(texts)})

    @staticmethod
    def _lengths(texts: list[str]) -> dict[str, np.ndarray]:
        return {"desc_length": np.array([len(t) for t in texts], float),
                "desc_words": np.array([len(t.split()) for t in texts], float)}  # fmt: skip

    def feature_columns(self, X: pd.DataFrame) -> dict[str, Any]:
        """Each distinct description is hashed and scored once (a day's manifests repeat them a lot)."""
        self.get_feature_names_out()
        desc = X["goods_desc"] if "goods_desc" in X else pd.Series("", index=X.index)
        codes, uniques = pd.factorize(desc.astype("str").fillna(""), use_na_sentinel=False)
        texts = [str(t) for t in uniques]
        score = _vectorizer(self.n_features).transform(texts) @ self.coef_ + self.intercept_
        lengths = self._lengths(texts)
        return {"desc_text_score": score[codes], **{k: v[codes] for k, v in lengths.items()}}

    def reason_group(self, feature: str) -> str:
        return "description"

    def probability(self, X: pd.DataFrame) -> np.ndarray:
        """The description's own probability of a hit (for explanations)."""
        return expit(self.transform(X)["desc_text_score"].to_numpy())

    def _fitted_state(self) -> dict[str, Any]:
        nz = np.flatnonzero(self.coef_)
        return {**super()._fitted_state(), "intercept_": self.intercept_, "coef_index": nz.tolist(),
                "coef_value": np.round(self.coef_[nz], 7).tolist()}  # fmt: skip

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        super()._load_fitted(fitted)
        self.intercept_ = fitted["intercept_"]
        self.coef_ = np.zeros(self.n_features)
        self.coef_[np.asarray(fitted["coef_index"], dtype=np.int64)] = fitted["coef_value"]
