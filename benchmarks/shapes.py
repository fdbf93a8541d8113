"""Model shape side by side: Protocol B quality and the cost of scoring and explaining (issue 6).

On the dev world (Protocol B windows), the features are fitted once on the inspected training rows; then
one booster per shape is fitted on them (early stopping on the validation window) and judged on the test
days: recall@1 % per day and mode against ground truth, `Booster.predict` rows/s on every test row and
`pred_contrib` rows/s on 5,000 rows (2 threads, as scoring runs). The default shape is marked.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from benchmarks._measure import run_child
from benchmarks.train import dev_world

SHAPES = {
    "depth 4, 15 leaves": {"max_depth": 4, "num_leaves": 15},
    "depth 8, 31 leaves (default)": {},
    "depth 8, 63 leaves": {"num_leaves": 63},
    "unlimited depth, 63 leaves": {"max_depth": -1, "num_leaves": 63},
    "depth 8, 31 leaves, learning rate 0.1": {"learning_rate": 0.1},
}

_CODE = """
import numpy as np, pandas as pd
from dataclasses import replace
from pathlib import Path
from targeting.config import Target, TrainConfig
from targeting.evaluation.world import WorldProtocol, day_index, load_world, recall_table
from targeting.features.build import build_features, categorical_names
from targeting.history.store import HistoryStore
from targeting.contract.labels import labels
from targeting.history.source import annotate
from targeting.model.classifier import fit_booster
decl, insp, truth, world = load_world(Path({world!r}))
p = WorldProtocol.scaled(int(world["days"]))
frame = annotate(decl, HistoryStore.from_tables(decl, insp, Target.HIT))
frame["day"] = day_index(frame["filed_at"], pd.Timestamp(world["start_date"], tz="UTC"))
frame = frame.merge(truth, on="declaration_id", how="left").merge(labels(insp, Target.HIT)[["declaration_id", "label"]],
                                                                  on="declaration_id", how="left")
frame = frame.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)
frame["is_smuggling"] = frame["is_smuggling"].fillna(False).astype(bool)
win = lambda d: frame[(frame["day"] >= d[0]) & (frame["day"] < d[1])]
train, valid, test = win(p.train_days), win(p.valid_days), win(p.test_days)
tr, va = train[train["label"].notna()], valid[valid["label"].notna()]
y_tr, y_va = tr["label"].to_numpy(bool), va["label"].to_numpy(bool)
union = build_features(TrainConfig().features)
x_tr = union.fit_transform(tr, y_tr)
x_va, x_te = union.transform(va), union.transform(test)
cats = categorical_names(union)
x32 = x_te.to_numpy(np.float32)
RESULT = {{"rows": len(test), "shapes": []}}
for name, params in {shapes!r}.items():
    booster = fit_booster(x_tr, y_tr, x_va, y_va, replace(TrainConfig(), params=params), cats)
    t = time.perf_counter(); raw = booster.predict(x32, raw_score=True, num_threads=2); predict_s = time.perf_counter() - t
    t = time.perf_counter(); booster.predict(x32[:5000], pred_contrib=True, num_threads=2); contrib_s = time.perf_counter() - t
    table = recall_table(test, {{"MODEL": raw}}, 1.0).set_index("slice")
    RESULT["shapes"].append([name, booster.current_iteration(), float(table.loc["ALL", "recall"]),
                             len(test) / predict_s, 5000 / contrib_s])
"""


def main() -> None:
    world = dev_world()
    r = run_child(_CODE.format(world=str(world), shapes=SHAPES))
    table = Table(title=f"model shape on dev: Protocol B recall@1 % (MODEL) and scoring cost ({r['rows']:,} test rows)",
                  header_style="bold")  # fmt: skip
    for col in ("shape", "trees", "recall@1 %", "predict rows/s", "pred_contrib rows/s"):
        table.add_column(col, justify="left" if col == "shape" else "right")
    for name, trees, recall, predict, contrib in r["shapes"]:
        table.add_row(name, str(trees), f"{recall:.3f}", f"{predict:,.0f}", f"{contrib:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
