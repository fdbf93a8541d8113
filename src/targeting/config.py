"""Frozen configuration dataclasses: the only home of defaults."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Target(StrEnum):
    """What counts as a positive label on an inspected declaration."""

    HIT = "hit"  # result in {DRUG, PRECURSOR}: the default for drug targeting
    VIOLATION = "violation"  # any finding (DRUG, PRECURSOR, OTHER_VIOLATION): the KCS duty-fraud label


@dataclass(frozen=True)
class KcsConfig:
    """How the public KCS declarations map onto the contract (see adapters/kcs.py for the reasons)."""

    #: KRW per USD, fixed: the Bank of Korea's 2020 average rate (1,180.1), the year of the train file.
    krw_per_usd: float = 1180.1
    #: days between filing and the inspection outcome; KCS gives only the declaration date.
    exam_lag_days: int = 1
    #: Net Mass is reported to 0.1 kg; 0.0 means "below 0.05 kg" and the contract needs weight > 0.
    zero_mass_kg: float = 0.05
    id_prefix: str = "KCS"
