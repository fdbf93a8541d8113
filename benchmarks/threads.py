"""LightGBM on 1 vs 2 threads, on an idle machine and with the other core busy (how the default was chosen).

The matrix is the feature matrix of every declaration of a `small` world (ground-truth labels), the
same pipeline as training. Each figure is timed in the same child process, so the ratios compare like
with like; "busy" starts one process spinning on a core for the duration of the measurement.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time

from rich.console import Console
from rich.table import Table

from benchmarks._measure import run_child

ROUNDS = 200

_CODE = """
import numpy as np, pandas as pd, lightgbm as lgb
from targeting.config import Target
from targeting.evaluation.world import load_world
from targeting.features.build import build_features
from targeting.history.store import HistoryStore
from targeting.config import LIGHTGBM_PARAMS
from targeting.history.source import annotate
from targeting.simulate.config import preset
from targeting.simulate.run import simulate
simulate(preset("small", seed=7), {folder!r})
decl, insp, truth, _ = load_world({folder!r})
rows = annotate(decl, HistoryStore.from_tables(decl, insp, Target.HIT)).merge(truth, on="declaration_id")
y = rows["is_smuggling"].to_numpy(bool)
x = build_features().fit_transform(rows, y)
np.save({folder!r} + "/x.npy", x.to_numpy(np.float32))
np.save({folder!r} + "/y.npy", y)
"""

_TIMED = """
import numpy as np, lightgbm as lgb
from targeting.config import LIGHTGBM_PARAMS
x, y = np.load({folder!r} + "/x.npy"), np.load({folder!r} + "/y.npy")
params = {{**LIGHTGBM_PARAMS, "num_threads": {threads}, "seed": 7}}
t = time.perf_counter()
booster = lgb.train(params, lgb.Dataset(x, y.astype(int)), num_boost_round={rounds})
fit_s = time.perf_counter() - t
t = time.perf_counter()
booster.predict(x, num_threads={threads})
predict_s = time.perf_counter() - t
t = time.perf_counter()
booster.predict(x[:2000], pred_contrib=True, num_threads={threads})
contrib_s = time.perf_counter() - t
RESULT = {{"fit_s": fit_s, "predict_rows_s": len(x) / predict_s, "contrib_rows_s": 2000 / contrib_s, "rows": len(x)}}
"""


def _spin(stop: mp.Event) -> None:  # type: ignore[valid-type]
    while not stop.is_set():  # type: ignore[attr-defined]
        sum(range(10_000))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        Console(stderr=True).print("building the small world's feature matrix")
        run_child(_CODE.format(folder=folder))
        results = {}
        for busy in (False, True):
            stop = mp.Event()
            spinner = mp.Process(target=_spin, args=(stop,)) if busy else None
            if spinner:
                spinner.start()
                time.sleep(0.5)
            try:
                for threads in (1, 2):
                    results[busy, threads] = run_child(
                        _TIMED.format(folder=folder, threads=threads, rounds=ROUNDS)
                    )
            finally:
                if spinner:
                    stop.set()
                    spinner.join()
    rows = results[False, 1]["rows"]
    table = Table(title=f"LightGBM threads ({rows:,} rows x features of `small`, {ROUNDS} rounds, depth 8)",
                  header_style="bold")  # fmt: skip
    for col in (
        "other core",
        "threads",
        "fit s",
        "predict rows/s",
        "pred_contrib rows/s",
        "fit time vs 1 thread",
    ):
        table.add_column(col, justify="right")
    for (busy, threads), r in results.items():
        ratio = r["fit_s"] / results[busy, 1]["fit_s"]
        table.add_row("busy" if busy else "idle", str(threads), f"{r['fit_s']:.1f}", f"{r['predict_rows_s']:,.0f}",
                      f"{r['contrib_rows_s']:,.0f}", f"{ratio:.2f}x")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
