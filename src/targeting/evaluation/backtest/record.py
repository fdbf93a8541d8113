"""The backtest's outputs: CSV tables, PNG plots and summary.json in the output folder, and one MLflow run
with the same (parameters, each policy's headline figures as metrics, the files as artifacts)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np

from targeting import tracking
from targeting.contract.io import write_tables, write_text
from targeting.evaluation.backtest.loop import BacktestConfig
from targeting.evaluation.backtest.metrics import LoopTables, drift_events
from targeting.evaluation.backtest.plots import recall_by_week
from targeting.simulate.config import SimConfig


def write_outputs(tables: LoopTables, cfg: BacktestConfig, world: SimConfig, warmup: int, out: Path,
                  seconds: float) -> dict[str, object]:  # fmt: skip
    """The tables, plots and summary into `out`; returns the summary."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    write_tables({out / f"{name}.csv": frame for name, frame in asdict(tables).items() if len(frame)})
    events = drift_events(world, warmup)
    for name, cumulative in (("recall_by_week.png", False), ("cumulative_recall.png", True)):
        figure = recall_by_week(tables.weekly, events, warmup, cumulative)
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
    summary = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
               "world_days": world.days, "warmup_days": warmup, "seconds": round(seconds, 1),
               "policies": json.loads(tables.summary.to_json(orient="records"))}  # fmt: skip
    write_text(json.dumps(summary, indent=2) + "\n", out / "summary.json")
    return summary


def log_backtest(tables: LoopTables, cfg: BacktestConfig, out: Path) -> str:
    """One MLflow run (tag kind=backtest): parameters, each policy's recall / kg share / P07 latency as
    metrics, and the output folder as artifacts. Returns the run id."""
    tracking.setup()
    with mlflow.start_run(run_name="backtest") as run:
        mlflow.set_tag("kind", "backtest")
        mlflow.log_params({k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()})
        for row in tables.summary.itertuples():
            key = str(row.policy).replace("=", "_")
            for metric in ("recall", "kg_share", "p07_days_to_first_seizure"):
                value = float(getattr(row, metric))
                if np.isfinite(value):
                    mlflow.log_metric(f"{key}.{metric}", value)
        mlflow.log_artifacts(str(out), artifact_path="backtest")
        return run.info.run_id
