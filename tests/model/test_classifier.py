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
