"""Half-open, timezone-aware time windows: train on the past, validate on the next window (decision 7)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from targeting.config import VALID_DAYS
from targeting.errors import ConfigError


def utc(value: str | pd.Timestamp) -> pd.Timestamp:
    """A timestamp in UTC; a date or naive time is read as UTC midnight / UTC time."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"not a date or timestamp: {value!r}") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass(frozen=True)
class Window:
    """[start, end): `start` None means from the beginning of the data."""

    start: pd.Timestamp | None
    end: pd.Timestamp

    def mask(self, filed_at: pd.Series) -> pd.Series:
        inside = filed_at < self.end
        return inside & (filed_at >= self.start) if self.start is not None else inside

    def __str__(self) -> str:
        start = self.start.isoformat() if self.start is not None else "-inf"
        return f"[{start}, {self.end.isoformat()})"


@dataclass(frozen=True)
class TimeSplit:
    train: Window
    valid: Window
    #: held out from fitting, early stopping and calibration: what `promote` judges the model on
    test: Window | None = None


def time_split(train_end: str | None, valid_end: str | None, train_start: str | None = None,
               filed_at: pd.Series | None = None, valid_days: int = VALID_DAYS, test_days: int = 0) -> TimeSplit:  # fmt: skip
    """Train on [train_start, train_end), validate on [train_end, valid_end), and hold out the `test_days`
    days after it as the test window. Without `valid_end` the test window (or, without one, the
    validation window) ends with the last day of `filed_at` (midnight after it); without `train_end` the
    validation window is the `valid_days` days before its end."""
    start = utc(train_start) if train_start else None
    if test_days < 0:
        raise ConfigError(f"--test-days: must be >= 0, got {test_days}")
    if valid_end:
        v_end = utc(valid_end)
    elif filed_at is not None and len(filed_at):
        v_end = filed_at.max().tz_convert("UTC").floor("D") + pd.Timedelta(days=1 - test_days)
    else:
        raise ConfigError("--valid-end: no end of the validation window given, and no data to take it from")
    t_end = utc(train_end) if train_end else v_end - pd.Timedelta(days=valid_days)
    if start is not None and start >= t_end:
        raise ConfigError(f"--train-start {start.date()} must be before --train-end {t_end.date()}")
    if t_end >= v_end:
        raise ConfigError(f"--train-end {t_end.date()} must be before --valid-end {v_end.date()}")
    test = Window(v_end, v_end + pd.Timedelta(days=test_days)) if test_days else None
    return TimeSplit(Window(start, t_end), Window(t_end, v_end), test)
