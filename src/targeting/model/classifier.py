"""The targeting model without I/O: feature union + LightGBM booster + Platt calibration, fitted, applied
and saved as one object.

`TargetingModel.save(dir)` writes only text/JSON (booster as LightGBM text, feature state, calibration and
the typed `ModelMeta` as JSON), so loading a model never unpickles anything (decision 5).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from targeting.config import LIGHTGBM_PARAMS, TrainConfig
from targeting.errors import ModelArtifactError
from targeting.features.base import FrameTransformer
from targeting.features.build import (
    build_features,
    categorical_names,
    feature_groups,
    union_from_state,
    union_state,
)
from targeting.history.source import Answerer, annotate
from targeting.model.forest import CompiledForest
from targeting.model.meta import ModelMeta

#: a matrix of fewer rows is built on one thread (a REST request's rows do not pay for starting one)
SIDE_THREAD_ROWS = 10_000


@dataclass
class TargetingModel:
    features: FeatureUnion  # fitted
    booster: lgb.Booster
    calibration: tuple[float, float]  # Platt: p = expit(a * raw + b)
    meta: ModelMeta

    @classmethod
    def fit(cls, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray,
            config: TrainConfig, w_train: np.ndarray | None = None,
            progress: Callable[[str], None] | None = None) -> TargetingModel:  # fmt: skip
        """Fit features on the training rows (annotated with their as-of history), LightGBM with early
        stopping on the validation rows, then Platt calibration on the validation rows' raw scores."""
        say = progress or (lambda _s: None)
        say("features")
        union = build_features(config.features)
        x_train = union.fit_transform(train, y_train)
        x_valid = union.transform(valid)
        cats = categorical_names(union)
        say("fit")
        booster = fit_booster(x_train, y_train, x_valid, y_valid, config, cats, w_train)
        raw_valid = booster.predict(x_valid.to_numpy(np.float32), raw_score=True, num_threads=config.num_threads)
        meta = ModelMeta(num_threads=config.num_threads, best_iteration=int(booster.current_iteration()),
                         lgb_params=dict(config.params), categorical_features=cats,
                         feature_config=config.features.to_json())  # fmt: skip
        return cls(union, booster, platt(raw_valid, y_valid), meta)

    @property
    def feature_names(self) -> list[str]:
        return list(self.booster.feature_name())

    @cached_property
    def feature_groups(self) -> dict[str, str]:
        """Each feature's reason group, as the transformer that emits it declares it."""
        return feature_groups(self.features)

    def matrix(self, annotated: pd.DataFrame, threads: int = 1) -> pd.DataFrame:
        """The booster's features, in its order, as one float32 block (what the booster reads: training
        casts the same float64 values to float32): each transformer's columns are written into place once,
        with no per-transformer frames, concatenation or reordering copies of a million-row matrix. With
        `threads` > 1 and at least SIDE_THREAD_ROWS rows, the transformers that release the GIL fill their
        columns on a second thread."""
        names = self.feature_names
        position = {name: j for j, name in enumerate(names)}
        block = np.empty((len(annotated), len(names)), np.float32, order="F")
        transformers = [t for _, t in self.features.transformer_list]

        def fill(group: list[FrameTransformer]) -> int:
            filled = 0
            for transformer in group:
                for name, values in transformer.feature_columns(annotated).items():
                    if name in position:
                        block[:, position[name]] = np.asarray(values, dtype=np.float64)
                        filled += 1
            return filled

        side_thread = threads > 1 and len(annotated) >= SIDE_THREAD_ROWS
        beside = [t for t in transformers if getattr(t, "releases_gil", False)] if side_thread else []
        with ThreadPoolExecutor(1) as side:
            job = side.submit(fill, beside) if beside else None
            filled = fill([t for t in transformers if t not in beside])
            filled += job.result() if job is not None else 0
        if filled != len(names):
            raise ValueError(f"the feature state lacks {len(names) - filled} of the booster's features")
        return pd.DataFrame(block, index=annotated.index, columns=names, copy=False)

    @cached_property
    def forest(self) -> CompiledForest | None:
        """The booster's trees for the compiled walker (None for a shape it does not cover)."""
        return CompiledForest.from_booster(self.booster)

    def raw_score(self, matrix: pd.DataFrame, num_threads: int | None = None) -> np.ndarray:
        """`Booster.predict(raw_score=True)`'s answers, by the compiled walker when it covers the model
        (the same sums, in less time: model/forest.py)."""
        threads = num_threads or self.meta.num_threads
        x = matrix.to_numpy(dtype=np.float32)
        if self.forest is not None:
            return self.forest.raw_score(x, threads)
        return self.booster.predict(x, raw_score=True, num_threads=threads)

    def probability(self, raw: np.ndarray) -> np.ndarray:
        a, b = self.calibration
        return expit(a * raw + b)

    def predict_annotated(self, annotated: pd.DataFrame) -> np.ndarray:
        """Calibrated risk for rows that already carry the store's `h_*` columns."""
        return self.probability(self.raw_score(self.matrix(annotated)))

    def predict(self, declarations: pd.DataFrame, history: Answerer) -> np.ndarray:
        """Calibrated risk for contract rows, their as-of history answered by `history`."""
        return self.predict_annotated(annotate(declarations, history))

    # ---- persistence (text and JSON only) ---------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """The model's files, and their SHA-256 checksums (`checksums.json`), which `load` verifies first."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "booster.txt"))
        (folder / "features.json").write_text(json.dumps(union_state(self.features)))
        (folder / "model.json").write_text(json.dumps({"calibration": list(self.calibration), **self.meta.to_json()},
                                                      indent=2, default=str))  # fmt: skip
        checksums = {name: _sha256(folder / name) for name in ARTIFACTS}
        (folder / CHECKSUMS).write_text(json.dumps(checksums, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TargetingModel:
        """The saved model, its files checked against their recorded checksums before any is parsed (a
        truncated booster would otherwise abort the process inside LightGBM)."""
        folder = Path(folder)
        verify_artifacts(folder)
        try:
            booster = lgb.Booster(model_file=str(folder / "booster.txt"))
            features = union_from_state(json.loads((folder / "features.json").read_text()))
            meta = json.loads((folder / "model.json").read_text())
            a, b = meta.pop("calibration")
            return cls(features, booster, (float(a), float(b)), ModelMeta.from_json(meta))
        except (OSError, ValueError, KeyError, TypeError, lgb.basic.LightGBMError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelArtifactError(f"{folder}: the model's files cannot be read ({reason})") from None


#: a saved model's files, and the file of their checksums
ARTIFACTS = ("booster.txt", "features.json", "model.json")
CHECKSUMS = "checksums.json"


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_artifacts(folder: Path) -> None:
    """Each file of a saved model matches the checksum recorded when it was saved; one clear error if not.
    A model saved before checksums were recorded has none to check."""
    recorded = folder / CHECKSUMS
    if not recorded.exists():
        return
    try:
        checksums = json.loads(recorded.read_text())
    except ValueError:
        raise ModelArtifactError(f"{recorded}: not a readable checksum file") from None
    for name in ARTIFACTS:
        path = folder / name
        if not path.exists():
            raise ModelArtifactError(f"{path}: missing from the model")
        if _sha256(path) != checksums.get(name):
            raise ModelArtifactError(f"{path}: does not match the checksum recorded when the model was saved "
                                     "(truncated or altered); log the model again")  # fmt: skip


def class_weights(y: np.ndarray, weights: np.ndarray | None, balance: bool) -> np.ndarray:
    """Row weights; with `balance`, positives are scaled so both classes carry the same total weight."""
    y = np.asarray(y, dtype=bool)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    if balance and y.any():
        w = np.where(y, w * (w[~y].sum() / w[y].sum()), w)
    return w


def fit_booster(x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray,
                config: TrainConfig, categorical: list[str], w_train: np.ndarray | None = None) -> lgb.Booster:  # fmt: skip
    """LightGBM on feature matrices, early-stopped on the validation rows (never before
    `config.min_boost_rounds`), cut at the best iteration."""
    params = {**LIGHTGBM_PARAMS, "seed": config.seed, "num_threads": config.num_threads, **config.params}
    weights = class_weights(y_train, w_train, config.balance_classes)
    d_train = lgb.Dataset(x_train.to_numpy(np.float32), np.asarray(y_train).astype(int), weight=weights,
                          feature_name=list(x_train.columns), categorical_feature=categorical, free_raw_data=False)  # fmt: skip
    d_valid = lgb.Dataset(x_valid.to_numpy(np.float32), np.asarray(y_valid).astype(int), reference=d_train)
    stopper = _EarlyStopping(config.early_stopping_rounds, config.min_boost_rounds)
    callbacks = [stopper] if np.any(y_valid) else []
    booster = lgb.train(params, d_train, num_boost_round=config.num_boost_round, valid_sets=[d_valid],
                        callbacks=callbacks)  # fmt: skip
    if stopper.best_iteration > 0 and stopper.best_iteration < booster.current_iteration():
        booster = booster.model_from_string(booster.model_to_string(num_iteration=stopper.best_iteration))
    return booster


class _EarlyStopping:
    """Early stopping on the validation loss that keeps at least `min_rounds` rounds: the best iteration is
    searched from `min_rounds` on, and training stops `patience` rounds after it."""

    order = 30  # LightGBM runs callbacks by this attribute (its own early stopping has 30 too)

    def __init__(self, patience: int, min_rounds: int) -> None:
        self.patience, self.min_rounds = patience, min_rounds
        self.best_iteration, self.best = 0, np.inf

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        rounds = env.iteration + 1
        loss = float(env.evaluation_result_list[0][2])
        if rounds >= self.min_rounds and loss < self.best:
            self.best_iteration, self.best = rounds, loss
        if rounds >= self.min_rounds and rounds - max(self.best_iteration, self.min_rounds) >= self.patience:
            raise lgb.callback.EarlyStopException(self.best_iteration - 1, env.evaluation_result_list)


def platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic calibration of raw scores on held-out rows. It must never reverse the model's order: a
    slope that comes out <= 0 (few positives among a few hundred rows can do that) is refused with a
    warning, and only the level is fitted (slope 1, the intercept that matches the rows' hit rate).
    Identity when a class is missing."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4).fit(raw.reshape(-1, 1), y)
    slope, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if slope > 0:
        return slope, intercept
    warnings.warn(f"calibration: the fitted slope is {slope:.3g} on {len(y)} rows ({int(y.sum())} positive), "
                  "which would reverse the ranking; fitted the level only (slope 1)", CalibrationWarning, stacklevel=2)  # fmt: skip
    return 1.0, _level(raw, float(y.mean()))


class CalibrationWarning(UserWarning):
    """A calibration was refused because it would have reversed the model's order."""


def _level(raw: np.ndarray, rate: float) -> float:
    """The intercept b with mean(expit(raw + b)) = rate (increasing in b, so bisection finds it)."""
    from scipy.optimize import brentq

    return float(brentq(lambda b: expit(raw + b).mean() - rate, -60.0 - raw.max(), 60.0 - raw.min()))
