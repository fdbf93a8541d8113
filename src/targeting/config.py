"""Frozen configuration dataclasses and every default a user can change: the only home of defaults.

The command line, MLproject, the demo and the library all take their defaults from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Target(StrEnum):
    """What counts as a positive label on an inspected declaration."""

    HIT = "hit"  # result in {DRUG, PRECURSOR}: the default for drug targeting
    VIOLATION = "violation"  # any finding (DRUG, PRECURSOR, OTHER_VIOLATION): the KCS duty-fraud label


# ---- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KcsConfig:
    """How the public KCS declarations map onto the contract (see contract/adapters/kcs.py for the reasons)."""

    #: KRW per USD, fixed: the Bank of Korea's 2020 average rate (1,180.1), the year of the train file.
    krw_per_usd: float = 1180.1
    #: days between filing and the inspection outcome; KCS gives only the declaration date.
    exam_lag_days: int = 1
    #: Net Mass is reported to 0.1 kg; 0.0 means "below the 0.1 kg unit" and the contract needs weight > 0.
    zero_mass_kg: float = 0.05
    id_prefix: str = "KCS"


#: where the command line reads and writes when no path is given (the demo's simulated world)
DEFAULT_WORLD = "data/raw/sim-small"


# ---- features and training ----------------------------------------------------------------------

#: declaration columns coded from the training vocabulary (features/categorical.py)
CATEGORICAL_COLUMNS: tuple[str, ...] = (
    "mode", "origin_country", "goods_origin_country", "load_loc", "discharge_loc", "consignor_type",
    "consignee_type", "consignee_addr_type", "package_type", "freight_payment", "item_category", "container_type",
    "fcl_lcl", "mail_class", "cn_form", "express_operator", "hs_code",
)  # fmt: skip


@dataclass(frozen=True)
class FeatureConfig:
    categorical: tuple[str, ...] = CATEGORICAL_COLUMNS
    #: numeric columns passed through as they are (e.g. the KCS adapter's extras for Protocol A)
    extra_numeric: tuple[str, ...] = ()
    #: categorical levels seen fewer times in training share the "rare" code
    min_count: int = 20
    #: pseudo-inspections that shrink a party's or route's hit rate towards the training window's rate
    smoothing: float = 20.0
    #: the learned text score of the goods description
    text: bool = True
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        """As recorded with a model (model.json)."""
        return {"categorical": list(self.categorical), "extra_numeric": list(self.extra_numeric),
                "min_count": self.min_count, "smoothing": self.smoothing, "text": self.text, "seed": self.seed}  # fmt: skip


#: LightGBM parameters of every fit (a search or `TrainConfig.params` override them)
LIGHTGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "max_depth": 8,
    "min_child_samples": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}


@dataclass(frozen=True)
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    num_boost_round: int = 400
    early_stopping_rounds: int = 40
    #: early stopping never keeps fewer rounds: on a validation window of a few hundred self-selected
    #: rows (a closed loop's first weeks) the best iteration by its loss is noise, often 1-14 trees
    min_boost_rounds: int = 100
    #: LightGBM threads for the fit: `python -m benchmarks threads` measures no gain from a second thread
    #: for the fit on this project's machines (prediction does gain: see `scoring_threads`)
    num_threads: int = 1
    seed: int = 7
    #: weight positives so both classes carry equal total weight (the hits are rare)
    balance_classes: bool = True
    #: weight each inspected row by 1 / its selection propensity (decision 3)
    propensity_weights: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    #: Optuna trials before the fit (0 = LIGHTGBM_PARAMS + params); see training/search.py
    search_trials: int = 0


#: without --train-end / --valid-end, the validation window is the last VALID_DAYS days of the data
#: (up to the end of its last day) and the training window everything before it
VALID_DAYS = 60
#: the most recent days held out of fitting, early stopping and calibration: the window `promote`
#: judges a challenger on (decision 9)
TEST_DAYS = 14
#: promotion: the one-sided confidence that the challenger finds more hits, bootstrap draws (over the
#: window's days), and the smallest propensity counted (one explored row stands for at most 1,000)
PROMOTION_CONFIDENCE = 0.9
BOOTSTRAP_SAMPLES = 1000
MIN_PROPENSITY = 1e-3
#: `targeting monitor`: the recent weeks judged, and the lift of the model's hit rate over exploration's
#: below which it warns
MONITOR_RECENT_WEEKS = 4
MONITOR_MIN_LIFT = 2.0
#: declarations of the training window profiled as the drift reference (model/drift.py)
REFERENCE_ROWS = 20_000


# ---- the daily batch and the server -------------------------------------------------------------

#: each mode's daily inspection capacity: a percentage of its declarations or a count
DEFAULT_BUDGETS = "SEA=2%,AIR=1%,POST=0.5%,EXPRESS=0.5%"
#: share of each mode's budget drawn at random from the rest (exploration)
DEFAULT_EXPLORE = "10%"
#: the model the batch and the server use
DEFAULT_MODEL_URI = "models:/targeting@champion"
#: rows per Spark scoring task (each task loads the model once)
SCORING_PARTITION_ROWS = 200_000
#: the JVM heap of a Spark session this process starts itself (local mode; spark-submit sets its own)
SPARK_LOCAL_DRIVER_MEMORY = "4g"
#: selected shipments drawn as cards in the review report (the rest are in scores.csv)
REPORT_CARDS = 100
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 5001
SERVE_WORKERS = 1
#: the largest request body the server reads (a 10,000-row request is about 8 MB); larger ones get 413
MAX_BODY_BYTES = 16 * 2**20
MAX_BODY_ENV = "TARGETING_MAX_BODY_BYTES"
#: a request that takes longer gets 504
REQUEST_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_ENV = "TARGETING_REQUEST_TIMEOUT"
#: the local folder of the logged model the server loads (prepared by `targeting serve`)
MODEL_PATH_ENV = "TARGETING_MODEL_PATH"

#: the history folder a served model answers from (default: the one recorded when it was trained)
HISTORY_ENV = "TARGETING_HISTORY"
#: set (to 1) to serve without any history, explicitly: every party is then new
NO_HISTORY_ENV = "TARGETING_NO_HISTORY"
#: LightGBM and as-of threads for scoring (default: up to 2, the cores of this project's machines)
THREADS_ENV = "TARGETING_THREADS"


def scoring_threads() -> int:
    """Threads for prediction, explanations and as-of answers: prediction gains from a second thread
    (`python -m benchmarks threads`), the fit does not."""
    return int(os.environ.get(THREADS_ENV) or min(2, os.cpu_count() or 1))


def backtest_workers() -> int:
    """Processes for the closed loop's policies: each lives through the days on its own, so they run side by
    side, one per core."""
    return max(1, os.cpu_count() or 1)
