"""Decisions within each mode's daily budget, keeping an exploration share (decision 3).

Decisions per mode, with N declarations and a capacity of k inspections (a % of N or a count):
- `INSPECT`: the top k - e by risk (ties by `declaration_id`, as in evaluation.md);
- `EXPLORE`: e rows drawn uniformly at random from the rest, e = k x explore share, rounded at random
  (up with probability equal to the fraction) so that its expectation is exact even for small modes;
- `RELEASE`: everything else.
`selection_propensity` records each row's probability of selection under this policy (1 for INSPECT,
E[e] / |rest| for every other row), so that outcomes of explored rows can be re-weighted (decision 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from targeting.contract.io import text_series
from targeting.contract.schema import MODES
from targeting.errors import ConfigError
from targeting.metrics import n_selected, ranking_order


@dataclass(frozen=True)
class Budget:
    """A mode's daily inspection capacity: a percentage of its declarations or a count."""

    value: float
    percent: bool

    def capacity(self, n: int) -> int:
        if self.value <= 0 or n == 0:
            return 0
        return n_selected(self.value, n) if self.percent else min(int(self.value), n)

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)}"


def parse_budgets(text: str) -> dict[str, Budget]:
    """`SEA=2%,AIR=1%,POST=300` -> per-mode budgets; one clear error for a bad part."""
    out: dict[str, Budget] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        m = re.fullmatch(r"([A-Za-z]+)\s*=\s*([0-9]*\.?[0-9]+)\s*(%?)", part)
        if not m:
            raise ConfigError(f"--budget: {part!r} is not MODE=PERCENT% or MODE=COUNT (e.g. SEA=2%,POST=300)")
        mode, value, pct = m.group(1).upper(), float(m.group(2)), m.group(3) == "%"
        if mode not in MODES:
            raise ConfigError(f"--budget: unknown mode {mode!r}; modes are {', '.join(MODES)}")
        if pct and value > 100:
            raise ConfigError(f"--budget: {part!r} is more than 100 %")
        if not pct and value != int(value):
            raise ConfigError(f"--budget: {part!r}: a count must be a whole number")
        out[mode] = Budget(value, pct)
    if not out:
        raise ConfigError("--budget: no budget given (e.g. SEA=2%,AIR=1%,POST=0.5%,EXPRESS=0.5%)")
    return out


def format_budgets(budgets: dict[str, Budget]) -> str:
    """The inverse of `parse_budgets`: `SEA=2%,POST=300`."""
    return ",".join(f"{mode}={budget}" for mode, budget in budgets.items())


def parse_share(text: str) -> float:
    """`10%` or `0.1` -> 0.1."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
    except ValueError:
        raise ConfigError(f"--explore: {text!r} is not a share such as 10% or 0.1") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"--explore: {text!r} must be between 0 and 100 %")
    return value


#: decision codes of `_decisions` (0 is the default: released)
DECISIONS = ("RELEASE", "INSPECT", "EXPLORE")


def decide(frame: pd.DataFrame, budgets: dict[str, Budget], explore: float,
           rng: np.random.Generator) -> pd.DataFrame:  # fmt: skip
    """`decision` and `selection_propensity` for rows with declaration_id, mode, risk_score (index kept)."""
    codes, modes = pd.factorize(frame["mode"].astype(str), sort=True)
    order = ranking_order(frame["risk_score"].to_numpy(dtype=float), frame["declaration_id"])
    decision, propensity = _decisions(codes, list(modes), order, budgets, explore, rng)
    return pd.DataFrame({"decision": np.asarray(DECISIONS, dtype=object)[decision],
                         "selection_propensity": propensity}, index=frame.index)  # fmt: skip


def _decisions(mode_codes: np.ndarray, modes: list[str], order: np.ndarray, budgets: dict[str, Budget],
               explore: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Decision codes (DECISIONS) and selection propensities by row position, given the batch's ranking
    `order`: a mode's own ranking is the batch's with the other modes left out, so one sort serves all."""
    decision = np.zeros(len(mode_codes), np.int8)
    propensity = np.zeros(len(mode_codes))
    ranked_codes = mode_codes[order]
    for code, mode in enumerate(modes):
        ranked = order[ranked_codes == code]
        k = budgets[mode].capacity(len(ranked)) if mode in budgets else 0
        expected_explore = k * explore
        e = int(np.floor(expected_explore + rng.random())) if k else 0
        top, rest = ranked[: k - e], ranked[k - e :]
        decision[top] = DECISIONS.index("INSPECT")
        propensity[top] = 1.0
        if len(rest):
            picked = rest[rng.choice(len(rest), size=min(e, len(rest)), replace=False)] if e else rest[:0]
            decision[picked] = DECISIONS.index("EXPLORE")
            propensity[rest] = min(1.0, expected_explore / len(rest))
    return decision, propensity


def rank_and_decide(rows: pd.DataFrame, risk: np.ndarray, budgets: dict[str, Budget], explore: float,
                    seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame]:  # fmt: skip
    """The decisions, built in ranking order: the frame (declaration_id, mode, risk_score, decision,
    selection_propensity, risk_rank), `order` (frame row i is input row order[i]), the frame positions
    of the selected rows and the count of each decision per mode (`summarise`'s, from the codes at hand
    rather than by grouping a million strings again). Built ranked, the table is never reordered."""
    risk = np.asarray(risk, dtype=float)
    ids = rows["declaration_id"].astype("str")
    order = ranking_order(risk, ids)
    codes, modes = pd.factorize(rows["mode"].astype("str"), sort=True)
    decision, propensity = _decisions(
        codes, list(modes), order, budgets, explore, np.random.default_rng(seed)
    )
    ranked_decision = decision[order]
    frame = pd.DataFrame({
        "declaration_id": ids.array.take(order),
        "mode": text_series(pa.array(list(modes), pa.large_string()).take(codes[order])),
        "risk_score": risk[order],
        "decision": text_series(pa.array(DECISIONS, pa.large_string()).take(ranked_decision)),
        "selection_propensity": propensity[order],
        "risk_rank": np.arange(1, len(order) + 1, dtype=np.int64),
    })  # fmt: skip
    counts = np.bincount(
        codes.astype(np.int64) * len(DECISIONS) + decision, minlength=len(modes) * len(DECISIONS)
    )
    per_mode = pd.DataFrame(
        counts.reshape(len(modes), len(DECISIONS)), index=list(modes), columns=list(DECISIONS)
    )
    return frame, order, np.flatnonzero(ranked_decision), per_mode


