"""Training on `dev` (issue 5: <= 10 min and 8 GiB): wall time and peak memory of each stage.

Runs `targeting.training.train.train` + `log_run` (exactly what `targeting train` does) on the dev world with the
Protocol B windows (train days [0, 240), validate [240, 300)), in a fresh child process, logging to a
throw-away MLflow store. The world is read from $TARGETING_DEV_WORLD (default data/raw/sim-dev) and
generated there first when it is missing (about 2 minutes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks._measure import STAGE_RECORDER, run_child

TRAIN_END, VALID_END = "2023-08-29", "2023-10-28"  # days 240 and 300 of the dev world


def dev_world() -> Path:
    folder = Path(os.environ.get("TARGETING_DEV_WORLD", "data/raw/sim-dev"))
    if not (folder / "manifest.json").exists():
        Console(stderr=True).print(f"generating the dev world in {folder} (about 2 minutes)")
        run_child(f"from targeting.simulate.config import preset\nfrom targeting.simulate.run import simulate\n"
                  f"simulate(preset('dev', seed=7), {str(folder)!r})\n")  # fmt: skip
    return folder.resolve()


def _code(world: Path, store: str, threads: int) -> str:
    recorder = STAGE_RECORDER.format(first="reading tables")
    return f"""
import os
os.chdir({store!r})
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + {store!r} + "/mlflow.db"
{recorder}
from pathlib import Path
from targeting.contract.io import read_parquet
from targeting.config import TrainConfig
from targeting.training.splits import time_split
from targeting.training.train import TrainingData, train
from targeting.training.registry import log_run
world = Path({str(world)!r})
data = TrainingData(read_parquet(world / "declarations.parquet"), read_parquet(world / "inspections.parquet"))
result = train(data, time_split({TRAIN_END!r}, {VALID_END!r}), TrainConfig(num_threads={threads}), progress=say)
log_run(result, data, {{"declarations": str(world)}}, str(world), register=False, progress=say)
say("end")
RESULT = {{"stages": STAGES, "rows": len(data.declarations), "n_train": result.n_train, "n_valid": result.n_valid}}
"""


def main(threads: tuple[int, ...] = (1,)) -> None:
    world = dev_world()
    for n in threads:
        with tempfile.TemporaryDirectory() as store:
            r = run_child(_code(world, store, n))
        table = Table(title=f"targeting train on dev ({r['rows']:,} declarations; {r['n_train']:,} inspected "
                            f"training rows, {r['n_valid']:,} validation rows; {n} LightGBM thread(s))",
                      header_style="bold")  # fmt: skip
        for col in ("stage", "seconds", "share", "peak RSS GiB (so far)"):
            table.add_column(col, justify="right" if col != "stage" else "left")
        for stage, seconds, rss in r["stages"]:
            table.add_row(stage, f"{seconds:.1f}", f"{seconds / r['seconds']:.0%}", f"{rss:.2f}")
        table.add_row("[bold]total", f"[bold]{r['seconds']:.1f}", "", f"[bold]{r['peak_rss_gib']:.2f}")
        Console().print(table)


if __name__ == "__main__":
    main()
