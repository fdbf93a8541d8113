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


def test_answers_carry_null_for_what_is_missing_never_nan() -> None:
    import json

    import numpy as np
    import pandas as pd

    from targeting.serving.requests import json_records, with_nulls

    frame = pd.DataFrame({"declaration_id": ["A", "B"], "risk_score": [0.5, 0.25], "risk_rank": [1, 2],
                          "reason_3": ["route", None], "reason_3_contribution": [0.1, np.nan]})  # fmt: skip
    records = json_records(frame)
    assert records[1]["reason_3"] is None and records[1]["reason_3_contribution"] is None
    assert isinstance(records[0]["risk_rank"], int) and json.loads(json.dumps(records, allow_nan=False))
    nulls = with_nulls(frame)
    assert nulls.loc[1, "reason_3_contribution"] is None and nulls["risk_score"].dtype == float
    assert json.loads(json.dumps(nulls.to_dict(orient="records"), allow_nan=False))


def test_malformed_payloads_are_request_errors_naming_what_to_send() -> None:
    import pytest

    from targeting.serving.requests import RequestError, rows_of

    for payload, message in [
        ([1, 2], "exactly one of dataframe_records or dataframe_split"),
        ({"dataframe_records": [1]}, "a list of objects"),
        ({"dataframe_split": {"columns": ["a", "a"], "data": []}}, "distinct names"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "a list of 1 values"),
        ({"dataframe_records": [], "dataframe_split": {}}, "exactly one of"),
    ]:
        with pytest.raises(RequestError, match=message):
            rows_of(payload)
    assert list(rows_of({"dataframe_split": {"columns": ["a"], "data": [[1], [None]]}})["a"]) == [1, None]
