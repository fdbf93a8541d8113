"""Raw declaration rows as a REST client sends them, and back to contract dtypes.

A served model takes plain JSON values (ISO 8601 times, None for missing); the batch's rows become those
values for a logged input example and for Spark's executors, and `coerce_declarations` turns them back
into contract dtypes with one clear error for a missing column or an unreadable value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from targeting.contract.schema import DECLARATIONS


def request_rows(declarations: pd.DataFrame) -> pd.DataFrame:
    """Contract rows as a REST client sends them: plain values, ISO 8601 times, None for missing."""
    rows = declarations.astype(
        {c: "object" for c in declarations.columns if str(declarations[c].dtype) != "float64"}
    )
    return rows.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                    else (v.isoformat() if hasattr(v, "isoformat") else v))  # fmt: skip


def coerce_declarations(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw request rows to contract dtypes; a missing column or an unreadable value is one clear error."""
    missing = [c for c in DECLARATIONS.required if c not in frame.columns]
    if missing:
        raise MlflowException.invalid_parameter_value(f"missing required column(s): {', '.join(missing)}")
    if len(frame) == 0:
        raise MlflowException.invalid_parameter_value("no rows in the request")
    out = frame.copy()
    for spec in DECLARATIONS.columns:
        if spec.name not in out:
            out[spec.name] = None
        try:
            if spec.kind == "timestamp":
                out[spec.name] = pd.to_datetime(out[spec.name], utc=True, format="ISO8601")
            elif spec.kind == "date":
                out[spec.name] = pd.to_datetime(out[spec.name]).dt.date
            elif spec.kind in ("int", "float"):
                out[spec.name] = pd.to_numeric(out[spec.name], errors="raise")
            elif spec.kind == "bool":
                out[spec.name] = out[spec.name].astype("boolean")
        except (ValueError, TypeError) as exc:
            raise MlflowException.invalid_parameter_value(
                f"column {spec.name}: values must be {spec.kind} ({str(exc).splitlines()[0][:120]})"
            ) from None
    return out
