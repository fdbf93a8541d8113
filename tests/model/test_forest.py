"""The compiled tree walker gives Booster.predict's raw scores bit for bit, on the values where LightGBM's
rules have corners: missing values of each missing type, zeros and near-zeros, categorical values that
are negative, fractional, missing or beyond the bitset, one-leaf trees, either memory order, one or two
threads."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from targeting.model import forest as forest_module
from targeting.model.forest import CompiledForest

ODD_VALUES = [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-30, -1e30, 1e30, -0.5, 0.5, -1.0, 3.7, 40.0, 99.0, 2.5e9, -3e9]


def _training_set(rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Four numerical features (one with NaNs, one with many zeros) and a categorical one with 70 values
    (more than one 32-bit word of categories)."""
    x = rng.normal(size=(n, 5)).astype(np.float32)
    x[rng.random(n) < 0.2, 1] = np.nan
    x[rng.random(n) < 0.4, 2] = 0.0
    x[:, 4] = rng.integers(0, 70, n)
    logit = x[:, 0] + np.nan_to_num(x[:, 1], nan=2.0) - 2 * (x[:, 2] == 0) + np.isin(x[:, 4], [3, 17, 40, 65]) * 2
    return x, (logit + rng.normal(size=n) > 0.5).astype(int)


def _booster(x: np.ndarray, y: np.ndarray, **params: object) -> lgb.Booster:
    settings = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 1,
                "max_cat_to_onehot": 4, "cat_smooth": 1.0, "min_data_per_group": 5, **params}  # fmt: skip
    return lgb.train(settings, lgb.Dataset(x, y, categorical_feature=[4]), num_boost_round=40)


def _test_rows(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Training-like rows, then every odd value in every column."""
    rows = [x[:500]]
    for j in range(x.shape[1]):
        odd = np.repeat(x[500:500 + len(ODD_VALUES)], 1, axis=0).copy()
        odd[:, j] = ODD_VALUES
        rows.append(odd)
    return np.concatenate(rows).astype(np.float32)


def _missing_types(booster: lgb.Booster) -> set[int]:
    kinds = set()
    for line in booster.model_to_string().splitlines():
        if line.startswith("decision_type="):
            kinds |= {(int(v) >> 2) & 3 for v in line.split("=")[1].split() if not int(v) & 1}
    return kinds


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_walker_equals_booster_predict(params: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    x, y = _training_set(rng)
    booster = _booster(x, y, **params)
    forest = CompiledForest.from_booster(booster)
    assert forest is not None and (forest.flags & 4).any()  # categorical splits are walked
    rows = _test_rows(rng, x)
    expected = booster.predict(rows, raw_score=True)
    monkeypatch.setattr(forest_module, "ROWS_PER_THREAD", 100)
    for order in ("C", "F"):
        for threads in (1, 2):
            got = forest.raw_score(np.asarray(rows, order=order), threads)
            assert np.array_equal(got, expected), (params, order, threads)


def test_every_missing_type_is_covered() -> None:
    """The three settings above produce splits of each missing type (None, Zero, NaN), so the test above
    checks each rule."""
    x, y = _training_set(np.random.default_rng(3))
    seen = set()
    for params in ({}, {"zero_as_missing": True}, {"use_missing": False}):
        seen |= _missing_types(_booster(x, y, **params))
    assert seen == {0, 1, 2}


def test_one_leaf_trees_add_their_value() -> None:
    rng = np.random.default_rng(4)
    x, y = _training_set(rng, 200)
    booster = _booster(x, y, min_data_in_leaf=150)  # no split is allowed: every tree is one leaf
    assert "num_leaves=1" in booster.model_to_string()
    forest = CompiledForest.from_booster(booster)
    assert forest is not None and (forest.roots < 0).all()
    assert np.array_equal(forest.raw_score(x), booster.predict(x, raw_score=True))


def test_best_iteration_is_the_default_as_in_predict() -> None:
    rng = np.random.default_rng(5)
    x, y = _training_set(rng)
    booster = _booster(x, y)
    booster.best_iteration = 17  # as early stopping leaves it
    forest = CompiledForest.from_booster(booster)
    assert forest is not None and len(forest.roots) == 17
    assert np.array_equal(forest.raw_score(x), booster.predict(x, raw_score=True))
    assert not np.array_equal(forest.raw_score(x), booster.predict(x, raw_score=True, num_iteration=40))


def test_shapes_it_does_not_cover_fall_back() -> None:
    rng = np.random.default_rng(6)
    x, y = _training_set(rng, 600)
    multiclass = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                           lgb.Dataset(x[:, :4], rng.integers(0, 3, 600)), num_boost_round=3)  # fmt: skip
    linear = lgb.train({"objective": "binary", "linear_tree": True, "verbose": -1}, lgb.Dataset(x[:, :4], y),
                       num_boost_round=3)  # fmt: skip
    forest = lgb.train({"boosting": "rf", "objective": "binary", "bagging_freq": 1, "bagging_fraction": 0.5,
                        "verbose": -1}, lgb.Dataset(x[:, :4], y), num_boost_round=3)  # fmt: skip
    for booster in (multiclass, linear, forest):
        assert CompiledForest.from_booster(booster) is None


def test_wrong_width_or_type_is_one_clear_error() -> None:
    x, y = _training_set(np.random.default_rng(7), 600)
    forest = CompiledForest.from_booster(_booster(x, y))
    assert forest is not None
    with pytest.raises(ValueError, match="reads 5 features per row"):
        forest.raw_score(x[:, :4])
    with pytest.raises(TypeError, match="float32 rows"):
        forest.raw_score(x.astype(np.float64))
