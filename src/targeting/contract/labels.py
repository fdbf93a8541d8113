"""Inspections -> training labels. Only inspected declarations have a label; "not inspected" is unknown."""

from __future__ import annotations

import pandas as pd

from targeting.config import Target
from targeting.contract.schema import DECLARATION_ID, EXAM_AT, HIT_RESULTS, RESULT, RESULTS
from targeting.errors import ConfigError

POSITIVE_RESULTS: dict[Target, tuple[str, ...]] = {
    Target.HIT: HIT_RESULTS,
    Target.VIOLATION: tuple(r for r in RESULTS if r != "NO_FINDING"),
}


def parse_target(value: str | Target) -> Target:
    try:
        return Target(value)
    except ValueError:
        raise ConfigError(
            f"--target: must be one of {', '.join(t.value for t in Target)}, got {value!r}"
        ) from None


def positive(result: pd.Series, target: Target | str = Target.HIT) -> pd.Series:
    """True where an inspection result counts as a positive for `target`."""
    return result.isin(POSITIVE_RESULTS[parse_target(target)])


def labels(inspections: pd.DataFrame, target: Target | str = Target.HIT) -> pd.DataFrame:
    """One label per inspected declaration: positive if any of its inspections found the target.

    The label becomes known at the first `exam_at` that found it (or the last exam if none did), which
    is when it may be used as history for later declarations.
    """
    pos = positive(inspections[RESULT], target)
    frame = pd.DataFrame(
        {DECLARATION_ID: inspections[DECLARATION_ID], "label": pos, EXAM_AT: inspections[EXAM_AT]}
    )
    grouped = frame.groupby(DECLARATION_ID, sort=False)
    out = grouped["label"].any().to_frame()
    first_hit = frame[frame["label"]].groupby(DECLARATION_ID)[EXAM_AT].min()
    last_exam = grouped[EXAM_AT].max()
    out["known_at"] = first_hit.reindex(out.index).fillna(last_exam)
    return out.reset_index()
