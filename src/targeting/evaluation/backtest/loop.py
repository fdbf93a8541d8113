"""Protocol C of evaluation.md: the closed loop, day after day, through the code the daily batch uses.

Warm-up: the world's legacy policy alone for its first days (day 120 of 365 by default, scaled to the
world's length); the days are added to a history folder (`history add`) and the first models are trained
on it. Then each policy (`policies.py`) lives through the remaining days on its own copy of the world and
of the history:
- the world generates the day (`World.step`); a model policy's champion scores it with the daily job's
  scoring and decisions (INSPECT / EXPLORE within the model's share of each mode's budget), the world's
  other channels (tips, X-ray alarms, officers, its own random checks) select beside it, and the world
  examines the selection;
- the day's declarations, and every outcome known by the day's end (exams can take days), are added to
  the policy's history with `history add`; an outcome known later is added on the day it is known;
- every `retrain_every` days a challenger is trained on everything labelled so far (the last
  `test_days` held out) and promoted only by the honest rule (`training/promotion.py`); the history is
  then indexed again (its saved index folds in the added days).
What was caught is counted against the world's ground truth (`metrics.py`). Same seed, same result.
"""

from __future__ import annotations

import copy
import multiprocessing
import queue
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from targeting.config import Target, TrainConfig
from targeting.contract.labels import positive
from targeting.evaluation.backtest.policies import MODEL, ORACLE, RULE, JobChooser, PolicySpec, policy_specs
from targeting.history.add import add
from targeting.history.folder import build_index, read_history
from targeting.history.source import HistorySource
from targeting.model.classifier import TargetingModel
from targeting.model.scorer import Scorer
from targeting.scoring.decisions import Budget
from targeting.simulate.config import MODES, SimConfig, preset
from targeting.simulate.world import DayResult, World
from targeting.training.promotion import Evidence, judge, window_of
from targeting.training.registry import history_window_rows
from targeting.training.splits import time_split
from targeting.training.train import TrainingData, train

Progress = Callable[[str, int], None]  # (what, steps done): one step per policy-day


class QueueLike(Protocol):
    """A queue shared with worker processes (a `multiprocessing.Manager().Queue()`)."""

    def put(self, item: tuple[str, int]) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> tuple[str, int]: ...
    def get_nowait(self) -> tuple[str, int]: ...


@dataclass(frozen=True)
class BacktestConfig:
    preset: str = "small"
    seed: int = 7
    #: days of the legacy policy alone before the first model (None: day 120 of 365, scaled)
    warmup_days: int | None = None
    retrain_every: int = 7
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    oracle: bool = True
    rule: bool = True
    #: each retraining's validation window (early stopping, calibration) and held-out test window (promotion)
    valid_days: int = 21
    test_days: int = 7
    #: the world's length (None: the preset's)
    days: int | None = None

    def world(self) -> SimConfig:
        return preset(self.preset, seed=self.seed, **({"days": self.days} if self.days else {}))

    def warmup(self, world: SimConfig) -> int:
        return self.warmup_days if self.warmup_days is not None else world.drift_day(120)

    def specs(self) -> list[PolicySpec]:
        return policy_specs(self.epsilons, self.oracle, self.rule)


@dataclass
class PolicyRecord:
    """What one policy did, day by day: the world's smuggling attempts and whether they were caught, the
    inspections and hits per channel, and each promotion decision."""

    spec: PolicySpec
    attempts: list[pd.DataFrame] = field(default_factory=list)
    channels: list[pd.DataFrame] = field(default_factory=list)
    promotions: list[dict[str, object]] = field(default_factory=list)
    #: per day and mode, the model's selection: INSPECT and EXPLORE rows, and the hits of each
    selections: list[pd.DataFrame] = field(default_factory=list)
    #: every scored declaration: its risk_score, whether it smuggled (ground truth) and was inspected
    scored: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class LoopWorld:
    """The shared warm-up: the world after it, its history folder, the outcomes not known yet, the ground
    truth so far, and the first models."""

    world: World
    start: pd.Timestamp
    warmup_days: int
    history: Path
    pending: pd.DataFrame
    truth: pd.DataFrame
    first: dict[str, TargetingModel]
    warmup_records: tuple[pd.DataFrame, pd.DataFrame]


def run_backtest(cfg: BacktestConfig, out: Path, progress: Progress | None = None,
                 workers: int = 1) -> list[PolicyRecord]:  # fmt: skip
    """Every policy of `cfg` through the loop (see the module docstring); working folders under `out`.
    With `workers` > 1 the policies run side by side in that many processes (the same records: each policy
    has its own copy of the world, history and seed)."""
    say = progress or (lambda _what, _done: None)
    shared = warm_up(cfg, out, say)
    specs = cfg.specs()
    if workers <= 1 or len(specs) == 1:
        return [run_policy(cfg, spec, shared, out, say) for spec in specs]
    context = multiprocessing.get_context("spawn")  # no fork of a process whose LightGBM threads have started
    with context.Manager() as manager, ProcessPoolExecutor(min(workers, len(specs)), mp_context=context) as pool:
        messages = manager.Queue()
        futures = [pool.submit(_policy_in_worker, cfg, spec, shared, out, messages) for spec in specs]
        while not all(f.done() for f in futures):
            _relay(messages, say, wait=0.5)
        _relay(messages, say, wait=0.0)
        return [f.result() for f in futures]


def _policy_in_worker(cfg: BacktestConfig, spec: PolicySpec, shared: LoopWorld, out: Path,
                      messages: QueueLike) -> PolicyRecord:  # fmt: skip
    return run_policy(cfg, spec, shared, out, lambda what, done: messages.put((what, done)))


def _relay(messages: QueueLike, say: Progress, wait: float) -> None:
    """The workers' progress messages, passed on to `say` (waiting up to `wait` seconds for the first)."""
    try:
        what, done = messages.get(timeout=wait) if wait else messages.get_nowait()
        say(what, done)
        while True:
            what, done = messages.get_nowait()
            say(what, done)
    except queue.Empty:
        return


def warm_up(cfg: BacktestConfig, out: Path, say: Progress) -> LoopWorld:
    sim = cfg.world()
    warmup = cfg.warmup(sim)
    if not 0 < warmup < sim.days - cfg.retrain_every:
        raise ValueError(f"warm-up of {warmup} days does not fit a world of {sim.days} days")
    world = World(sim)
    start = pd.Timestamp(sim.start_date, tz="UTC")
    decl, insp, truth = [], [], []
    for day in range(warmup):
        say(f"warm-up: legacy policy, day {day + 1} of {warmup}", 0)
        res = world.step(day)
        decl.append(res.declarations)
        insp.append(res.inspections.drop(columns=["_row"]))
        truth.append(res.ground_truth)
    declarations, inspections = pd.concat(decl, ignore_index=True), pd.concat(insp, ignore_index=True)
    ground_truth = pd.concat(truth, ignore_index=True)
    history = out / "warmup-history"
    shutil.rmtree(history, ignore_errors=True)
    end = start + pd.Timedelta(days=warmup)
    known = inspections["exam_at"] < end
    _add(history, out / "work", declarations, inspections[known], "warmup")
    build_index(history, Target.HIT.value)
    say("training the first models on the warm-up", 0)
    first = {MODEL: _train(cfg, history, None)}
    if cfg.oracle:
        first[ORACLE] = _train(cfg, history, _truth_labels(ground_truth))
    channels = _channels(ground_truth, inspections, declarations, start)
    return LoopWorld(world, start, warmup, history, inspections[~known].reset_index(drop=True),
                     ground_truth[["declaration_id", "is_smuggling"]], first,
                     (_attempts(ground_truth, inspections, declarations, start), channels))  # fmt: skip


def run_policy(cfg: BacktestConfig, spec: PolicySpec, shared: LoopWorld, out: Path, say: Progress) -> PolicyRecord:
    """One policy from the end of the warm-up to the world's last day."""
    world = copy.deepcopy(shared.world)
    record = PolicyRecord(spec)
    record.attempts.append(shared.warmup_records[0].assign(phase="warm-up"))
    record.channels.append(shared.warmup_records[1].assign(phase="warm-up"))
    days = world.cfg.days
    if spec.kind == RULE:
        for day in range(shared.warmup_days, days):
            res = world.step(day)
            _record(record, res, shared.start)
            say(f"{spec.name}: day {day}", 1)
        return record
    world.cfg = replace(world.cfg, share_model=world.cfg.share_rule, share_rule=0.0)
    folder = out / "policies" / spec.slug / "history"
    shutil.rmtree(folder.parent, ignore_errors=True)
    shutil.copytree(shared.history, folder)
    truth = [shared.truth] if spec.kind == ORACLE else []
    champion, version = shared.first[spec.kind], 1
    record.promotions.append({"day": shared.warmup_days, "version": 1, "promoted": True, "reason": "first model",
                              "difference": np.nan, "lower_bound": np.nan, "overlap": np.nan})  # fmt: skip
    scorer = Scorer(champion, HistorySource(folder, Target.HIT.value))
    chooser = JobChooser(scorer, f"backtest:{spec.slug}:v1", spec.explore, cfg.seed)
    pending = shared.pending
    budgets = _model_budgets(world.cfg)
    for day in range(shared.warmup_days, days):
        if day > shared.warmup_days and (day - shared.warmup_days) % cfg.retrain_every == 0:
            say(f"{spec.name}: day {day}: retraining", 0)
            labels = _truth_labels(pd.concat(truth, ignore_index=True)) if truth else None
            challenger = _train(cfg, folder, labels)
            evidence = _judge(challenger, champion, folder, labels, budgets, cfg.seed + day)
            if evidence.promote:
                champion, version = challenger, version + 1
                chooser.model_uri = f"backtest:{spec.slug}:v{version}"
            record.promotions.append({"day": day, "version": version, "promoted": evidence.promote,
                                      "reason": evidence.reason, "difference": evidence.difference,
                                      "lower_bound": evidence.lower_bound, "overlap": evidence.overlap})  # fmt: skip
            build_index(folder, Target.HIT.value)  # fold the days added since into the saved index
            scorer = Scorer(champion, HistorySource(folder, Target.HIT.value))
            chooser.scorer = scorer
        elif scorer.history.changed():
            scorer.history = scorer.history.reopened()
        chooser.day = day
        res = world.step(day, chooser)
        inspections = res.inspections.drop(columns=["_row"])
        pending = pd.concat([pending, inspections], ignore_index=True)
        known = pending["exam_at"] < shared.start + pd.Timedelta(days=day + 1)
        _add(folder, out / "work" / spec.slug, res.declarations, pending[known], f"day-{day}")
        pending = pending[~known].reset_index(drop=True)
        if truth:
            truth.append(res.ground_truth[["declaration_id", "is_smuggling"]])
        _record(record, res, shared.start, chooser.scores)
        if chooser.scores is not None:  # the day's scores, as a scoring run writes them (for `targeting monitor`)
            (folder.parent / "scores").mkdir(exist_ok=True)
            chooser.scores.to_parquet(folder.parent / "scores" / f"day-{day:03d}.parquet")
        say(f"{spec.name}: day {day}", 1)
    _promotion_log(record, shared.start).to_csv(folder.parent / "promotions.csv", index=False)
    return record


def _promotion_log(record: PolicyRecord, start: pd.Timestamp) -> pd.DataFrame:
    """The policy's promotion decisions as `targeting monitor --promotions` reads them."""
    table = pd.DataFrame(record.promotions)
    table.insert(0, "decided", [(start + pd.Timedelta(days=int(d))).date().isoformat() for d in table.pop("day")])
    return table


def _add(folder: Path, work: Path, declarations: pd.DataFrame, outcomes: pd.DataFrame, name: str) -> None:
    """`history add` of a day's declarations and the outcomes known by its end, from files as the command
    reads them."""
    work.mkdir(parents=True, exist_ok=True)
    decl_file, out_file = work / f"{name}-declarations.parquet", work / f"{name}-outcomes.parquet"
    declarations.to_parquet(decl_file)
    outcomes.to_parquet(out_file)
    result = add(folder, [decl_file], [out_file] if len(outcomes) else [])
    if len(result.rejects):
        raise AssertionError(f"history add rejected rows of {name}: {result.rejects['reject_reason'].unique()[:3]}")
    decl_file.unlink()
    out_file.unlink()


def _truth_labels(truth: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"declaration_id": truth["declaration_id"], "label": truth["is_smuggling"].astype(bool)})


def _train(cfg: BacktestConfig, folder: Path, truth: pd.DataFrame | None) -> TargetingModel:
    """A model of everything the history holds (labelled by `truth` for the oracle), the last
    `test_days` held out, the `valid_days` before them for early stopping and calibration."""
    source = HistorySource(folder, Target.HIT.value)  # its saved index answers the as-of counts
    declarations, inspections = read_history(folder)
    data = TrainingData(declarations, inspections, truth, source)
    split = time_split(None, None, filed_at=declarations["filed_at"], valid_days=cfg.valid_days,
                       test_days=cfg.test_days)  # fmt: skip
    return train(data, split, TrainConfig(seed=cfg.seed), Target.HIT).model


def _judge(challenger: TargetingModel, champion: TargetingModel, folder: Path, truth: pd.DataFrame | None,
           budgets: dict[str, Budget], seed: int) -> Evidence:  # fmt: skip
    """`promotion.judge` on the challenger's test window of the history (the oracle: every row labelled by
    the ground truth, propensity 1)."""
    window = window_of(challenger.meta.test_window)
    rows = history_window_rows(folder, window, Target.HIT.value) if window is not None else pd.DataFrame()
    if truth is not None and len(rows):
        rows["label"] = rows["declaration_id"].map(truth.set_index("declaration_id")["label"]).astype(float)
        rows["selection_propensity"] = 1.0
    return judge(challenger, champion, rows, budgets, seed=seed)


def _model_budgets(world: SimConfig) -> dict[str, Budget]:
    """The model's share of each mode's daily inspections, as percentages (what promotion selects within)."""
    shares = world.share_rule + world.share_officer + world.share_random + world.share_model
    return {m: Budget(100 * world.inspection_rate[m] * world.share_model / shares, percent=True) for m in MODES}


def _record(record: PolicyRecord, res: DayResult, start: pd.Timestamp, scores: pd.DataFrame | None = None) -> None:
    inspections = res.inspections.drop(columns=["_row"])
    record.attempts.append(_attempts(res.ground_truth, inspections, res.declarations, start).assign(phase="loop"))
    record.channels.append(_channels(res.ground_truth, inspections, res.declarations, start).assign(phase="loop"))
    if scores is not None:
        hits = set(inspections.loc[positive(inspections["result"], Target.HIT), "declaration_id"].astype(str))
        chosen = scores[scores["decision"] != "RELEASE"]
        frame = pd.DataFrame({"mode": chosen["mode"].astype(str).to_numpy(), "decision": chosen["decision"].astype(str).to_numpy(),
                              "hit": chosen["declaration_id"].astype(str).isin(hits).to_numpy()})  # fmt: skip
        day = int((res.declarations["filed_at"].iloc[0] - start).days) if len(res.declarations) else -1
        table = frame.groupby(["mode", "decision"]).agg(selected=("hit", "size"), hits=("hit", "sum")).reset_index()
        record.selections.append(table.assign(day=day))
        smuggling = set(res.ground_truth.loc[res.ground_truth["is_smuggling"].astype(bool), "declaration_id"].astype(str))
        ids = scores["declaration_id"].astype(str)
        record.scored.append(pd.DataFrame({"risk_score": scores["risk_score"].to_numpy(dtype=float),
                                           "smuggling": ids.isin(smuggling).to_numpy(),
                                           "inspected": ids.isin(set(inspections["declaration_id"].astype(str))).to_numpy(),
                                           "hit": ids.isin(hits).to_numpy()}))  # fmt: skip


def _attempts(truth: pd.DataFrame, inspections: pd.DataFrame, declarations: pd.DataFrame,
              start: pd.Timestamp) -> pd.DataFrame:  # fmt: skip
    """The smuggling attempts: day, mode, pattern, true kg, whether an inspection caught them, by which
    channel, and the kg seized."""
    smuggling = truth[truth["is_smuggling"].astype(bool)][["declaration_id", "pattern_id", "true_qty_kg"]]
    frame = smuggling.merge(declarations[["declaration_id", "mode", "filed_at"]], on="declaration_id")
    hits = inspections[positive(inspections["result"], Target.HIT)]
    caught = hits.groupby("declaration_id").agg(caught_by=("selection_reason", "first"), seized_kg=("quantity_kg", "sum"))
    frame = frame.merge(caught, left_on="declaration_id", right_index=True, how="left")
    frame["caught"] = frame["caught_by"].notna()
    frame["seized_kg"] = frame["seized_kg"].fillna(0.0)
    frame["day"] = (frame["filed_at"] - start).dt.days
    return frame.drop(columns=["filed_at"])


def _channels(truth: pd.DataFrame, inspections: pd.DataFrame, declarations: pd.DataFrame,
              start: pd.Timestamp) -> pd.DataFrame:  # fmt: skip
    """Per day, mode and selection channel: declarations inspected and hits found."""
    first = inspections.drop_duplicates("declaration_id")
    hit = positive(inspections["result"], Target.HIT).groupby(inspections["declaration_id"]).any()
    frame = first[["declaration_id", "selection_reason"]].merge(declarations[["declaration_id", "mode", "filed_at"]],
                                                                on="declaration_id")  # fmt: skip
    frame["hit"] = frame["declaration_id"].map(hit).fillna(False).astype(bool)
    frame["day"] = (frame["filed_at"] - start).dt.days
    volume = declarations.assign(day=(declarations["filed_at"] - start).dt.days).groupby(["day", "mode"]).size()
    table = frame.groupby(["day", "mode", "selection_reason"]).agg(inspected=("hit", "size"), hits=("hit", "sum"))
    table = table.reset_index()
    table["declarations"] = [int(volume.get((d, m), 0)) for d, m in zip(table["day"], table["mode"], strict=True)]
    return table
