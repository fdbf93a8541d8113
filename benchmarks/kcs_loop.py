"""The public KCS declarations replayed as a closed loop (quality, not speed): labels for January-February 2020,
then 26 windows of 15 days; in each window a strategy picks k % of the window's declarations by its scores,
only those labels are revealed at the window's end (as labels and as as-of history), it retrains, and so on.
Label: `Fraud` (the violation target). Prints the mean precision of the 26 windows at 5 % and 10 %.

Strategies: random; `targeting` retrained every window (fitted on everything revealed before the previous
window, early-stopped and calibrated on the previous window's picks: the windows the protocol gives);
`targeting` trained once on the first two months (history still updated); the same retraining with the
early stopping it had before it kept a minimum of rounds (`min_boost_rounds=1`); a plain LightGBM (100 trees of
depth 4, learning rate 0.1, no early stopping, no calibration) retrained every window on the same features.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

KCS = Path("../shared/external/customs-declaration-datasets")
WINDOWS, WINDOW_DAYS = 26, 15
START = pd.Timestamp("2020-03-01", tz="UTC")
STRATEGIES = ("random", "targeting, retrained", "targeting, trained once", "targeting, retrained, min_boost_rounds=1",
              "plain LightGBM, 100 trees of depth 4")  # fmt: skip


def _data() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    from targeting.config import KcsConfig, Target
    from targeting.contract.adapters.kcs import import_kcs
    from targeting.training.train import TrainingData, labelled_rows

    a = import_kcs(KCS / "df_syn_train_eng.csv", KcsConfig(id_prefix="KCS20"))
    b = import_kcs(KCS / "df_syn_valid_eng.csv", KcsConfig(id_prefix="KCS21"))
    decl = pd.concat([a.declarations.valid, b.declarations.valid], ignore_index=True)
    decl = decl.sort_values(["filed_at", "declaration_id"]).reset_index(drop=True)
    insp = pd.concat([a.inspections.valid, b.inspections.valid], ignore_index=True)
    truth = labelled_rows(TrainingData(decl, insp), Target.VIOLATION).set_index("declaration_id")["label"]
    return decl, insp, truth


def run(strategy: str, k: float, decl: pd.DataFrame, insp: pd.DataFrame, truth: pd.Series) -> tuple[list[float], int]:
    """The precision of each window's picks, and how many calibrations were refused (they would have
    reversed the ranking)."""
    import warnings

    from targeting.config import CATEGORICAL_COLUMNS, FeatureConfig, Target, TrainConfig
    from targeting.evaluation.kcs import KCS_CATEGORICAL, KCS_NUMERIC
    from targeting.features.build import build_features, categorical_names
    from targeting.history.source import annotate
    from targeting.history.store import HistoryStore
    from targeting.model.classifier import CalibrationWarning, TargetingModel

    features = FeatureConfig(categorical=(*CATEGORICAL_COLUMNS, *KCS_CATEGORICAL), extra_numeric=KCS_NUMERIC, seed=7)
    config = TrainConfig(features=features)
    if "min_boost_rounds=1" in strategy:
        config = replace(config, min_boost_rounds=1)
    revealed = insp[insp["declaration_id"].isin(decl.loc[decl["filed_at"] < START, "declaration_id"])]
    previous = decl.loc[(decl["filed_at"] >= START - pd.Timedelta(days=WINDOW_DAYS)) & (decl["filed_at"] < START),
                        "declaration_id"]  # fmt: skip
    precisions, model, refused = [], None, 0
    for w in range(WINDOWS):
        w0, w1 = START + pd.Timedelta(days=WINDOW_DAYS * w), START + pd.Timedelta(days=WINDOW_DAYS * (w + 1))
        annotated = annotate(decl[decl["filed_at"] < w1], HistoryStore.from_tables(decl, revealed, Target.VIOLATION))
        labelled = annotated[annotated["declaration_id"].isin(revealed["declaration_id"])].copy()
        labelled["label"] = labelled["declaration_id"].map(truth).astype(bool)
        valid = labelled[labelled["declaration_id"].isin(previous)]
        fit = labelled[~labelled["declaration_id"].isin(previous)]
        now = annotated[annotated["filed_at"] >= w0]
        if strategy == "random":
            score = np.random.default_rng(w).random(len(now))
        elif strategy.startswith("targeting"):
            if model is None or "retrained" in strategy:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", CalibrationWarning)
                    model = TargetingModel.fit(fit, fit["label"].to_numpy(bool), valid, valid["label"].to_numpy(bool),
                                               config)  # fmt: skip
                refused += sum(issubclass(w.category, CalibrationWarning) for w in caught)
            score = model.predict_annotated(now)
        else:
            union = build_features(features)
            x = union.fit_transform(labelled, labelled["label"].to_numpy(bool))
            params = {"objective": "binary", "max_depth": 4, "num_leaves": 15, "learning_rate": 0.1, "verbose": -1,
                      "seed": 7, "num_threads": 1}  # fmt: skip
            data = lgb.Dataset(x.to_numpy(np.float32), labelled["label"].to_numpy(int), feature_name=list(x.columns),
                               categorical_feature=categorical_names(union))  # fmt: skip
            score = lgb.train(params, data, num_boost_round=100).predict(union.transform(now).to_numpy(np.float32))
        n = max(1, int(np.floor(k / 100 * len(now))))
        picks = now["declaration_id"].to_numpy()[np.lexsort((now["declaration_id"].to_numpy(), -score))[:n]]
        precisions.append(float(truth.loc[picks].mean()))
        new = insp[insp["declaration_id"].isin(picks)].assign(exam_at=w1)  # revealed at the window's end
        revealed = pd.concat([revealed, new], ignore_index=True)
        previous = pd.Series(picks)
    return precisions, refused


def main() -> None:
    decl, insp, truth = _data()
    table = Table(title=f"KCS closed-loop replay: mean precision of {WINDOWS} windows of {WINDOW_DAYS} days (Fraud)",
                  header_style="bold")  # fmt: skip
    for col in ("strategy", "at 5 %", "at 10 %", "worst window at 10 %", "calibrations refused (5 % / 10 %)"):
        table.add_column(col, justify="right")
    for strategy in STRATEGIES:
        at = {k: run(strategy, k, decl, insp, truth) for k in (5.0, 10.0)}
        table.add_row(strategy, f"{np.mean(at[5.0][0]):.3f}", f"{np.mean(at[10.0][0]):.3f}", f"{min(at[10.0][0]):.3f}",
                      f"{at[5.0][1]} / {at[10.0][1]}" if strategy.startswith("targeting") else "")  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
