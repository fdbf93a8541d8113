"""A scoring request: raw contract rows in, one answer per row out, through the batch's own rules.

A client sends rows as `dataframe_records` (a list of objects) or `dataframe_split` (`columns` and `data`),
plain JSON values with ISO 8601 times. The rows are validated exactly as a manifest is
(`contract.validate.validate_frame`): a request with any bad row is refused whole (HTTP 400) with every
problem listed, each naming the row, its id, the column and the rule, so that a client fixes and resends
one request rather than reconciling partial answers. A valid request is scored, ranked within itself and
explained; every missing value in the answer is JSON `null`. A declaration id that the history already
holds with other content is a problem too (ids are unique across the history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from targeting.contract.io import RawTable
from targeting.contract.schema import DECLARATION_ID, DECLARATIONS, REJECT_REASON, SOURCE_ROW
from targeting.contract.validate import validate_frame
from targeting.errors import TargetingError
from targeting.model.scorer import Scorer

#: the request, as named in messages about it
REQUEST = Path("request")
#: the payload keys understood (MLflow's scoring protocol for tables)
FORMATS = ("dataframe_records", "dataframe_split")


@dataclass
class RequestError(Exception):
    """A request that cannot be scored: the HTTP status, one message, and the problem of each bad row."""

    message: str
    status: int = 400
    problems: list[dict[str, object]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def rows_of(payload: object) -> pd.DataFrame:
    """The payload's rows as a frame of raw values (not yet typed); a malformed payload is a RequestError."""
    if not isinstance(payload, dict) or len([k for k in FORMATS if k in payload]) != 1:
        keys = ", ".join(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__
        raise RequestError(f"send the rows as exactly one of {' or '.join(FORMATS)} (got {keys})")
    if "dataframe_records" in payload:
        records = payload["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise RequestError("dataframe_records must be a list of objects, one per declaration")
        return pd.DataFrame.from_records(records)
    split = payload["dataframe_split"]
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list):  # fmt: skip
        raise RequestError("dataframe_split must be an object with `columns` (a list) and `data` (a list of rows)")
    columns = split["columns"]
    data = split["data"]
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise RequestError("dataframe_split: `columns` must be distinct names")
    if not all(isinstance(row, list) and len(row) == len(columns) for row in data):
        raise RequestError(f"dataframe_split: every row of `data` must be a list of {len(columns)} values")
    return pd.DataFrame(data, columns=columns, dtype=object)


def answer(scorer: Scorer, rows: pd.DataFrame) -> pd.DataFrame:
    """Per row, in the request's order: declaration id, calibrated risk, rank within the request (1 = riskiest)
    and the top reasons. Bad rows refuse the whole request (see the module docstring)."""
    if len(rows) == 0:
        raise RequestError("the request's inputs hold no rows: send at least one declaration")
    try:
        result = validate_frame(RawTable(rows.reset_index(drop=True), REQUEST, "json"), DECLARATIONS)
    except TargetingError as exc:  # a missing required column, a whole column of the wrong kind
        raise RequestError(str(exc)) from None
    problems = [{"row": int(r[SOURCE_ROW]), DECLARATION_ID: _plain(r.get(DECLARATION_ID)),
                 "reason": str(r[REJECT_REASON])} for _, r in result.rejects.iterrows()]  # fmt: skip
    conflicts = scorer.history.conflicts(result.valid)
    problems += [{"row": int(result.valid_pos[i]) + 1, DECLARATION_ID: str(result.valid[DECLARATION_ID].iloc[i]),
                  "reason": reason} for i, reason in conflicts.items()]  # fmt: skip
    if problems:
        problems.sort(key=lambda p: int(p["row"]))  # type: ignore[call-overload]
        listed = "; ".join(f"row {p['row']} ({p[DECLARATION_ID]}): {p['reason']}" for p in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise RequestError(f"{len(problems)} of {len(rows)} rows break the data contract: {listed}{more}",
                           problems=problems)  # fmt: skip
    valid = result.valid
    scored = scorer.score_rows(valid)
    rank = pd.Series(scored.risk_score).rank(ascending=False, method="first").astype(np.int64).to_numpy()
    reasons = scorer.explain(scored, every_group=False).reasons
    out = pd.DataFrame({"declaration_id": valid["declaration_id"].astype(str).to_numpy(),
                        "risk_score": scored.risk_score, "risk_rank": rank})  # fmt: skip
    return pd.concat([out, reasons.reset_index(drop=True)], axis=1)


def with_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """The answer with None wherever a value is missing (each such column as objects): serialised as JSON
    `null`, where a float NaN would make the response invalid JSON."""
    out = frame.copy()
    for column in out.columns:
        if out[column].isna().any():
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def json_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The answer as JSON-ready records: plain Python values, None wherever a value is missing (JSON has
    no NaN)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def request_rows(declarations: pd.DataFrame) -> pd.DataFrame:
    """Contract rows as a REST client sends them: plain values, ISO 8601 times, None for missing."""
    rows = declarations.astype(
        {c: "object" for c in declarations.columns if str(declarations[c].dtype) != "float64"}
    )
    return rows.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                    else (v.isoformat() if hasattr(v, "isoformat") else v))  # fmt: skip
