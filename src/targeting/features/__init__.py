"""sklearn-compatible feature transformers and `build_features` (no I/O, no MLflow)."""

from targeting.features.build import FEATURE_STATE_VERSION, FeatureConfig, build_features

__all__ = ["FEATURE_STATE_VERSION", "FeatureConfig", "build_features"]
