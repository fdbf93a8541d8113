"""The served model's seams: models logged by earlier layouts still load, and the pyfunc class is the one
MLflow's models-from-code entry file builds."""

from __future__ import annotations

import runpy

import targeting.serving
from targeting.serving.pyfunc import ENTRY_FILE, TargetingPyfunc


def test_models_logged_before_the_serving_package_find_their_pyfunc_where_they_import_it() -> None:
    # the entry file of a model logged by an earlier layout reads `from targeting.serving import TargetingPyfunc`
    assert targeting.serving.TargetingPyfunc is TargetingPyfunc


def test_the_entry_file_builds_a_targeting_pyfunc(monkeypatch) -> None:
    import mlflow

    built = []
    monkeypatch.setattr(mlflow.models, "set_model", built.append)
    runpy.run_path(str(ENTRY_FILE))
    assert len(built) == 1 and isinstance(built[0], TargetingPyfunc)
