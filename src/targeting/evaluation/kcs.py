"""Protocol A of evaluation.md: the public KCS declarations, fit on 2020, report on 2021 Q1.

Protocol A: fit on 2020 (early stopping and calibration on its last two months), report on the 2021 Q1
file. The history store holds every declaration but only the 2020 outcomes, so no 2021 Q1 label
reaches a 2021 Q1 feature (strictly offline, as in the published comparison).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pandas as pd

from targeting import tracking
from targeting.config import CATEGORICAL_COLUMNS, FeatureConfig, KcsConfig, Target, TrainConfig
from targeting.contract.adapters.kcs import import_kcs
from targeting.history.source import annotate
from targeting.history.store import HistoryStore
from targeting.metrics import budget_table, ranking
from targeting.model.classifier import TargetingModel
from targeting.training.splits import utc
from targeting.training.train import TrainingData, labelled_rows

KCS_CATEGORICAL = ("kcs_office_id", "kcs_process_type", "kcs_import_type", "kcs_import_use", "kcs_payment_type",
                   "kcs_tax_type", "kcs_origin_indicator", "kcs_transport_mode")  # fmt: skip
KCS_NUMERIC = ("kcs_tax_rate", "kcs_net_mass", "kcs_item_price_krw")
PAPER = {"precision_at_5pct": 0.762, "precision_at_10pct": 0.641}  # LightGBM, Jeong et al. 2022, 2021 Q2
TARGETS = {"precision_at_5pct": 0.80, "precision_at_10pct": 0.68}


@dataclass
class ProtocolResult:
    budget: pd.DataFrame
    headline: dict[str, float]
    n_train: int
    n_test: int


def protocol_a(train_csv: Path, valid_csv: Path, config: TrainConfig | None = None,
               progress: Callable[[str], None] | None = None) -> ProtocolResult:  # fmt: skip
    say = progress or (lambda _s: None)
    say("importing the KCS files")
    a = import_kcs(train_csv, KcsConfig(id_prefix="KCS20"))
    b = import_kcs(valid_csv, KcsConfig(id_prefix="KCS21"))
    decl = pd.concat([a.declarations.valid, b.declarations.valid], ignore_index=True)
    store = HistoryStore.from_tables(decl, a.inspections.valid, Target.VIOLATION)
    rows_a = labelled_rows(TrainingData(a.declarations.valid, a.inspections.valid), Target.VIOLATION)
    rows_b = labelled_rows(TrainingData(b.declarations.valid, b.inspections.valid), Target.VIOLATION)
    say("history")
    annotated = annotate(pd.concat([rows_a, rows_b], ignore_index=True), store)
    ann_a, ann_b = annotated.iloc[: len(rows_a)], annotated.iloc[len(rows_a) :]
    inner = utc("2020-11-01")
    fit_rows, stop_rows = ann_a[ann_a["filed_at"] < inner], ann_a[ann_a["filed_at"] >= inner]
    base = config or TrainConfig()
    feats = FeatureConfig(categorical=(*CATEGORICAL_COLUMNS, *KCS_CATEGORICAL), extra_numeric=KCS_NUMERIC,
                          seed=base.seed)  # fmt: skip
    config = replace(base, features=feats)
    say("features and fit")
    model = TargetingModel.fit(
        fit_rows, fit_rows["label"].to_numpy(bool), stop_rows, stop_rows["label"].to_numpy(bool), config
    )
    say("evaluation on 2021 Q1")
    scores = pd.DataFrame({"declaration_id": ann_b["declaration_id"], "mode": ann_b["mode"],
                           "label": ann_b["label"].to_numpy(bool), "risk_score": model.predict_annotated(ann_b)})  # fmt: skip
    budget = budget_table(scores)
    pooled = budget[budget["slice"] == "ALL"].set_index("budget_pct")
    headline = {"precision_at_5pct": float(pooled.loc[5.0, "precision"]),
                "precision_at_10pct": float(pooled.loc[10.0, "precision"]),
                **ranking(scores["label"].to_numpy(), scores["risk_score"].to_numpy())}  # fmt: skip
    return ProtocolResult(budget, headline, len(ann_a), len(ann_b))


def log_protocol_a(result: ProtocolResult, params: dict[str, str | int]) -> str:
    """One MLflow run (tag protocol=A): the parameters, the headline metrics and the table at budget."""
    tracking.setup()
    with mlflow.start_run(run_name="protocol-A-kcs") as run:
        mlflow.set_tag("protocol", "A")
        mlflow.log_params({**params, "n_train": result.n_train, "n_test": result.n_test})
        mlflow.log_metrics({k: v for k, v in result.headline.items() if v == v})
        mlflow.log_table(result.budget, "evaluation/protocol_a_budget.json")
        return run.info.run_id
