"""What tests share besides fixtures: one contract-valid declaration and inspection, a writer for test files,
a scratch MLflow project, and a champion model trained on a tiny world."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
KCS_DIR = SHARED / "external" / "customs-declaration-datasets"

GOOD_DECLARATION = {
    "declaration_id": "D-0001",
    "mode": "SEA",
    "filed_at": "2024-03-02T08:15:00Z",
    "arrival_date": "2024-03-10",
    "amend_count": "0",
    "transport_doc_no": "MAEU123456789",
    "master_doc_no": "MAEU999",
    "carrier_id": "CAR-01",
    "origin_country": "EC",
    "goods_origin_country": "EC",
    "load_loc": "ECGYE",
    "transit_locs": "PABLB;MXZLO",
    "discharge_loc": "KRPUS",
    "consignor_id": "EXP-1",
    "consignor_type": "ORG",
    "consignor_country": "EC",
    "consignee_id": "IMP-1",
    "consignee_type": "ORG",
    "consignee_addr_type": "COMMERCIAL",
    "consignee_addr_hash": "a1b2",
    "consignee_phone_hash": "p1",
    "consignee_email_hash": "e1",
    "consignee_taxid_present": "true",
    "forwarder_id": "FWD-1",
    "declarant_id": "DCL-1",
    "notify_party_id": "NP-1",
    "hs_code": "080390",
    "goods_desc": "fresh bananas, cavendish",
    "n_packages": "1080",
    "package_type": "CT",
    "gross_weight_kg": "20500.5",
    "declared_value_usd": "15000",
    "freight_payment": "H",
    "item_category": "SALE_OF_GOODS",
    "is_transit_cargo": "false",
    "container_type": "45R1",
    "is_reefer": "true",
    "fcl_lcl": "FCL",
    "vessel_imo": "9321483",
    "seal_discrepancy": "false",
}

GOOD_INSPECTION = {
    "declaration_id": "D-0001",
    "selection_reason": "RULE",
    "selection_propensity": "1.0",
    "exam_type": "NII_XRAY",
    "exam_at": "2024-03-11T02:00:00Z",
    "result": "DRUG",
    "drug_class": "COCAINE",
    "quantity_kg": "42.5",
    "concealment": "RIP_ON_DOOR",
}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@contextmanager
def scratch_project(folder: Path, **env: str) -> Iterator[Path]:
    """Work in `folder` with its own MLflow store (and extra environment variables), undone afterwards."""
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    mp.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    for key, value in env.items():
        mp.setenv(key, value)
    try:
        yield folder
    finally:
        mp.undo()


def make_champion(folder: Path) -> Path:
    """A tiny world (daily files too) and a model trained on its first 10 days, registered and promoted,
    in the MLflow store that MLFLOW_TRACKING_URI names. Returns the world folder."""
    from typer.testing import CliRunner

    from targeting.cli import app
    from targeting.simulate.config import preset
    from targeting.simulate.run import simulate

    world = simulate(preset("tiny", seed=3, prevalence_multiplier=40), folder / "world", daily=True)
    trained = CliRunner().invoke(app, ["train", "--declarations", str(world / "declarations.parquet"),
                                       "--inspections", str(world / "inspections.parquet"),
                                       "--train-end", "2023-01-10", "--valid-end", "2023-01-14", "--register"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    promoted = CliRunner().invoke(app, ["promote"])
    assert promoted.exit_code == 0, promoted.output
    return world
