"""The MLflow record of a scoring run (tag `job=scoring`): what was scored with which model, and how."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from targeting import tracking
from targeting.scoring.batch import ScoreResult


def log_scoring_run(result: ScoreResult, params: dict[str, str | int | float], out_dir: Path) -> str:
    """One MLflow run per batch: model version, counts per mode and decision, score distribution, PSI, the
    summary and the report (when the run wrote one)."""
    tracking.setup()
    summary = result.summary
    with mlflow.start_run(run_name=f"scoring-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}") as run:
        mlflow.set_tags({"job": "scoring", "model_uri": summary.get("model_uri", ""),
                         "drift_warning": str(bool(summary["drift_warnings"])).lower()})  # fmt: skip
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics: dict[str, float] = {
            "declarations": summary["declarations"],
            "rejected": summary.get("rejected", 0),
        }
        for m in summary["per_mode"]:
            for d in ("INSPECT", "EXPLORE", "RELEASE"):
                metrics[f"{d.lower()}_{m['mode']}"] = m[d]
            metrics[f"budget_used_{m['mode']}"] = m["budget_used"]
        metrics |= {f"risk_score_{k}": v for k, v in summary["score_quantiles"].items()}
        if len(result.drift):
            metrics["psi_max"] = float(result.drift["psi"].max())
            metrics |= {
                f"psi_{r.column}": float(r.psi) for r in result.drift.itertuples() if r.column == "risk_score"
            }
            mlflow.log_table(result.drift, "drift/psi.json")
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary, "summary.json")
        report = out_dir / "report.html"
        if report.exists():
            mlflow.log_artifact(str(report))
        return run.info.run_id
