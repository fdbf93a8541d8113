"""What a fitted model records about itself: `model.json` beside the booster, read back as `ModelMeta`.

Training, scoring, promotion and the Spark engine all read these fields; a typed object (rather than a
free dict) makes every reader name what it needs, and an old model's file still loads (missing fields
take their defaults, unknown ones are ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from targeting.model.drift import DriftReference

JsonScalar = str | int | float | bool | None


@dataclass
class ModelMeta:
    #: LightGBM threads the model was fitted with (its default for prediction)
    num_threads: int = 1
    #: boosting rounds kept (the early-stopped best iteration)
    best_iteration: int = 0
    #: LightGBM parameters beyond the defaults (a search's best, or given)
    lgb_params: dict[str, JsonScalar] = field(default_factory=dict)
    categorical_features: list[str] = field(default_factory=list)
    #: the feature configuration it was fitted with (`FeatureConfig.to_json()`)
    feature_config: dict[str, JsonScalar | list[str]] = field(default_factory=dict)
    #: the training target (`hit` or `violation`): which outcomes count in its as-of history
    target: str = "hit"
    #: the time windows it was fitted and validated on, "[start, end)" in UTC
    train_window: str = ""
    valid_window: str = ""
    #: held out of fitting, early stopping and calibration; "" when none was
    test_window: str = ""
    #: the drift reference: binned features and scores of its training window (model/drift.py)
    reference: DriftReference | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ModelMeta:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]
