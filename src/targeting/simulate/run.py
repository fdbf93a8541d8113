"""`simulate(config, out)`: run every day of a world with the legacy policy and write the run folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

import targeting
from targeting.contract.io import write_tables, write_text
from targeting.simulate.config import SimConfig
from targeting.simulate.world import World

Progress = Callable[[int], None]


def simulate(cfg: SimConfig, out: str | Path, daily: bool = False, progress: Progress | None = None) -> Path:
    """Generate `cfg.days` days; write declarations, inspections, ground truth, parties and metadata."""
    out = Path(out)
    world = World(cfg)
    decl, insp, truth = [], [], []
    for day in range(cfg.days):
        res = world.step(day)
        decl.append(res.declarations)
        insp.append(res.inspections.drop(columns=["_row"]))
        truth.append(res.ground_truth)
        if progress:
            progress(day)
    declarations = pd.concat(decl, ignore_index=True)
    inspections = pd.concat(insp, ignore_index=True)
    ground_truth = pd.concat(truth, ignore_index=True)
    parties = _parties(declarations)
    outputs = {
        out / "declarations.parquet": declarations,
        out / "inspections.parquet": inspections,
        out / "ground_truth.parquet": ground_truth,
        out / "parties.parquet": parties,
    }
    if daily:
        dates = declarations["filed_at"].dt.strftime("%Y-%m-%d")
        for date, part in declarations.groupby(dates, sort=True):
            outputs[out / "declarations" / f"{date}.parquet"] = part.reset_index(drop=True)
    write_tables(outputs)
    drift = {"scheduled": drift_schedule(cfg), "events": world.underworld.events}
    write_text(json.dumps(drift, indent=2, default=str) + "\n", out / "drift_log.json")
    write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=True), out / "config.yaml")
    manifest = {
        "seed": cfg.seed,
        "preset": cfg.preset,
        "package_version": targeting.__version__,
        "rows": {"declarations": len(declarations), "inspections": len(inspections),
                 "ground_truth": len(ground_truth), "parties": len(parties)},
        "rows_per_mode": declarations["mode"].value_counts().sort_index().to_dict(),
        "smuggling": int(ground_truth["is_smuggling"].sum()),
        "config": cfg.to_dict(),
    }  # fmt: skip
    write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", out / "manifest.json")
    return out


def _parties(decl: pd.DataFrame) -> pd.DataFrame:
    """The observable registry: every party id seen, its role, type, country and first filing."""
    frames = []
    for role, id_col, type_col, country in (
        ("consignee", "consignee_id", "consignee_type", None),
        ("consignor", "consignor_id", "consignor_type", "consignor_country"),
        ("forwarder", "forwarder_id", None, None),
        ("declarant", "declarant_id", None, None),
    ):
        sub = decl[decl[id_col].notna()]
        g = sub.groupby(id_col, sort=True)
        frame = pd.DataFrame(
            {"party_id": g.size().index, "role": role, "first_seen": g["filed_at"].min().to_numpy()}
        )
        frame["party_type"] = g[type_col].first().to_numpy() if type_col else "ORG"
        frame["country"] = g[country].first().to_numpy() if country else "KR"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def drift_schedule(cfg: SimConfig) -> list[dict[str, object]]:
    d = cfg.drift_day
    return [
        {"event": "D1", "what": "port crackdown on LatAm reefers at KRPUS; P01 moves", "start": d(cfg.d1_start), "end": d(cfg.d1_end)},
        {"event": "D2", "what": "P05 AIR:SEA 80:20 -> 40:60", "start": 0, "end": cfg.days},
        {"event": "D3", "what": "P08 vocabulary/HS/senders rotate", "period_days": d(cfg.d3_period)},
        {"event": "D4", "what": "P02 route shift away from direct MX", "start": d(cfg.d4_day)},
        {"event": "D5", "what": "POST/EXPRESS patterns x1.5", "enabled": cfg.d5_enabled, "start": d(cfg.d5_start), "end": d(cfg.d5_end)},
        {"event": "D6", "what": "P07 switched on", "start": d(cfg.d6_day)},
        {"event": "D7", "what": "adaptive avoidance (see events)", "threshold": cfg.avoidance_threshold},
        {"event": "D8", "what": "legit drift: e-commerce growth, importer churn", "ecommerce_growth": cfg.ecommerce_growth},
    ]  # fmt: skip
