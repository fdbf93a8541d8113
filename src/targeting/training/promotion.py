"""Honest promotion (architecture decision 9): would the challenger find more than the champion, judged on
days neither of them saw, at the inspection budget, by an estimate that does not favour the incumbent?

- The evidence window is the challenger's test window: the most recent labelled days, held out when it
  was trained (no fit, early stopping or calibration on them). A model whose training or validation
  windows reach into it is not compared on it (the comparison is refused, not bent).
- Each model selects, per day and mode, its budget of that day's declarations (every declaration, not
  only the inspected ones), as the daily job would.
- Hits are estimated by inverse propensity weighting: an inspected row counts `label / propensity`,
  where the propensity is its recorded probability of selection. Rows the incumbent chose were inspected
  with propensity 1; rows only the challenger would choose are known through the explored ones (weighted
  1 / their small propensity), so neither model is favoured for having chosen the inspections. Rows
  without a recorded propensity count as 1 (the estimate is then the observed count).
- The difference (challenger - champion, estimated hits in the window) gets a bootstrap interval over
  days; the challenger is promoted only when the interval's lower bound at `confidence` is above zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from targeting.config import BOOTSTRAP_SAMPLES, MIN_PROPENSITY, PROMOTION_CONFIDENCE
from targeting.metrics import select_top_per_group
from targeting.model.meta import ModelMeta
from targeting.scoring.decisions import Budget
from targeting.training.splits import Window, utc


@dataclass
class Evidence:
    """The comparison of two models on one window, as logged with the promotion."""

    window: str
    table: pd.DataFrame  # per model and slice (each mode, ALL): selected, inspected, hits, estimated hits
    difference: float  # estimated hits, challenger - champion (all modes)
    interval: tuple[float, float]  # two-sided bootstrap interval of the difference at `confidence`
    lower_bound: float  # one-sided lower bound at `confidence`
    confidence: float
    promote: bool
    reason: str
    #: Jaccard overlap of the two models' selections in the window (how much a promotion changes the list)
    overlap: float = np.nan

    @classmethod
    def uncompared(cls, window: str, table: pd.DataFrame, confidence: float, promote: bool, reason: str) -> Evidence:
        """A decision taken without comparing the two models (no champion yet, or a comparison refused)."""
        return cls(window, table, np.nan, (np.nan, np.nan), np.nan, confidence, promote, reason)


def window_of(text: str) -> Window | None:
    """A model's recorded "[start, end)" window (None when it records none)."""
    if not text:
        return None
    start, end = text.strip("[)").split(", ")
    return Window(None if start == "-inf" else utc(start), utc(end))


def saw(windows: list[str], window: Window) -> bool:
    """Whether any of a model's recorded fitting windows overlaps `window` (which has a start)."""
    for text in windows:
        used = window_of(text)
        if used is not None and used.end > window.start and (used.start is None or used.start < window.end):
            return True
    return False


def selections(rows: pd.DataFrame, scores: np.ndarray, budgets: dict[str, Budget]) -> np.ndarray:
    """Which rows a model with these scores selects: per UTC day and mode, its budget's top rows by score
    (ties by declaration id), as the daily job selects."""
    chosen = np.zeros(len(rows), bool)
    day = rows["filed_at"].dt.tz_convert("UTC").dt.floor("D").astype("int64").to_numpy()
    mode = rows["mode"].astype(str).to_numpy()
    for m, budget in budgets.items():
        mine = np.flatnonzero(mode == m)
        if not len(mine):
            continue
        if budget.percent:
            chosen[mine] = select_top_per_group(scores[mine], rows["declaration_id"].to_numpy()[mine], day[mine],
                                                budget.value)  # fmt: skip
        else:
            for d in np.unique(day[mine]):
                rows_d = mine[day[mine] == d]
                order = np.lexsort((rows["declaration_id"].to_numpy()[rows_d].astype(str), -scores[rows_d]))
                chosen[rows_d[order[: budget.capacity(len(rows_d))]]] = True
    return chosen


def weights(rows: pd.DataFrame) -> np.ndarray:
    """Each row's inverse-propensity weighted hit: label / propensity for inspected rows, 0 otherwise."""
    label = rows["label"].to_numpy(dtype=float)
    inspected = ~np.isnan(label)
    p = rows["selection_propensity"].to_numpy(dtype=float) if "selection_propensity" in rows else np.ones(len(rows))
    p = np.where(np.isnan(p), 1.0, np.clip(p, MIN_PROPENSITY, 1.0))
    return np.where(inspected, np.nan_to_num(label) / p, 0.0)


def compare(rows: pd.DataFrame, challenger: np.ndarray, champion: np.ndarray | None, budgets: dict[str, Budget],
            window: str, confidence: float = PROMOTION_CONFIDENCE, samples: int = BOOTSTRAP_SAMPLES,
            seed: int = 0) -> Evidence:  # fmt: skip
    """The evidence on `rows` (every declaration of the window: `filed_at`, `mode`, `declaration_id`,
    `label` NaN where not inspected, `selection_propensity`) for the two models' scores."""
    w = weights(rows)
    label = rows["label"].to_numpy(dtype=float)
    inspected = ~np.isnan(label)
    mode = rows["mode"].astype(str).to_numpy()
    chosen = {"challenger": selections(rows, challenger, budgets)}
    if champion is not None:
        chosen["champion"] = selections(rows, champion, budgets)
    records = []
    for name, sel in chosen.items():
        for slice_name, mask in [*((m, mode == m) for m in sorted(set(mode))), ("ALL", np.ones(len(rows), bool))]:
            total = float(w[mask].sum())
            found = float(w[mask & sel].sum())
            records.append({"model": name, "slice": slice_name, "declarations": int(mask.sum()),
                            "selected": int((mask & sel).sum()), "inspected_selected": int((mask & sel & inspected).sum()),
                            "hits_observed": int(np.nansum(label[mask & sel])), "hits_estimated": found,
                            "recall_estimated": found / total if total > 0 else np.nan,
                            "precision_estimated": found / max(1, int((mask & sel).sum()))})  # fmt: skip
    table = pd.DataFrame(records)
    if champion is None:
        return Evidence.uncompared(window, table, confidence, True, "no champion yet")
    gain = w * (chosen["challenger"].astype(float) - chosen["champion"].astype(float))
    day = rows["filed_at"].dt.tz_convert("UTC").dt.floor("D").astype("int64").to_numpy()
    days, day_code = np.unique(day, return_inverse=True)
    per_day = np.bincount(day_code, weights=gain, minlength=len(days))
    rng = np.random.default_rng(seed)
    draws = per_day[rng.integers(0, len(days), size=(samples, len(days)))].sum(axis=1)
    difference = float(per_day.sum())
    lower = float(np.quantile(draws, 1 - confidence))
    interval = (float(np.quantile(draws, (1 - confidence) / 2)), float(np.quantile(draws, 1 - (1 - confidence) / 2)))
    promote = lower > 0
    reason = (f"the challenger finds {difference:+.1f} estimated hits in the window, lower bound {lower:+.1f} at "
              f"{confidence:.0%}: " + ("better" if promote else "not shown better"))  # fmt: skip
    both = int((chosen["challenger"] & chosen["champion"]).sum())
    either = int((chosen["challenger"] | chosen["champion"]).sum())
    overlap = both / either if either else np.nan
    return Evidence(window, table, difference, interval, lower, confidence, promote, reason, overlap)


class Judged(Protocol):
    """What promotion needs of a model: its scores for annotated rows and the windows it records."""

    meta: ModelMeta

    def predict_annotated(self, annotated: pd.DataFrame) -> np.ndarray: ...


def judge(challenger: Judged, champion: Judged | None, rows: pd.DataFrame, budgets: dict[str, Budget],
          confidence: float = PROMOTION_CONFIDENCE, seed: int = 0) -> Evidence:  # fmt: skip
    """The evidence for promoting `challenger` over `champion` on the challenger's test window; `rows`: every
    declaration of that window with its as-of history, `label` (NaN where not inspected) and
    `selection_propensity`. Refused (not promoted, with the reason) when the challenger holds out no
    test window, a model was fitted on days of it, or the window has no inspected declaration yet. The
    first model (no champion) is promoted: there is nothing to compare it with."""
    text = challenger.meta.test_window
    window = window_of(text)
    empty = pd.DataFrame()
    if champion is None and (window is None or not len(rows)):
        return Evidence.uncompared(text, empty, confidence, True, "no champion yet")
    if window is None:
        return Evidence.uncompared("", empty, confidence, False,
                                   "the challenger holds out no test window (trained with --test-days 0)")
    for name, model in (("challenger", challenger), ("champion", champion)):
        if model is not None and saw([model.meta.train_window, model.meta.valid_window], window):
            return Evidence.uncompared(text, empty, confidence, False,
                                       f"the {name} was fitted on days of the window {text}: no honest comparison")
    rows = rows[window.mask(rows["filed_at"])].reset_index(drop=True)
    if champion is not None and not rows["label"].notna().any():
        return Evidence.uncompared(text, empty, confidence, False, f"no inspected declaration in the test window {text} yet")
    new = challenger.predict_annotated(rows) if len(rows) else np.zeros(0)
    old = champion.predict_annotated(rows) if champion is not None and len(rows) else None
    return compare(rows, new, old, budgets, text, confidence, seed=seed)
