"""What the loop caught, against the world's ground truth: the tables of Protocol C.

Recall is the share of the smuggling attempts of the loop's days that any inspection caught (every channel
of the service: the model's selection, tips, X-ray alarms, officers, random checks), and seized kg the
drugs found; the model's own part is reported beside it (caught by MODEL or by its exploration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from targeting.evaluation.backtest.loop import PolicyRecord
from targeting.simulate.config import SimConfig
from targeting.simulate.run import drift_schedule

#: the days after a drift event in which recall is compared with the oracle's
DRIFT_WINDOW_DAYS = 28
#: the threat that appears mid-year (drift event D6 switches it on)
LATE_PATTERN = "P07"


@dataclass
class LoopTables:
    summary: pd.DataFrame  # per policy: attempts, caught, recall, seized kg, model-caught share, P07 latency
    weekly: pd.DataFrame  # per policy and week: attempts, caught, recall, cumulative recall, seized kg
    by_mode: pd.DataFrame  # per policy and mode: recall
    by_pattern: pd.DataFrame  # per policy and pattern: recall
    drift: pd.DataFrame  # per policy and drift event: recall in the window after it
    exploration: pd.DataFrame  # per policy: share of the model's selection explored, hits found each way
    promotions: pd.DataFrame  # per policy and retraining: promoted or not, and why
    attempts: pd.DataFrame  # every smuggling attempt of the loop's days, per policy: caught or not, by whom
    #: per model policy and risk_score bin: mean score, the true smuggling rate over all traffic, and the hit
    #: rate of the inspected rows (what the calibration was fitted to)
    calibration: pd.DataFrame


def attempts_of(records: list[PolicyRecord]) -> pd.DataFrame:
    return pd.concat([pd.concat(r.attempts, ignore_index=True).assign(policy=r.spec.name) for r in records],
                     ignore_index=True)  # fmt: skip


def tables(records: list[PolicyRecord], world: SimConfig, warmup: int) -> LoopTables:
    attempts = attempts_of(records)
    loop = attempts[attempts["phase"] == "loop"].copy()
    order = [r.spec.name for r in records]

    def recall(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        grouped = frame.groupby(by, sort=False).agg(attempts=("caught", "size"), caught=("caught", "sum"),
                                                    seized_kg=("seized_kg", "sum"), true_kg=("true_qty_kg", "sum"))  # fmt: skip
        grouped["recall"] = grouped["caught"] / grouped["attempts"]
        return grouped.reset_index()

    loop["week"] = (loop["day"] - warmup) // 7
    weekly = recall(loop, ["policy", "week"]).sort_values(["policy", "week"])
    weekly["cumulative_recall"] = weekly.groupby("policy")["caught"].cumsum() / weekly.groupby("policy")["attempts"].cumsum()
    summary = recall(loop, ["policy"]).set_index("policy").loc[order]
    summary["kg_share"] = summary["seized_kg"] / summary["true_kg"]
    summary["caught_by_model"] = loop.groupby("policy")["caught_by"].apply(lambda c: int((c == "MODEL").sum()))
    summary["caught_by_rule"] = loop.groupby("policy")["caught_by"].apply(lambda c: int((c == "RULE").sum()))
    late = loop[loop["pattern_id"] == LATE_PATTERN]
    first_attempt = late["day"].min() if len(late) else np.nan
    summary["p07_first_attempt_day"] = first_attempt
    summary["p07_days_to_first_seizure"] = [
        float(late[(late["policy"] == p) & late["caught"]]["day"].min() - first_attempt) if len(late) else np.nan
        for p in summary.index
    ]
    by_mode = recall(loop, ["policy", "mode"])
    by_pattern = recall(loop, ["policy", "pattern_id"])
    drift = _drift(loop, world, warmup, order)
    exploration = _exploration(records)
    promotions = pd.concat([pd.DataFrame(r.promotions).assign(policy=r.spec.name) for r in records if r.promotions],
                           ignore_index=True) if any(r.promotions for r in records) else pd.DataFrame()  # fmt: skip
    return LoopTables(summary.reset_index(), weekly, by_mode, by_pattern, drift, exploration, promotions,
                      loop.drop(columns=["phase", "week"]), _calibration(records))  # fmt: skip


#: risk_score bins of the ground-truth reliability table
SCORE_BINS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def _calibration(records: list[PolicyRecord]) -> pd.DataFrame:
    """Reliability of risk_score against ground truth over all traffic, beside the inspected rows' hit rate."""
    frames = []
    for r in records:
        if not r.scored:
            continue
        scored = pd.concat(r.scored, ignore_index=True)
        scored["bin"] = pd.cut(scored["risk_score"], SCORE_BINS, include_lowest=True)
        table = scored.groupby("bin", observed=True).agg(rows=("smuggling", "size"), mean_score=("risk_score", "mean"),
                                                         true_rate=("smuggling", "mean"), inspected=("inspected", "sum"))  # fmt: skip
        inspected = scored[scored["inspected"]]
        table["inspected_hit_rate"] = inspected.groupby("bin", observed=True)["hit"].mean().reindex(table.index)
        frames.append(table.reset_index().assign(policy=r.spec.name, bin=lambda t: t["bin"].astype(str)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def drift_events(world: SimConfig, first_day: int) -> list[tuple[str, int]]:
    """(event, start day) of the world's drift schedule from `first_day` on: D1 crackdown, D3 rotations
    (every period), D4 route shift, D5 (when enabled), D6 the new threat."""
    out = []
    for event in drift_schedule(world):
        name = str(event["event"])
        if name == "D3":
            period = int(event["period_days"])  # type: ignore[call-overload]
            out += [(f"D3@{d}", d) for d in range(period, world.days, period) if d >= first_day]
        elif "start" in event and name in ("D1", "D4", "D6") or (name == "D5" and event.get("enabled")):
            day = int(event["start"])  # type: ignore[call-overload]
            if first_day <= day < world.days:
                out.append((name, day))
    return sorted(out, key=lambda e: e[1])


def _drift(loop: pd.DataFrame, world: SimConfig, warmup: int, order: list[str]) -> pd.DataFrame:
    rows = []
    for event, day in drift_events(world, warmup):
        window = loop[(loop["day"] >= day) & (loop["day"] < day + DRIFT_WINDOW_DAYS)]
        for policy in order:
            mine = window[window["policy"] == policy]
            rows.append({"event": event, "day": day, "policy": policy, "attempts": len(mine),
                         "caught": int(mine["caught"].sum()),
                         "recall": float(mine["caught"].mean()) if len(mine) else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def _exploration(records: list[PolicyRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        if not r.selections:
            continue
        sel = pd.concat(r.selections, ignore_index=True).groupby("decision")[["selected", "hits"]].sum()
        inspect = sel.loc["INSPECT"] if "INSPECT" in sel.index else pd.Series({"selected": 0, "hits": 0})
        explore = sel.loc["EXPLORE"] if "EXPLORE" in sel.index else pd.Series({"selected": 0, "hits": 0})
        total = int(inspect["selected"] + explore["selected"])
        rows.append({"policy": r.spec.name, "selected": total, "explored": int(explore["selected"]),
                     "explored_share": explore["selected"] / total if total else np.nan,
                     "inspect_hits": int(inspect["hits"]), "explore_hits": int(explore["hits"]),
                     "inspect_hit_rate": inspect["hits"] / inspect["selected"] if inspect["selected"] else np.nan,
                     "explore_hit_rate": explore["hits"] / explore["selected"] if explore["selected"] else np.nan})  # fmt: skip
    return pd.DataFrame(rows)
