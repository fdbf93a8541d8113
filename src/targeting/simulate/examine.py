"""Inspections of a scoring run's selection in a simulated world: what the officers would record.

The daily loop on the simulated world needs outcomes for the declarations the model selected. The world
knows the truth of every declaration (`ground_truth.parquet`); each selected row is examined as the
world examines its own selections (`world.examination`: the exams of its mode, each concealment's chance
to be found), so a selected smuggling attempt is seized or missed as it would be. Outcomes are written
in the contract's `inspections` layout without `selection_reason` / `selection_propensity`, which
`targeting history add --scores` takes from the scoring run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from targeting.contract.io import read_parquet
from targeting.contract.schema import INSPECTIONS
from targeting.errors import InputFileError
from targeting.simulate.world import DETECTION, examination

SELECTED = ("INSPECT", "EXPLORE")
TRUTH = ["declaration_id", "is_smuggling", "drug_class", "concealment", "true_qty_kg", "positive_fraction",
         "non_drug_violation"]  # fmt: skip


def examine(world: Path, scores: Path, seed: int = 0) -> pd.DataFrame:
    """The inspection rows of the run's INSPECT and EXPLORE declarations (contract columns, without the
    selection columns), examined against the world's ground truth with a seeded generator."""
    if not (world / "ground_truth.parquet").exists():
        raise InputFileError(f"{world}: not a simulator run folder (no ground_truth.parquet)")
    run = read_parquet(scores)
    selected = run[run["decision"].isin(SELECTED)]
    truth = read_parquet(world / "ground_truth.parquet", columns=TRUTH).set_index("declaration_id")
    decl = read_parquet(world / "declarations.parquet", columns=["declaration_id", "mode", "filed_at", "arrival_date"])
    decl = decl.set_index("declaration_id")
    ids = selected["declaration_id"].astype(str)
    unknown = ids[~ids.isin(truth.index)]
    if len(unknown):
        raise InputFileError(f"{scores}: {len(unknown)} selected declaration(s) are not in the world {world}, "
                             f"e.g. {unknown.iloc[0]}")  # fmt: skip
    rng = np.random.default_rng(seed)
    rows = []
    for rid in ids:
        t, d = truth.loc[rid], decl.loc[rid]
        smuggling = bool(t["is_smuggling"])
        det = DETECTION.get(t["concealment"]) if smuggling else None
        lead = (pd.Timestamp(d["arrival_date"]) - d["filed_at"].tz_convert(None).normalize()).days \
            if pd.notna(d["arrival_date"]) else 0  # fmt: skip
        exam_at = d["filed_at"] + pd.Timedelta(days=max(int(lead), 0), hours=int(rng.integers(1, 20)))
        exams, hit, other = examination(rng, "MODEL", str(d["mode"]), det, smuggling, bool(t["non_drug_violation"]))
        for j, exam in enumerate(exams):
            last = j == len(exams) - 1
            result = ("PRECURSOR" if t["drug_class"] == "PRECURSOR" else "DRUG") if last and hit \
                else "OTHER_VIOLATION" if last and other else "NO_FINDING"  # fmt: skip
            found = result in ("DRUG", "PRECURSOR")
            rows.append({"declaration_id": rid, "exam_type": exam, "exam_at": exam_at + pd.Timedelta(hours=3 * j),
                         "result": result, "drug_class": t["drug_class"] if found else None,
                         "quantity_kg": round(float(t["true_qty_kg"]) * float(t["positive_fraction"]), 4) if found else None,
                         "concealment": t["concealment"] if found else None})  # fmt: skip
    out = pd.DataFrame(rows, columns=[c for c in INSPECTIONS.names if not c.startswith("selection_")])
    out["exam_at"] = pd.to_datetime(out["exam_at"], utc=True).astype("datetime64[us, UTC]")
    return out
