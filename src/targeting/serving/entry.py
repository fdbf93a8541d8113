"""Models-from-code entry point: MLflow runs this file to build the pyfunc (no pickled object)."""

import mlflow

from targeting.serving.pyfunc import TargetingPyfunc

mlflow.models.set_model(TargetingPyfunc())
