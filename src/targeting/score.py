"""The daily batch: validate today's manifests, score them with the logged model, decide within each
mode's budget (keeping an exploration share), explain the selected rows, and account for every row.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from targeting.errors import ConfigError
from targeting.metrics import n_selected, ranking_order
from targeting.schema import MODES, N_REASONS, SCORES

DEFAULT_BUDGETS = "SEA=2%,AIR=1%,POST=0.5%,EXPRESS=0.5%"
DEFAULT_EXPLORE = "10%"


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


@dataclass
class ScoreResult:
    scores: pd.DataFrame  # the contract's `scores` (+ selection_propensity), in ranking order
    explanations: pd.DataFrame  # long: declaration_id, group, label, contribution, sentence
    expected_value: float  # TreeSHAP base value (log-odds)
    drift: pd.DataFrame  # column, psi, warning (empty when the model has no reference)
    summary: dict[str, Any] = field(default_factory=dict)
    # input row positions of INSPECT and EXPLORE, ascending (none for an empty batch)
    selected_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def score_batch(rows: pd.DataFrame, scorer: Any, model_uri: str, budgets: dict[str, Budget], explore: float,
                seed: int = 0, scored_at: pd.Timestamp | None = None,
                progress: Callable[[str], None] | None = None, prefetched: Any = None) -> ScoreResult:  # fmt: skip
    """Score contract-valid declarations with a `TargetingPyfunc` (its history store answers as-of; with
    the `PrefetchedCodes` of `rows` when the caller started their lookups)."""
    from targeting.drift import psi

    say = progress or (lambda _s: None)
    rows = rows.reset_index(drop=True)
    say(f"history and features ({len(rows):,} declarations)")
    scored = scorer.score_rows(rows, prefetched)
    reference = scorer.model.meta.get("reference")
    with ThreadPoolExecutor(1) as side:  # drift needs only the matrix and the scores: binned meanwhile
        drift_job = side.submit(psi, reference, scored.matrix, scored.risk_score, 1) if reference else None
        say("deciding within each mode's budget")
        frame, order, picked, counts = rank_and_decide(rows, scored.risk_score, budgets, explore, seed)
        say(f"explaining {len(picked):,} selected declarations (TreeSHAP)")
        chosen = order[picked]  # input positions, in ranking order
        exp = attach_reasons(
            frame, picked, scorer.model.booster, scored.annotated.iloc[chosen], scored.matrix.iloc[chosen]
        )
        drift = drift_job.result() if drift_job is not None else None
    return assemble(frame, order, picked, exp, drift, model_uri, scored_at, budgets, explore, counts)


def rank_and_decide(rows: pd.DataFrame, risk: np.ndarray, budgets: dict[str, Budget], explore: float,
                    seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame]:  # fmt: skip
    """The decisions, built in ranking order: the frame (declaration_id, mode, risk_score, decision,
    selection_propensity, risk_rank), `order` (frame row i is input row order[i]), the frame positions
    of the selected rows and the count of each decision per mode (`summarise`'s, from the codes at hand
    rather than by grouping a million strings again). Built ranked, the table is never reordered."""
    import pyarrow as pa

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
        "mode": _text(pa.array(list(modes), pa.large_string()).take(codes[order])),
        "risk_score": risk[order],
        "decision": _text(pa.array(DECISIONS, pa.large_string()).take(ranked_decision)),
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


def _text(values: Any) -> pd.Series:
    """An Arrow string array as a pandas `str` column, without a round trip through Python."""
    return pd.Series(pd.arrays.ArrowStringArray(values), dtype="str")


def attach_reasons(frame: pd.DataFrame, picked: np.ndarray, booster: Any, annotated: pd.DataFrame,
                   matrix: pd.DataFrame) -> Any:  # fmt: skip
    """TreeSHAP reasons of the selected rows (frame positions `picked`) into `frame` (in place); returns
    the explanations."""
    from targeting.explain import explain
    from targeting.serving import scoring_threads

    exp = explain(booster, annotated, matrix, N_REASONS, num_threads=scoring_threads())
    for col in exp.reasons.columns:  # typed columns (text or float), empty outside the selected rows
        if col.endswith("_contribution"):
            values = np.full(len(frame), np.nan)
            values[picked] = exp.reasons[col].to_numpy(dtype=float)
            frame[col] = values
        else:
            frame[col] = _spread_text(exp.reasons[col], picked, len(frame))
    return exp


def _spread_text(values: pd.Series, positions: np.ndarray, n: int) -> pd.Series:
    """A text column of `n` rows holding `values` at `positions` and nothing elsewhere, built by one Arrow
    take (no million-element Python list for a few thousand sentences)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    source = pa.array([*values.astype(object).where(values.notna(), None), None], pa.large_string())
    index = np.full(n, len(values), np.int64)
    index[positions] = np.arange(len(values))
    return _text(pc.take(source, index))


def assemble(frame: pd.DataFrame, order: np.ndarray, picked: np.ndarray, exp: Any, drift: pd.DataFrame | None,
             model_uri: str, scored_at: pd.Timestamp | None, budgets: dict[str, Budget], explore: float,
             counts: pd.DataFrame) -> ScoreResult:  # fmt: skip
    """The result from the ranked frame of `rank_and_decide` (and its `counts`): `scores` (contract columns +
    selection_propensity, in ranking order), explanations, drift (an empty table when the model has no
    reference), the summary and which input rows were selected."""
    from targeting.drift import NO_DRIFT

    scores = frame
    scores["model_uri"] = pd.Series(model_uri, index=scores.index, dtype="str")
    scores["scored_at"] = (scored_at or pd.Timestamp.now(tz="UTC")).floor("s")
    scores = scores[[*SCORES.names, "selection_propensity"]]
    drift = drift if drift is not None else pd.DataFrame(columns=list(NO_DRIFT))
    return ScoreResult(scores, exp.groups, exp.expected_value, drift, summarise(scores, budgets, explore, drift, counts),
                       selected_rows=np.sort(order[picked]))  # fmt: skip


def empty_result(budgets: dict[str, Budget], explore: float) -> ScoreResult:
    """The result of a batch in which no row passed validation (every row is in `rejects`)."""
    from targeting.drift import NO_DRIFT
    from targeting.explain import EXPLANATION_COLUMNS

    scores = SCORES.empty_frame().assign(selection_propensity=pd.Series(dtype=float))
    drift = pd.DataFrame(columns=list(NO_DRIFT))
    explanations = pd.DataFrame(columns=list(EXPLANATION_COLUMNS))
    no_modes = pd.DataFrame(columns=list(DECISIONS), dtype=np.int64)
    return ScoreResult(scores, explanations, float("nan"), drift, summarise(scores, budgets, explore, drift, no_modes))


def summarise(scores: pd.DataFrame, budgets: dict[str, Budget], explore: float, drift: pd.DataFrame,
              counts: pd.DataFrame) -> dict[str, Any]:  # fmt: skip
    """Counts per mode and decision, budget use, score quantiles, drift warnings (for the log and report).
    `counts`: rows per decision (columns) and mode (index, sorted), as `rank_and_decide` gives them."""
    per_mode = []
    for mode in counts.index:
        decided = counts.loc[mode]  # rows per decision
        n = int(decided.sum())
        budget = budgets.get(str(mode))
        capacity = budget.capacity(n) if budget else 0
        used = int(decided.get("INSPECT", 0) + decided.get("EXPLORE", 0))
        per_mode.append({"mode": str(mode), "declarations": n, "budget": str(budget) if budget else "0",
                         "capacity": capacity, "INSPECT": int(decided.get("INSPECT", 0)),
                         "EXPLORE": int(decided.get("EXPLORE", 0)), "RELEASE": int(decided.get("RELEASE", 0)),
                         "budget_used": used / capacity if capacity else 0.0})  # fmt: skip
    q = scores["risk_score"].quantile([0.5, 0.9, 0.99, 0.999]).to_dict() if len(scores) else {}
    return {
        "declarations": len(scores),
        "explore_share": explore,
        "per_mode": per_mode,
        "score_quantiles": {f"p{round(k * 1000) / 10:g}": float(v) for k, v in q.items()},
        "drift_warnings": drift[drift["warning"]][["column", "psi"]].to_dict("records") if len(drift) else [],
        "max_psi": float(drift["psi"].max()) if len(drift) else None,
    }


def log_scoring_run(result: ScoreResult, params: dict[str, Any], out_dir: Any) -> str:
    """One MLflow run per batch: model version, counts per mode and decision, score distribution, PSI."""
    import mlflow

    from targeting import tracking

    tracking.setup()
    summary = result.summary
    with mlflow.start_run(run_name=f"scoring-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags({"job": "scoring", "model_uri": summary.get("model_uri", ""),
                         "drift_warning": str(bool(summary["drift_warnings"])).lower()})  # fmt: skip
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics: dict[str, float] = {
            "declarations": summary["declarations"],
            "rejected": summary.get("rejected", 0),
        }
        for m in summary["per_mode"]:
            for d in ("INSPECT", "EXPLORE", "RELEASE"):
                metrics[f"{d.lower()}_{m['mode']}"] = m[d]
            metrics[f"budget_used_{m['mode']}"] = m["budget_used"]
        metrics |= {f"risk_score_{k}": v for k, v in summary["score_quantiles"].items()}
        if len(result.drift):
            metrics["psi_max"] = float(result.drift["psi"].max())
            metrics |= {
                f"psi_{r.column}": float(r.psi) for r in result.drift.itertuples() if r.column == "risk_score"
            }
            mlflow.log_table(result.drift, "drift/psi.json")
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary, "summary.json")
        report = out_dir / "report.html"
        if report.exists():
            mlflow.log_artifact(str(report))
        return run.info.run_id
