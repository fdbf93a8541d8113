"""The fitted model: its matrix is the union's output in the booster's order."""

from __future__ import annotations

import numpy as np

from targeting.features.build import build_features


def test_the_model_matrix_is_the_union_output_in_booster_order_as_float32(labelled, monkeypatch) -> None:
    """Scoring builds the matrix from each transformer's columns straight into one float32 block; it must
    hold what training fed the booster: the union's output, cast to float32."""
    import lightgbm as lgb

    from targeting.model.classifier import TargetingModel

    X, y = labelled
    union = build_features()
    train = union.fit_transform(X, y)
    shuffled = list(train.columns[::-1])  # a booster order that differs from the union's
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(
        train[shuffled].to_numpy(np.float32), y.astype(int), feature_name=shuffled), num_boost_round=2)  # fmt: skip
    model = TargetingModel(union, booster, (1.0, 0.0), {})
    matrix = model.matrix(X)
    assert list(matrix.columns) == shuffled and (matrix.dtypes == np.float32).all()
    np.testing.assert_array_equal(matrix.to_numpy(), union.transform(X)[shuffled].to_numpy(np.float32))
    # built with the categorical codes on a second thread: the same block
    assert any(getattr(t, "releases_gil", False) for _, t in union.transformer_list)
    import targeting.model.classifier as model_module

    monkeypatch.setattr(model_module, "SIDE_THREAD_ROWS", 0)
    np.testing.assert_array_equal(model.matrix(X, threads=2).to_numpy(), matrix.to_numpy())
