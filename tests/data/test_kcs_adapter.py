"""The KCS adapter on the shared train file: rows preserved, labels as published, codes intact."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from targeting.contract.adapters.kcs import import_kcs, to_contract
from targeting.contract.io import RawTable, read_raw
from targeting.contract.labels import labels
from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.contract.validate import validate_frame
from targeting.errors import SchemaError
from tests.helpers import KCS_DIR


@pytest.fixture(scope="module")
def imported(kcs_train_path: Path):
    return import_kcs(kcs_train_path)


@pytest.fixture(scope="module")
def kcs_train_path() -> Path:
    from tests.helpers import KCS_DIR

    return KCS_DIR / "df_syn_train_eng.csv"


def test_row_count_preserved(imported) -> None:
    assert imported.declarations.n_read == 37_385
    assert imported.declarations.n_valid == 37_385 and imported.declarations.n_rejected == 0
    assert imported.inspections.n_valid == 37_385 and imported.inspections.n_rejected == 0


def test_label_rates_match_the_readme(imported) -> None:
    insp = imported.inspections.valid
    lab = labels(insp, "violation")
    assert round(lab["label"].mean() * 100, 2) == 21.70
    assert labels(insp, "hit")["label"].sum() == 0  # duty fraud is not a drug hit
    assert (insp["kcs_critical_fraud"] == "2").sum() == 394


def test_codes_and_mapping(imported, kcs_train_path: Path) -> None:
    decl = imported.declarations.valid
    assert decl["hs_code"].str.len().eq(6).all()
    assert decl["hs_code"].str.startswith("0").any()  # leading zeros kept
    assert decl["mode"].value_counts().to_dict() == {"SEA": 21_404, "AIR": 15_387, "POST": 594}
    assert decl["kcs_transport_mode"].isin(["10", "20", "30", "40", "50", "90"]).all()
    assert decl["filed_at"].min() == pd.Timestamp("2020-01-01T00:00:00Z")
    assert (decl["gross_weight_kg"] > 0).all()
    assert (decl.loc[decl["kcs_net_mass"] == "0.0", "gross_weight_kg"] == 0.05).all()
    raw = pd.read_csv(kcs_train_path, dtype=str, nrows=1)
    assert decl.loc[0, "declared_value_usd"] == pytest.approx(float(raw.loc[0, "Item Price"]) / 1180.1)
    assert decl.loc[0, "consignee_id"] == raw.loc[0, "Importer ID"]
    for extra in ("kcs_import_type", "kcs_import_use", "kcs_payment_type", "kcs_process_type", "kcs_tax_rate",
                  "kcs_tax_type", "kcs_origin_indicator", "kcs_office_id"):  # fmt: skip
        assert extra in decl.columns


def test_outputs_are_contract_valid(tmp_path: Path, kcs_train_path: Path) -> None:
    out = tmp_path / "kcs"
    result = CliRunner().invoke(app, ["import-kcs", str(kcs_train_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name, tbl in (("declarations", DECLARATIONS), ("inspections", INSPECTIONS)):
        again = validate_frame(read_raw(out / f"{name}.parquet"), tbl)
        assert again.n_rejected == 0 and again.n_valid == 37_385


def test_unmappable_values_are_rejected_with_reasons() -> None:
    raw = pd.read_csv(KCS_DIR / "df_syn_valid_eng.csv", dtype=str, keep_default_na=False, nrows=5)
    raw.loc[1, "Mode of Transport"] = "60"
    raw.loc[2, "Net Mass"] = "heavy"
    decl, _ = to_contract(raw)
    res = validate_frame(RawTable(decl, Path("kcs"), "mapped"), DECLARATIONS)
    assert res.n_valid == 3
    assert list(res.rejects["reject_reason"]) == ["mode: must be one of SEA, AIR, POST, EXPRESS",
                                                  "gross_weight_kg: not a number"]  # fmt: skip


def test_wrong_file_is_one_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match="KCS file: missing column"):
        import_kcs(src)
