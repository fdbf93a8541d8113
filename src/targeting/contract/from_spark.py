"""Rows as Spark hands them to Python -> the contract's dtypes, by the contract's own typing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from targeting.contract.io import RawTable
from targeting.contract.schema import Table
from targeting.contract.validate import validate_frame


def utc_timestamps(pdf: pd.DataFrame, table: Table) -> pd.DataFrame:
    """`pdf` with `table`'s timestamp columns that Spark handed over naive (its session is in UTC) marked
    UTC, in place."""
    for c in table.of_kind("timestamp"):
        if c in pdf and getattr(pdf[c].dt, "tz", None) is None:
            pdf[c] = pdf[c].dt.tz_localize("UTC")
    return pdf


def contract_typed(pdf: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Rows of `table` read by Spark (naive UTC timestamps, text as objects) in the contract's dtypes, as
    the pandas engine reads them. They were validated before they were stored: a rejected row is a bug."""
    pdf = utc_timestamps(pdf.reset_index(drop=True), table)
    result = validate_frame(RawTable(pdf, Path("spark"), "spark"), table)
    if result.n_rejected:
        raise AssertionError(f"a stored row was rejected when read back from Spark: {result.rejects.iloc[0].to_dict()}")
    return result.valid
