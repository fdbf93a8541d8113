"""Row-accounted validation of a table against the data contract.

Every input row ends in exactly one of two places: the valid rows (typed to the contract) or the
rejects (the row as read, plus `reject_reason` naming each failing column and its rule). File-level
problems (missing required column, empty file, a whole column of the wrong type) raise a
`TargetingError` instead and nothing is returned.

Typing is done here (so a bad cell becomes a reject, not a crash); value rules are checked with
pandera, built from the descriptions in `schema.py`.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from targeting.contract.io import REPLACEMENT_CHAR, RawTable, strictly_ascending
from targeting.contract.schema import (
    DECLARATION_ID,
    EXAM_AT,
    FILED_AT,
    MODE,
    REJECT_REASON,
    SOURCE_ROW,
    Column,
    Kind,
    Table,
    country_codes,
    time_range,
)
from targeting.errors import InputFileError, SchemaError

#: pandera imports pyspark.pandas when pyspark (the optional Spark engine) is installed, and that warns on
#: every command that pandas 3 is not fully supported: nothing here uses pandas-on-Spark
_PYSPARK_PANDAS_WARNING = "PySpark does not yet fully support"
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", _PYSPARK_PANDAS_WARNING, FutureWarning)
    import pandera.pandas as pa

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
#: a time of day followed by a zone designator ("Z" or an offset); a bare date has none
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass
class ValidationResult:
    """The outcome of validating one table: valid rows, rejected rows, and the counts that add up."""

    table: str
    valid: pd.DataFrame
    rejects: pd.DataFrame
    n_read: int
    raw: pd.DataFrame  # the rows as read, for building rejects later
    valid_pos: np.ndarray  # position in `raw` of each valid row

    @property
    def n_valid(self) -> int:
        return len(self.valid)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)

    def reason_counts(self) -> pd.Series:
        """How many rows failed each rule (a row failing two rules counts under both)."""
        if self.rejects.empty:
            return pd.Series(dtype="int64", name="rows")
        reasons = self.rejects[REJECT_REASON].str.split("; ").explode()
        return reasons.value_counts().rename("rows")


class _Problems:
    """Collects (row position, reason) pairs; a row with any reason is rejected."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._rows: list[np.ndarray] = []
        self._reasons: list[np.ndarray] = []
        #: column -> rows whose cell could not be typed (their "must not be empty" would be noise)
        self.untyped: dict[str, np.ndarray] = {}

    def add_untyped(self, column: str, mask: np.ndarray | pd.Series, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        prev = self.untyped.get(column)
        self.untyped[column] = mask if prev is None else (prev | mask)
        self.add(mask, reason)

    def add(self, mask: np.ndarray | pd.Series, reason: str) -> None:
        pos = np.flatnonzero(np.asarray(mask, dtype=bool))
        if pos.size:
            self._rows.append(pos)
            self._reasons.append(np.full(pos.size, reason, dtype=object))

    def add_positions(self, positions: np.ndarray, reason: str) -> None:
        mask = np.zeros(self.n, dtype=bool)
        mask[positions] = True
        self.add(mask, reason)

    def by_row(self) -> pd.Series:
        """Reason text per rejected row position, in the order the rules were checked."""
        if not self._rows:
            return pd.Series(dtype="str")
        pairs = pd.DataFrame({"row": np.concatenate(self._rows), "reason": np.concatenate(self._reasons)})
        pairs = pairs.drop_duplicates()
        return pairs.groupby("row", sort=True)["reason"].agg("; ".join)


# ---- typing --------------------------------------------------------------------------------------


def _as_text(s: pd.Series) -> pd.Series:
    """Non-null values as strings (integers lose nothing; floats that are whole print without .0)."""
    if pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
        return s.astype("str")
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.dropna()
        if (whole == np.floor(whole)).all():
            return s.astype("Int64").astype("str")
    return s.astype("str")  # each value's str(), missing values (None, NaN, NA) stay missing


def _coerce(s: pd.Series, col: Column, problems: _Problems) -> pd.Series:
    """Type one column to the contract; cells that cannot be typed become null plus a reject reason."""
    kind = col.kind
    name = col.name
    if kind in (Kind.STRING, Kind.CATEGORY):
        return _as_text(s)
    if kind == Kind.TIMESTAMP:
        return _in_time_range(_coerce_timestamp(s, name, problems), name, problems)
    if kind == Kind.DATE:
        if s.dtype == col.dtype:
            return _in_time_range(s, name, problems)
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = s.dt.normalize()
        else:
            text = _as_text(s)
            s = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
            problems.add_untyped(name, text.notna() & s.isna(), f"{name}: not a date (YYYY-MM-DD)")
        return _in_time_range(s.astype(col.dtype), name, problems)
    if kind in (Kind.INT, Kind.FLOAT):
        if pd.api.types.is_bool_dtype(s.dtype):
            raise SchemaError(f"{name}: column holds true/false values, the contract requires a number")
        num = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_numeric_dtype(s.dtype) else s
        num = num.astype("float64")
        present = s.notna().to_numpy()
        values = num.to_numpy()
        finite = np.isfinite(values)
        problems.add_untyped(name, present & np.isnan(values), f"{name}: not a number")
        problems.add_untyped(name, present & np.isinf(values), f"{name}: not a finite number")
        num = num.where(finite)
        if kind == Kind.INT:
            frac = finite & (num.to_numpy() != np.floor(num.fillna(0).to_numpy()))
            problems.add_untyped(name, frac, f"{name}: not a whole number")
            num = num.where(~frac)
            return num.round().astype("Int64")
        return num
    if kind == Kind.BOOL:
        if pd.api.types.is_bool_dtype(s.dtype):
            return s.astype("boolean")
        text = _as_text(s).str.strip().str.lower()
        out = pd.Series(pd.NA, index=s.index, dtype="boolean")
        out[text.isin(_TRUE).to_numpy()] = True
        out[text.isin(_FALSE).to_numpy()] = False
        problems.add_untyped(name, text.notna() & out.isna(), f"{name}: not true/false")
        return out
    raise AssertionError(kind)  # pragma: no cover - every Kind is handled above


def _in_time_range(values: pd.Series, name: str, problems: _Problems) -> pd.Series:
    """Times (or dates) outside the contract's plausible range are rejects, and missing from the typed
    column (`schema.time_range`)."""
    start, end = time_range()
    if isinstance(values.dtype, pd.ArrowDtype):  # dates: compared as Arrow dates
        days = values.array.__arrow_array__()
        below = pc.less(days, pyarrow.scalar(start.date(), days.type))
        above = pc.greater(days, pyarrow.scalar(end.date(), days.type))
        outside = pc.fill_null(pc.or_(below, above), False).to_numpy(zero_copy_only=False)
    else:  # UTC times: compared as microseconds (NaT compares false)
        micros = values.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        outside = (micros < start.tz_convert(None).to_datetime64()) | (micros > end.tz_convert(None).to_datetime64())
    if outside.any():
        problems.add_untyped(name, outside, f"{name}: outside {start:%Y-%m-%d} .. {end:%Y-%m-%d} (UTC)")
        values = values.where(~outside)
    return values


def _coerce_timestamp(s: pd.Series, name: str, problems: _Problems) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if s.dt.tz is None:
            raise SchemaError(f"{name}: timestamps have no time zone; the contract requires UTC")
        return s.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    text = _as_text(s).str.strip()
    present = text.notna()
    has_tz = text.str.contains(_TZ_SUFFIX, regex=True).fillna(False).astype(bool)
    parsed = pd.to_datetime(text.where(has_tz), format="ISO8601", utc=True, errors="coerce")
    naive = present & ~has_tz
    if naive.any():  # tell "no time zone" apart from "not a timestamp at all"
        parses = pd.to_datetime(text.where(naive), format="ISO8601", errors="coerce").notna()
        problems.add_untyped(
            name,
            naive & parses,
            f"{name}: timestamp without time zone (must be UTC ISO-8601, e.g. 2024-03-02T08:15:00Z)",
        )
        problems.add_untyped(name, naive & ~parses, f"{name}: not an ISO-8601 timestamp")
    problems.add_untyped(name, present & has_tz & parsed.isna(), f"{name}: not an ISO-8601 timestamp")
    return parsed.astype("datetime64[us, UTC]")


# ---- rules ---------------------------------------------------------------------------------------


#: patterns with `\S`, which pandas runs through Python's `re` value by value (RE2 differs on some Unicode
#: whitespace), and an RE2 pattern that accepts a subset of their matches (printable ASCII): values it
#: accepts are done at Arrow speed, only the rest (non-ASCII, or failing) get Python's exact check
_ASCII_SUBSET = {r"\S(?:.*\S)?": r"[!-~](?:[ -~]*[!-~])?"}


#: up to this many values, a pattern is matched value by value with Python's `re` (the semantics pandas'
#: vectorised match keeps, where deciding how to run it costs more than a few values take)
_FEW_VALUES = 256


def _fullmatch(pattern: str):
    def check(s: pd.Series) -> pd.Series:
        if 0 < len(s) <= _FEW_VALUES:
            compiled = re.compile(pattern)
            return pd.Series([isinstance(v, str) and compiled.fullmatch(v) is not None for v in s.tolist()],
                             index=s.index, dtype=bool)  # fmt: skip  (missing: False, as pandas gives)
        if pattern not in _ASCII_SUBSET or not len(s):
            return s.str.fullmatch(pattern)
        result = s.str.fullmatch(_ASCII_SUBSET[pattern]).astype("boolean")
        doubt = (result != True).fillna(False).to_numpy(dtype=bool) & s.notna().to_numpy()  # noqa: E712
        if doubt.any():
            result[doubt] = s[doubt].str.fullmatch(pattern).astype("boolean").to_numpy()
        return result.fillna(False).astype(bool)

    return check


def _isin(allowed: Collection[str]):
    """Membership in a code list: value by value in a Python set for a few values (a request's rows),
    pandas' vectorised `isin` for many."""
    values = sorted(allowed)
    members = frozenset(values)

    def check(s: pd.Series) -> pd.Series:
        if 0 < len(s) <= _FEW_VALUES:
            return pd.Series([isinstance(v, str) and v in members for v in s.tolist()], index=s.index, dtype=bool)
        return s.isin(values)

    return check


def _checks(col: Column) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.allowed:
        checks.append(pa.Check(_isin(col.allowed), error=f"must be one of {', '.join(col.allowed)}"))
    if col.country:
        checks.append(pa.Check(_isin(country_codes()), error="must be an ISO 3166-1 alpha-2 country code"))
    if col.pattern:
        checks.append(pa.Check(_fullmatch(col.pattern), error=col.rule or f"must match {col.pattern}"))
    if col.min_value is not None:
        if col.min_inclusive:
            checks.append(pa.Check.ge(col.min_value, error=f"must be >= {col.min_value:g}"))
        else:
            checks.append(pa.Check.gt(col.min_value, error=f"must be > {col.min_value:g}"))
    if col.max_value is not None:
        if col.max_inclusive:
            checks.append(pa.Check.le(col.max_value, error=f"must be <= {col.max_value:g}"))
        else:
            checks.append(pa.Check.lt(col.max_value, error=f"must be < {col.max_value:g}"))
    if col.max_length is not None:
        checks.append(
            pa.Check.str_length(max_value=col.max_length, error=f"longer than {col.max_length} characters")
        )
    return checks


@functools.lru_cache(maxsize=64)
def _pandera_schema(table: Table, present: tuple[str, ...], by_value: frozenset[str] = frozenset(),
                    known_unique: frozenset[str] = frozenset()) -> pa.DataFrameSchema:  # fmt: skip
    """The rules of the `present` columns, per row; for the columns in `by_value` only their nullability
    (their value rules run on their distinct values, `_value_failures`); the columns in `known_unique` are
    not checked for repeats again. Built once per shape of input (a server meets the same shape often)."""
    columns = {}
    for col in table.columns:
        if col.name not in present:
            continue
        columns[col.name] = pa.Column(
            None,  # no type check: `_coerce` gives every column its contract dtype (a type failure had no row)
            checks=[] if col.name in by_value else _checks(col),
            nullable=not col.required,
            unique=col.unique and col.name not in known_unique,
            report_duplicates="exclude_first",
            coerce=False,
        )
    return pa.DataFrameSchema(columns, strict=False, coerce=False)


_PANDERA_BUILTIN = {"not_nullable": "must not be empty", "field_uniqueness": "duplicate of an earlier row"}


_backends_registered = False


def register_backends() -> None:
    """Have pandera register its pandas backends (once per process; it would on first use, importing
    pyspark.pandas again, which warns) under a filter for that warning. `warnings.catch_warnings` is
    process-wide state: while another thread also enters it (MLflow and requests imports do), either can
    lose its filter and a warning leaks. So a job that validates beside other threads calls this before
    it starts them, and validation itself touches the filters only the first time."""
    global _backends_registered
    if _backends_registered:
        return
    frame = pd.DataFrame({DECLARATION_ID: pd.Series([], dtype="str")})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _PYSPARK_PANDAS_WARNING, FutureWarning)
        pa.DataFrameSchema({DECLARATION_ID: pa.Column(str)}).validate(frame)
    _backends_registered = True


def _apply_rules(typed: pd.DataFrame, table: Table, problems: _Problems,
                 distinct: dict[str, tuple[Any, np.ndarray]] | None = None) -> None:  # fmt: skip
    """The contract's rules through pandera. The value rules of a column read with its distinct values
    (`RawTable.distinct`) are checked once per value and spread to its rows; either way each row's
    reasons come in table column order, as one pass over the rows gives them."""
    by_value = {
        c: found for c, found in (distinct or {}).items() if c in typed.columns and table.column(c).coded
    }
    register_backends()
    # a unique column that strictly ascends has no repeat: no hash check by pandera
    ascending = {c for c in typed.columns if table.column(c).unique and strictly_ascending(typed[c])}
    schema = _pandera_schema(table, tuple(typed.columns), frozenset(by_value), frozenset(ascending))
    failures = _failures(schema, typed)
    if by_value:
        failures += _value_failures(table, by_value)
    place = {name: i for i, name in enumerate(table.names)}
    failures.sort(key=lambda failure: place.get(failure[0], len(place)))  # stable: a column's own order kept
    for column, check, positions in failures:
        rule = _PANDERA_BUILTIN.get(check, check)
        if check == "not_nullable" and column in problems.untyped:
            positions = positions[~problems.untyped[column][positions]]
        problems.add_positions(positions, f"{column}: {rule}")


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(column, check, row positions) of each rule that some rows of `frame` break, in pandera's order."""
    try:
        schema.validate(frame, lazy=True, inplace=True)  # no coercion: the frame is only read, not copied
        return []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    cases = cases[cases["index"].notna()]
    return [(str(column), str(check), grp["index"].astype("int64").to_numpy())
            for (column, check), grp in cases.groupby(["column", "check"], sort=False)]  # fmt: skip


def _value_failures(
    table: Table, distinct: dict[str, tuple[Any, np.ndarray]]
) -> list[tuple[str, str, np.ndarray]]:
    """The value rules of code-list columns checked on their distinct values (one small frame, each
    column padded with missing values, which the rules skip), as the row positions that hold a bad value."""
    width = max(len(values) for values, _ in distinct.values())
    frame = pd.DataFrame({
        name: pd.Series(pd.arrays.ArrowStringArray(pyarrow.concat_arrays(
            [values.cast(pyarrow.large_string()), pyarrow.nulls(width - len(values), pyarrow.large_string())])),
            dtype="str")
        for name, (values, _) in distinct.items()
    })  # fmt: skip
    # no type check here: the frame is text by construction, and the rows' types are checked per row
    schema = pa.DataFrameSchema({name: pa.Column(None, checks=_checks(table.column(name)), nullable=True,
                                                 coerce=False) for name in distinct}, strict=False, coerce=False)  # fmt: skip
    out = []
    for column, check, bad_values in _failures(schema, frame):
        values, rows = distinct[column]
        bad = np.zeros(len(values) + 1, bool)  # the extra last slot is a missing value's (-1)
        bad[bad_values] = True
        out.append((column, check, np.flatnonzero(bad[rows])))
    return out


def _mode_rules(typed: pd.DataFrame, table: Table, problems: _Problems) -> None:
    if MODE not in typed.columns:
        return
    # the modes factorized once: a column's rule is then a lookup among a handful of codes, not a pass over
    # every row's mode per column
    codes, modes = pd.factorize(typed[MODE], use_na_sentinel=True)
    for col in table.columns:
        if col.modes is None or col.name not in typed.columns:
            continue
        other_mode = np.append(~np.isin(np.asarray(modes, dtype=object), list(col.modes)), False)[codes]
        wrong = typed[col.name].notna().to_numpy() & other_mode  # a missing mode (code -1) is never wrong
        problems.add(wrong, f"{col.name}: must be empty unless mode is {'/'.join(col.modes)}")


# ---- entry points --------------------------------------------------------------------------------


def validate_frame(raw: RawTable, table: Table) -> ValidationResult:
    """Validate a table as read; see the module docstring for the guarantees."""
    frame = raw.frame.reset_index(drop=True)
    where = f"{raw.path}"
    if len(frame.columns) == 0:
        raise InputFileError(f"{where}: no columns")
    missing = [c for c in table.required if c not in frame.columns]
    if missing:
        raise SchemaError(f"{where}: missing required column(s) {', '.join(missing)} for table {table.name}")
    if len(frame) == 0:
        raise InputFileError(f"{where}: no data rows (header only)")

    n = len(frame)
    problems = _Problems(n)
    for pos, reason in raw.row_errors.items():
        problems.add_positions(np.array([pos]), reason)

    # CSV cells are read as strings: an empty cell is a missing value, except that a required text
    # column that may be empty (goods_desc) keeps "".
    if raw.format == "csv":
        frame = frame.copy()
        for c in frame.columns:
            spec = _maybe_column(table, c)
            if spec is not None and spec.empty_ok:
                continue
            frame[c] = frame[c].mask(frame[c] == "")

    if raw.encoding_errors:
        for c in frame.columns:
            if pd.api.types.is_string_dtype(frame[c].dtype):
                bad = frame[c].str.contains(REPLACEMENT_CHAR, regex=False).fillna(False).to_numpy(dtype=bool)
                problems.add(bad, f"{c}: invalid UTF-8 bytes")

    typed = pd.DataFrame({col.name: _coerce(frame[col.name], col, problems) for col in table.columns
                          if col.name in frame.columns}, index=frame.index)  # fmt: skip
    _apply_rules(typed, table, problems, raw.distinct)
    _mode_rules(typed, table, problems)

    reasons = problems.by_row()
    bad_rows = reasons.index.to_numpy(dtype="int64")
    keep = np.ones(n, dtype=bool)
    keep[bad_rows] = False

    extras = [c for c in frame.columns if c not in table.names]
    for col in table.columns:  # absent optional columns become typed, all-null columns
        if col.name not in typed.columns:
            typed[col.name] = pd.Series(index=typed.index, dtype=col.dtype)
    valid = pd.concat([typed[list(table.names)], frame[extras]], axis=1)
    valid = valid if keep.all() else valid[keep].reset_index(drop=True)  # no copy when no row is rejected

    raw_frame = raw.frame.reset_index(drop=True)
    rejects = _rejects(raw_frame, bad_rows, reasons.to_numpy())
    assert len(valid) + len(rejects) == n, "row accounting broken"
    return ValidationResult(table.name, valid, rejects, n, raw_frame, np.flatnonzero(keep))


def _rejects(raw: pd.DataFrame, positions: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    """The rows as read at `positions`, with their 1-based source row number and reason."""
    out = raw.iloc[positions].copy()
    out.insert(0, SOURCE_ROW, positions + 1)
    out[REJECT_REASON] = reasons
    return out.reset_index(drop=True)


def _maybe_column(table: Table, name: str) -> Column | None:
    try:
        return table.column(name)
    except KeyError:
        return None


def check_inspections_against(result: ValidationResult, declarations: pd.DataFrame) -> ValidationResult:
    """Move inspections that reference no known declaration, or precede its filing, to the rejects."""
    valid = result.valid
    filed = declarations.set_index(DECLARATION_ID)[FILED_AT]
    filed_at = valid[DECLARATION_ID].map(filed)
    problems = _Problems(len(valid))
    problems.add(filed_at.isna().to_numpy(), f"{DECLARATION_ID}: references no known declaration")
    problems.add((valid[EXAM_AT] < filed_at).fillna(False).to_numpy(dtype=bool),
                 f"{EXAM_AT}: earlier than the declaration's filed_at")  # fmt: skip
    reasons = problems.by_row()
    if reasons.empty:
        return result
    bad = reasons.index.to_numpy(dtype="int64")
    keep = np.ones(len(valid), dtype=bool)
    keep[bad] = False
    moved = _rejects(result.raw, result.valid_pos[bad], reasons.to_numpy())
    rejects = pd.concat([result.rejects, moved], ignore_index=True).sort_values(SOURCE_ROW, kind="stable")
    return ValidationResult(
        result.table,
        valid[keep].reset_index(drop=True),
        rejects.reset_index(drop=True),
        result.n_read,
        result.raw,
        result.valid_pos[keep],
    )
