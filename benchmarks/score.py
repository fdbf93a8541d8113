"""Daily scoring of a 1,000,000-declaration manifest end to end, against the floor measured in the same run.

Set-up (cached in data/interim/bench-score, about 3 minutes the first time): the dev world, a model
trained on its days [0, 240) and registered as champion in a private MLflow store, the last 1,000,000
declarations as the manifest and everything before them as the history folder.

Measured, each in a fresh child process:
- `targeting history-index` on the history folder: the once-per-history-update part (reported, not counted
  in the run);
- the imports `targeting score` needs (reported, not counted: the floor's imports are not timed either);
- `score_files` exactly as `targeting score` runs it (read + validate, load model, history and
  features, score, decide, explain the selected rows, write Parquet + CSV), then the report;
- the floor on the same model and rows: Parquet read + bare `Booster.predict` on a float32 matrix of
  all rows + `pred_contrib` on the rows the run selected (flagged and explored);
- for comparison, the compiled tree walker the run scores with (`forest.py`, the same sums as
  `Booster.predict`, in less time) on the same matrix, and the run against the floor with the walker in
  place of `Booster.predict`: the run's overhead beyond reading, scoring and explaining.
"""

from __future__ import annotations

import os
from pathlib import Path
from statistics import median

from rich.console import Console
from rich.table import Table

from benchmarks._measure import STAGE_RECORDER, run_child
from benchmarks.train import dev_world

CACHE = Path("data/interim/bench-score")
MANIFEST_ROWS = 1_000_000

_SETUP = """
import os, numpy as np, pandas as pd
from pathlib import Path
cache = Path({cache!r}).resolve()
os.chdir(cache)
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(cache / "mlflow.db")
from targeting.contract.io import read_parquet
from targeting.config import TrainConfig
from targeting.training.splits import time_split
from targeting.training.train import TrainingData, train
from targeting.training.registry import log_run, promote
world = Path({world!r})
decl, insp = read_parquet(world / "declarations.parquet"), read_parquet(world / "inspections.parquet")
decl = decl.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)
manifest, past = decl.iloc[-{rows}:], decl.iloc[:-{rows}]
(cache / "history").mkdir(exist_ok=True)
past.to_parquet(cache / "history" / "declarations.parquet")
insp[insp["declaration_id"].isin(past["declaration_id"])].to_parquet(cache / "history" / "inspections.parquet")
manifest.to_parquet(cache / "manifest.parquet")
data = TrainingData(past, insp[insp["declaration_id"].isin(past["declaration_id"])])
result = train(data, time_split("2023-08-29", "2023-10-28"), TrainConfig())
log_run(result, data, {{"declarations": str(cache / "history" / "declarations.parquet"),
                        "inspections": str(cache / "history" / "inspections.parquet")}},
        str(cache / "history"), register=True)
promote(force=True)
(cache / "ready").write_text("ok")
"""

_RUN = """
import os
from pathlib import Path
cache = Path({cache!r}).resolve()
os.chdir(cache)
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(cache / "mlflow.db")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
{recorder}
say("imports")  # what `targeting score` imports (the floor's imports are not timed either)
import lightgbm, mlflow.pyfunc, mlflow.store.tracking.sqlalchemy_store, sklearn.linear_model
import targeting.model.drift, targeting.model.explain, targeting.history.index, targeting.serving.pyfunc
import targeting.contract.validate, targeting.history._compiled, targeting.model._compiled
from targeting.config import DEFAULT_BUDGETS
from targeting.scoring.decisions import parse_budgets
from targeting.scoring.job import score_files
from targeting.scoring.report import write_report
run = score_files([cache / "manifest.parquet"], "models:/targeting@champion", cache / "history", cache / "out",
                  parse_budgets(DEFAULT_BUDGETS), 0.1, progress=say)
result, manifests = run.result, run.manifests
if {report}:
    say("report (100 cards)")
    write_report(cache / "out")
say("end")
scores = result.scores
selected = scores.index[scores["decision"] != "RELEASE"]
RESULT = {{"stages": STAGES, "rows": len(scores) + len(manifests.rejects), "selected": int(len(selected)),
           "model_uri": result.summary["model_uri"]}}
"""

_INDEX = """
from pathlib import Path
from targeting.history.folder import build_index
build_index(Path({cache!r}).resolve() / "history", "hit")
"""

_FLOOR = """
import os, numpy as np, pyarrow.compute as pc, pyarrow.parquet as pq
from pathlib import Path
cache = Path({cache!r}).resolve()
os.chdir(cache)
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(cache / "mlflow.db")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
from targeting.serving.pyfunc import load_scorer
scorer, _ = load_scorer({model_uri!r}, cache / "history")
x = np.ascontiguousarray(scorer.score_rows(pq.read_table(cache / "manifest.parquet").to_pandas()).matrix
                         .to_numpy(np.float32))  # built outside the timings: the floor starts from it
booster = scorer.model.booster
from targeting.config import scoring_threads
threads = scoring_threads()  # the same threads as the scoring run
t = time.perf_counter(); pq.read_table(cache / "manifest.parquet").to_pandas(); read_s = time.perf_counter() - t
t = time.perf_counter(); booster.predict(x, num_threads=threads); predict_s = time.perf_counter() - t
flagged = pq.read_table(cache / "out" / "selected.parquet", columns=["declaration_id"]).column(0)
ids = pq.read_table(cache / "manifest.parquet", columns=["declaration_id"]).column(0)
x_flagged = np.ascontiguousarray(x[pc.is_in(ids, value_set=flagged).to_numpy(zero_copy_only=False)])
t = time.perf_counter(); booster.predict(x_flagged, pred_contrib=True, num_threads=threads)
contrib_s = time.perf_counter() - t
scorer.model.forest.raw_score(x[:10])  # the compiled walker the run uses instead of Booster.predict (loaded)
t = time.perf_counter(); scorer.model.forest.raw_score(x, threads); walker_s = time.perf_counter() - t
RESULT = {{"read_s": read_s, "predict_s": predict_s, "contrib_s": contrib_s, "walker_s": walker_s}}
"""


def setup() -> Path:
    if not (CACHE / "ready").exists():
        world = dev_world()
        CACHE.mkdir(parents=True, exist_ok=True)
        Console(stderr=True).print(f"setting up in {CACHE}: manifest, history and a champion trained on dev")
        run_child(_SETUP.format(cache=str(CACHE), world=str(world), rows=MANIFEST_ROWS))
    return CACHE


def main(repeat: int = int(os.environ.get("BENCH_SCORE_REPEAT", "3"))) -> None:
    """`repeat` pairs of (run, floor), one after the other: the stages and totals are medians over the
    pairs, the ratio is each pair's own, and its range is printed (the machine is shared and noisy)."""
    cache = setup()
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    index = run_child(_INDEX.format(cache=str(cache)))
    runs, floors = [], []
    progress = Console(stderr=True)
    for i in range(max(1, repeat)):
        progress.print(f"run and floor {i + 1} of {max(1, repeat)}")
        recorder = STAGE_RECORDER.format(first="start")
        runs.append(run_child(_RUN.format(cache=str(cache), recorder=recorder, report=i == 0)))
        floors.append(run_child(_FLOOR.format(cache=str(cache), model_uri=runs[0]["model_uri"])))
    run = runs[0]
    names = [s[0] for s in run["stages"] if s[0] != "start"]
    seen = [{s[0]: s[1:] for s in r["stages"]} for r in runs]  # stage -> (seconds, peak RSS) per run
    stages = [(name, median([r[name][0] for r in seen if name in r]), max(r[name][1] for r in seen if name in r))
              for name in names]  # the report runs once, in the first pair  # fmt: skip
    totals = [sum(s[1] for s in r["stages"] if s[0] != "start" and not s[0].startswith(("report", "imports")))
              for r in runs]  # fmt: skip
    floor_totals = [f["read_s"] + f["predict_s"] + f["contrib_s"] for f in floors]
    ratios = [t / f for t, f in zip(totals, floor_totals, strict=True)]
    walker_ratios = [t / (f - fl["predict_s"] + fl["walker_s"]) for t, f, fl in zip(totals, floor_totals, floors, strict=True)]  # fmt: skip
    scoring, floor_s = median(totals), median(floor_totals)
    floor = {k: median([f[k] for f in floors]) for k in ("read_s", "predict_s", "contrib_s", "walker_s")}
    table = Table(title=f"targeting score: {run['rows']:,} declarations, {run['selected']:,} selected and explained",
                  header_style="bold")  # fmt: skip
    for col in ("stage", "seconds", "peak RSS GiB (so far)"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    table.add_row("[dim]history index build (once per history update, not in the run)",
                  f"[dim]{index['seconds']:.1f}", f"[dim]{index['peak_rss_gib']:.2f}")  # fmt: skip
    for stage, seconds, rss in stages:
        table.add_row(stage, f"{seconds:.1f}", f"{rss:.2f}")
    table.add_row(
        "[bold]scoring total (without imports and report)",
        f"[bold]{scoring:.1f}",
        f"{max(r['peak_rss_gib'] for r in runs):.2f}",
    )
    table.add_row("rows/s", f"{run['rows'] / scoring:,.0f}", "")
    table.add_row("floor: Parquet read", f"{floor['read_s']:.1f}", "")
    table.add_row("floor: Booster.predict, all rows", f"{floor['predict_s']:.1f}", "")
    table.add_row(f"floor: pred_contrib, {run['selected']:,} rows", f"{floor['contrib_s']:.1f}", "")
    table.add_row("[bold]floor total", f"[bold]{floor_s:.1f}", "")
    spread = f" ({min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} pairs)" if len(ratios) > 1 else ""
    table.add_row("[bold]scoring / floor (median of the pairs)", f"[bold]{median(ratios):.2f}x{spread}", "")
    table.add_row("[dim]compiled walker, all rows (the run's predict)", f"[dim]{floor['walker_s']:.1f}", "")
    table.add_row("[dim]scoring / floor with the walker for Booster.predict",
                  f"[dim]{median(walker_ratios):.2f}x", "")  # fmt: skip
    Console().print(table)
    if len(ratios) > 1:
        each = ", ".join(f"{t:.1f} / {f:.1f} s" for t, f in zip(totals, floor_totals, strict=True))
        Console().print(f"each pair, scoring / floor: {each}")


if __name__ == "__main__":
    main()
