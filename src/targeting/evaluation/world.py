"""Protocol B of evaluation.md: the simulated world, the model beside RANDOM, RULE and ORACLE-FEATURES.

Train on days [0, 240) (inspected rows, observed labels), early-stop and calibrate on [240, 300), then
on every day of [300, 365) select 1 % of each mode's declarations by each policy's score and count,
against ground truth, the smuggling attempts and the drug kilograms caught.

The history store holds every declaration and the legacy service's outcomes at their `known_at`: in
the test window the features see what a deployed system would have seen (outcomes of the legacy
selection), never ground truth. ORACLE-FEATURES is the same pipeline fitted on the ground truth of
every declaration of the training window (early-stopped and calibrated on every row of the validation
window): the bound of what selective labels allow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from targeting import tracking
from targeting.config import Target, TrainConfig
from targeting.contract.io import read_parquet
from targeting.contract.labels import labels, parse_target
from targeting.errors import InputFileError
from targeting.history.source import annotate
from targeting.history.store import HistoryStore
from targeting.metrics import select_top_per_group
from targeting.model.classifier import TargetingModel

POLICIES = ("MODEL", "ORACLE-FEATURES", "RULE", "RANDOM")
#: the issue's targets: recall at the daily 1 % budget against the RULE policy and the oracle
TARGETS = {"lift_over_rule": 2.0, "label_efficiency": 0.8}
TRUTH_COLUMNS = ["declaration_id", "is_smuggling", "pattern_id", "true_qty_kg", "rule_score"]


@dataclass(frozen=True)
class WorldProtocol:
    """Day windows are half-open [start, end) in days since the world's start date."""

    train_days: tuple[int, int] = (0, 240)
    valid_days: tuple[int, int] = (240, 300)
    test_days: tuple[int, int] = (300, 365)
    budget_pct: float = 1.0
    target: Target = Target.HIT
    oracle: bool = True
    random_seed: int = 0

    @classmethod
    def scaled(cls, days: int, **kwargs: object) -> WorldProtocol:
        """The dev windows (240/300/365) scaled to a world of `days` days (e.g. `small`, for tests)."""
        cut = (round(days * 240 / 365), round(days * 300 / 365))
        return cls(train_days=(0, cut[0]), valid_days=(cut[0], cut[1]), test_days=(cut[1], days), **kwargs)  # type: ignore[arg-type]


@dataclass
class WorldResult:
    table: pd.DataFrame  # policy, slice, smuggling, caught, recall, seized_kg (long form)
    headline: dict[str, float]
    counts: dict[str, int]
    models: dict[str, TargetingModel] = field(default_factory=dict)


def load_manifest(folder: Path) -> dict:
    manifest = Path(folder) / "manifest.json"
    if not manifest.exists():
        raise InputFileError(f"{folder}: no manifest.json (not a world written by `targeting simulate`)")
    return json.loads(manifest.read_text())


def load_world(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """declarations, inspections, ground truth (with the legacy rule score) and the world's config."""
    folder = Path(folder)
    world = load_manifest(folder)["config"]
    decl = read_parquet(folder / "declarations.parquet")
    insp = read_parquet(folder / "inspections.parquet")
    truth = read_parquet(folder / "ground_truth.parquet", columns=TRUTH_COLUMNS)
    return decl, insp, truth, world


def day_index(filed_at: pd.Series, start: pd.Timestamp) -> np.ndarray:
    return ((filed_at - start) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)


def protocol_b(folder: Path, config: TrainConfig | None = None, protocol: WorldProtocol | None = None,
               progress: Callable[[str], None] | None = None) -> WorldResult:  # fmt: skip
    say = progress or (lambda _s: None)
    config = config or TrainConfig()
    say("reading the world")
    decl, insp, truth, world = load_world(folder)
    start = pd.Timestamp(world["start_date"], tz="UTC")
    protocol = protocol or WorldProtocol.scaled(int(world["days"]))
    target = parse_target(protocol.target)
    say("history (as of each declaration)")
    store = HistoryStore.from_tables(decl, insp, target)
    frame = annotate(decl, store)
    del decl
    frame["day"] = day_index(frame["filed_at"], start)
    frame = frame.merge(truth, on="declaration_id", how="left", validate="one_to_one")
    frame["is_smuggling"] = frame["is_smuggling"].fillna(False).astype(bool)
    observed = labels(insp, target)[["declaration_id", "label"]]
    frame = frame.merge(observed, on="declaration_id", how="left")
    frame = frame.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)

    def window(days: tuple[int, int]) -> pd.DataFrame:
        return frame[(frame["day"] >= days[0]) & (frame["day"] < days[1])]

    train, valid, test = window(protocol.train_days), window(protocol.valid_days), window(protocol.test_days)
    if not test["is_smuggling"].any():
        raise InputFileError(f"{folder}: no smuggling in the test days {protocol.test_days}")
    scores: dict[str, np.ndarray] = {}
    models: dict[str, TargetingModel] = {}
    say("fit MODEL (inspected rows, observed labels)")
    tr, va = train[train["label"].notna()], valid[valid["label"].notna()]
    if not tr["label"].astype(bool).any():
        raise InputFileError(f"{folder}: no {target.value} among the inspected rows of the training days")
    models["MODEL"] = TargetingModel.fit(tr, tr["label"].to_numpy(bool), va, va["label"].to_numpy(bool), config)
    counts = {"train_rows": len(train), "train_labelled": len(tr), "train_labelled_positive": int(tr["label"].sum()),
              "train_smuggling": int(train["is_smuggling"].sum()), "test_rows": len(test),
              "test_smuggling": int(test["is_smuggling"].sum())}  # fmt: skip
    if protocol.oracle:
        say("fit ORACLE-FEATURES (every row, ground truth)")
        models["ORACLE-FEATURES"] = TargetingModel.fit(train, train["is_smuggling"].to_numpy(bool), valid,
                                                       valid["is_smuggling"].to_numpy(bool), config)  # fmt: skip
    say("scoring the test days")
    for name, model in models.items():
        scores[name] = model.predict_annotated(test)
    scores["RULE"] = test["rule_score"].to_numpy(dtype=float)
    scores["RANDOM"] = np.random.default_rng(protocol.random_seed).random(len(test))
    table = recall_table(test, scores, protocol.budget_pct)
    return WorldResult(table, headline(table), counts, models)


def recall_table(test: pd.DataFrame, scores: dict[str, np.ndarray], budget_pct: float) -> pd.DataFrame:
    """Per policy: each mode's daily top `budget_pct` %, then recall and seized-kg against ground truth,
    pooled, per mode and per pattern."""
    ids = test["declaration_id"].to_numpy()
    groups = test["day"].astype(str).to_numpy() + "|" + test["mode"].astype(str).to_numpy()
    y = test["is_smuggling"].to_numpy(bool)
    qty = np.where(y, np.nan_to_num(test["true_qty_kg"].to_numpy(dtype=float)), 0.0)
    slices = [("ALL", np.ones(len(test), bool))]
    slices += [(f"mode={m}", (test["mode"] == m).to_numpy()) for m in sorted(test["mode"].unique())]
    patterns = sorted(test.loc[y, "pattern_id"].dropna().unique())
    slices += [(f"pattern={p}", (test["pattern_id"] == p).to_numpy()) for p in patterns]
    rows = []
    for policy, score in scores.items():
        chosen = select_top_per_group(score, ids, groups, budget_pct)
        for name, mask in slices:
            hits, caught = y & mask, y & mask & chosen
            rows.append({"policy": policy, "slice": name, "selected": int((chosen & mask).sum()),
                         "smuggling": int(hits.sum()), "caught": int(caught.sum()),
                         "recall": caught.sum() / hits.sum() if hits.any() else np.nan,
                         "seized_kg": qty[caught].sum() / qty[hits].sum() if qty[hits].sum() > 0 else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> dict[str, float]:
    pooled = table[table["slice"] == "ALL"].set_index("policy")
    out = {f"recall_{p.lower().replace('-', '_')}": float(pooled.loc[p, "recall"]) for p in pooled.index}
    out |= {
        f"seized_kg_{p.lower().replace('-', '_')}": float(pooled.loc[p, "seized_kg"]) for p in pooled.index
    }
    model = out["recall_model"]
    out["lift_over_rule"] = model / out["recall_rule"] if out["recall_rule"] > 0 else np.inf
    if "recall_oracle_features" in out:
        oracle = out["recall_oracle_features"]
        out["label_efficiency"] = model / oracle if oracle > 0 else np.nan
    return out


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per slice: smuggling count, recall of each policy, lift over RULE, label efficiency, kg."""
    recall = table.pivot(index="slice", columns="policy", values="recall")
    kg = table.pivot(index="slice", columns="policy", values="seized_kg")
    order = list(dict.fromkeys(table["slice"]))
    out = pd.DataFrame(index=order)
    out["smuggling"] = table.drop_duplicates("slice").set_index("slice")["smuggling"]
    for p in [p for p in POLICIES if p in recall.columns]:
        out[p.split("-")[0]] = recall[p]
    out["lift/RULE"] = recall["MODEL"] / recall["RULE"].where(recall["RULE"] > 0)
    if "ORACLE-FEATURES" in recall.columns:
        oracle = recall["ORACLE-FEATURES"]
        out["efficiency"] = recall["MODEL"] / oracle.where(oracle > 0)
    out["kg MODEL"] = kg["MODEL"]
    out["kg RULE"] = kg["RULE"]
    out.index = [s.split("=")[-1] for s in out.index]
    return out.rename_axis("slice").reset_index()


def log_protocol_b(result: WorldResult, protocol: WorldProtocol, params: dict[str, str | int | float]) -> str:
    """One MLflow run (tag protocol=B): the windows, counts, headline recalls and the per-slice table."""
    tracking.setup()
    with mlflow.start_run(run_name="protocol-B-world") as run:
        mlflow.set_tag("protocol", "B")
        mlflow.log_params({**params, "train_days": protocol.train_days, "valid_days": protocol.valid_days,
                           "test_days": protocol.test_days, **result.counts})  # fmt: skip
        mlflow.log_metrics({k: v for k, v in result.headline.items() if np.isfinite(v)})
        mlflow.log_table(result.table, "evaluation/protocol_b_recall.json")
        mlflow.log_text(json.dumps(result.counts, indent=2), "evaluation/protocol_b_counts.json")
        return run.info.run_id
