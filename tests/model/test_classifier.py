"""The fitted model: its matrix is the union's output in the booster's order."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.fixture(scope="module")
def saved_model(labelled, tmp_path_factory):
    """A small model fitted on the tiny world and saved."""
    from targeting.config import FeatureConfig, TrainConfig
    from targeting.model.classifier import TargetingModel

    X, y = labelled
    half = len(X) // 2
    config = TrainConfig(num_boost_round=20, features=FeatureConfig(text=False))
    model = TargetingModel.fit(X.iloc[:half], y[:half], X.iloc[half:], y[half:], config)
    return model, model.save(tmp_path_factory.mktemp("model") / "model")


def _copy(folder, tmp_path):
    import shutil

    return shutil.copytree(folder, tmp_path / "copy")


def test_a_saved_model_loads_with_the_same_scores_and_metadata(saved_model, labelled) -> None:
    from targeting.model.classifier import TargetingModel

    model, folder = saved_model
    loaded = TargetingModel.load(folder)
    X, _ = labelled
    np.testing.assert_array_equal(loaded.predict_annotated(X), model.predict_annotated(X))
    assert loaded.meta == model.meta and loaded.calibration == model.calibration
    assert (folder / "checksums.json").exists()


def test_a_truncated_booster_is_one_clear_error_not_a_crash(saved_model, tmp_path) -> None:
    from targeting.errors import ModelArtifactError
    from targeting.model.classifier import TargetingModel

    folder = _copy(saved_model[1], tmp_path)
    text = (folder / "booster.txt").read_bytes()
    (folder / "booster.txt").write_bytes(text[: len(text) // 2])
    with pytest.raises(ModelArtifactError, match=r"booster.txt: does not match the checksum"):
        TargetingModel.load(folder)


def test_an_altered_or_unreadable_model_json_is_one_clear_error(saved_model, tmp_path) -> None:
    from targeting.errors import ModelArtifactError
    from targeting.model.classifier import TargetingModel

    folder = _copy(saved_model[1], tmp_path)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelArtifactError, match=r"model.json: does not match the checksum"):
        TargetingModel.load(folder)
    (folder / "checksums.json").unlink()  # a model saved before checksums were recorded: parsed, one line
    with pytest.raises(ModelArtifactError, match=r"the model's files cannot be read"):
        TargetingModel.load(folder)


def test_a_calibration_that_would_reverse_the_ranking_is_refused_and_only_the_level_fitted() -> None:
    """Few positives among a few hundred rows can give Platt a negative slope, which turns the ranking
    upside down (below random at the budget); the calibration must keep the model's order."""
    from scipy.special import expit

    from targeting.model.classifier import CalibrationWarning, platt

    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, 300)
    y = np.zeros(300, bool)
    y[np.argsort(raw)[:4]] = True  # the 4 positives are the lowest raw scores: a negative slope fits best
    with pytest.warns(CalibrationWarning, match="reverse the ranking"):
        slope, intercept = platt(raw, y)
    assert slope == 1.0
    p = expit(slope * raw + intercept)
    assert np.all(np.diff(p[np.argsort(raw)]) >= 0)  # the order is kept
    assert p.mean() == pytest.approx(y.mean(), rel=1e-6)  # the level matches the rows' hit rate
    y_ok = np.zeros(300, bool)
    y_ok[np.argsort(raw)[-30:]] = True
    slope, _ = platt(raw, y_ok)  # a normal case keeps its fitted slope
    assert slope > 1.0


def test_early_stopping_keeps_the_minimum_number_of_rounds(labelled) -> None:
    """A validation loss that is best after a few trees (a noisy, tiny validation window) does not cut the
    model below `min_boost_rounds`; above it, the best iteration is kept."""
    from targeting.config import TrainConfig
    from targeting.model.classifier import fit_booster

    X, y = labelled
    union = build_features()
    x = union.fit_transform(X, y)
    rng = np.random.default_rng(1)
    noise = rng.random(len(y)) < 0.5  # labels unrelated to the rows: the validation loss is best at once
    plain = fit_booster(x, y, x, noise, TrainConfig(min_boost_rounds=1, early_stopping_rounds=5), [])
    kept = fit_booster(x, y, x, noise, TrainConfig(min_boost_rounds=60, early_stopping_rounds=5), [])
    assert plain.current_iteration() < 20
    assert 60 <= kept.current_iteration() <= 65
