"""Optional hyperparameter search (Optuna TPE) for the LightGBM booster, honest about time.

The search never looks at the validation window that the run reports: it splits the training window
itself by time (its last `tune_share` of rows tune, the rest fit), fits the features once on the inner
part, and lets each trial fit a booster with early stopping on the tuning rows, scored by PR-AUC there.
The chosen parameters are then used by the normal fit on the whole training window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from targeting.config import TrainConfig
from targeting.errors import ConfigError
from targeting.features.build import build_features, categorical_names
from targeting.model.classifier import fit_booster


@dataclass
class SearchResult:
    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame  # one row per trial: number, value (tuning PR-AUC), params


def suggest(trial: Any) -> dict[str, Any]:
    """The space: tree shape, learning rate, sampling and regularisation."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 10),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }


def search(train: pd.DataFrame, y: np.ndarray, config: TrainConfig, n_trials: int, tune_share: float = 0.25,
           weights: np.ndarray | None = None, progress: Callable[[int, float], None] | None = None) -> SearchResult:  # fmt: skip
    """Tune on the time-ordered tail of the training rows (which must be sorted by `filed_at`)."""
    import optuna

    y = np.asarray(y, dtype=bool)
    cut = int(len(train) * (1 - tune_share))
    if y[:cut].sum() < 5 or y[cut:].sum() < 5:
        raise ConfigError(f"--search needs >= 5 positives in both the first {1 - tune_share:.0%} and the last "
                          f"{tune_share:.0%} of the training rows (found {y[:cut].sum()} and {y[cut:].sum()})")  # fmt: skip
    union = build_features(config.features)
    x_fit = union.fit_transform(train.iloc[:cut], y[:cut])
    x_tune = union.transform(train.iloc[cut:])
    cats = categorical_names(union)
    w_fit = None if weights is None else np.asarray(weights)[:cut]

    def objective(trial: Any) -> float:
        params = suggest(trial)
        booster = fit_booster(x_fit, y[:cut], x_tune, y[cut:], replace(config, params={**config.params, **params}),
                              cats, w_fit)  # fmt: skip
        value = float(average_precision_score(y[cut:], booster.predict(x_tune.to_numpy(np.float32))))
        trial.set_user_attr("best_iteration", int(booster.current_iteration()))
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    callbacks = [lambda st, tr: progress(tr.number + 1, st.best_value)] if progress else []
    study.optimize(objective, n_trials=n_trials, callbacks=callbacks)
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs"))
    return SearchResult(dict(study.best_params), float(study.best_value), trials)
