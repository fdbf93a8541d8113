"""Each rule of the data contract accepts a good value and rejects a bad one, naming the column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from targeting.contract.io import read_raw
from targeting.contract.schema import DECLARATIONS, GROUND_TRUTH, INSPECTIONS, SCORES, TABLES, Kind, table
from targeting.contract.validate import validate_frame
from targeting.errors import ConfigError
from tests.helpers import GOOD_DECLARATION, GOOD_INSPECTION, write_csv

# (column, good value, bad value); mode-specific columns are tried on a row of their own mode
DECLARATION_RULES = [
    ("declaration_id", "X-9", " padded "),
    ("mode", "AIR", "BOAT"),
    ("filed_at", "2024-03-02T08:15:00+09:00", "2024-03-02T08:15:00"),
    ("filed_at", "2024-03-02T08:15:00.123Z", "yesterday"),
    ("arrival_date", "2024-12-31", "31/12/2024"),
    ("amend_count", "3", "-1"),
    ("amend_count", "0", "1.5"),
    ("origin_country", "NA", "QQ"),  # NA is Namibia, not a missing value
    ("origin_country", "CN", ""),
    ("goods_origin_country", "TH", "THA"),
    ("load_loc", "THBKK", "BKK"),
    ("transit_locs", "", "SGSIN,MYPKG"),
    ("transit_locs", "SGSIN;MYPKG", "SGSIN;"),
    ("discharge_loc", "KRPUS", "krpus"),
    ("consignor_id", "S-1", ""),
    ("consignor_type", "PERSON", "COMPANY"),
    ("consignor_country", "DE", "Germany"),
    ("consignee_id", "C-1", ""),
    ("consignee_type", "UNKNOWN", "org"),
    ("consignee_addr_type", "PO_BOX", "HOME"),
    ("consignee_taxid_present", "no", "maybe"),
    ("hs_code", "0902400000", "9024"),
    ("hs_code", "090240", "09024O"),
    ("goods_desc", "", "x" * 5000),
    ("n_packages", "1", "0"),
    ("package_type", "DR", "DRUM"),
    ("gross_weight_kg", "0.02", "0"),
    ("gross_weight_kg", "12", "-3"),
    ("gross_weight_kg", "12", "heavy"),
    ("gross_weight_kg", "12", "inf"),
    ("declared_value_usd", "0", "-0.01"),
    ("freight_payment", "A", "CASH"),
    ("item_category", "GIFT", "PRESENT"),
    ("is_transit_cargo", "1", "2"),
    ("container_type", "42G1", "40ft"),
    ("is_reefer", "FALSE", "cold"),
    ("fcl_lcl", "LCL", "BULK"),
    ("vessel_imo", "9321483", "IMO9321483"),
    ("seal_discrepancy", "true", "broken"),
]

MODE_SPECIFIC = [
    ("AIR", "flight_no", "KE082", "KE-082"),
    ("AIR", "shipper_account_age_days", "12", "-2"),
    ("AIR", "known_consignor", "true", "known"),
    ("POST", "mail_class", "EMS", "PRIORITY"),
    ("POST", "cn_form", "CN23", "CN24"),
    ("EXPRESS", "express_operator", "DHL", None),
    ("EXPRESS", "simplified_clearance", "true", "de minimis"),
]

INSPECTION_RULES = [
    ("selection_reason", "INTEL_TIP", "TIP"),
    ("selection_propensity", "0.01", "0"),
    ("selection_propensity", "1", "1.2"),
    ("exam_type", "CANINE", "DOG"),
    ("exam_at", "2024-03-11T02:00:00Z", "2024-03-11"),
    ("result", "PRECURSOR", "SEIZURE"),
    ("drug_class", "NPS_CATHINONE", "BATH_SALTS"),
    ("quantity_kg", "0", "-1"),
    ("concealment", "IMPREGNATED", "HIDDEN"),
]


def _row_for_mode(mode: str) -> dict[str, str]:
    row = dict(GOOD_DECLARATION)
    if mode != "SEA":
        for col in ("container_type", "is_reefer", "fcl_lcl", "vessel_imo", "seal_discrepancy"):
            row[col] = ""
    row["mode"] = mode
    return row


def _validate_one(tmp_path: Path, row: dict[str, str], tbl=DECLARATIONS):
    return validate_frame(read_raw(write_csv(tmp_path / "one.csv", [row])), tbl)


@pytest.mark.parametrize(("column", "good", "bad"), DECLARATION_RULES)
def test_declaration_rule(tmp_path: Path, column: str, good: str, bad: str) -> None:
    base = _row_for_mode(good) if column == "mode" else GOOD_DECLARATION
    ok = _validate_one(tmp_path, {**base, column: good})
    assert ok.n_valid == 1, ok.rejects.get("reject_reason")
    res = _validate_one(tmp_path, {**base, column: bad})
    assert res.n_valid == 0 and res.n_rejected == 1
    reason = res.rejects.loc[0, "reject_reason"]
    assert reason.startswith(f"{column}: "), reason
    assert "\n" not in reason


@pytest.mark.parametrize(("mode", "column", "good", "bad"), MODE_SPECIFIC)
def test_mode_specific_rule(tmp_path: Path, mode: str, column: str, good: str, bad: str | None) -> None:
    ok = _validate_one(tmp_path, {**_row_for_mode(mode), column: good})
    assert ok.n_valid == 1, ok.rejects.get("reject_reason")
    other = "SEA" if mode != "SEA" else "AIR"
    wrong_mode = _validate_one(tmp_path, {**GOOD_DECLARATION, "mode": other, column: good})
    assert wrong_mode.n_rejected == 1
    assert f"{column}: must be empty unless mode is {mode}" in wrong_mode.rejects.loc[0, "reject_reason"]
    if bad is not None:
        res = _validate_one(tmp_path, {**_row_for_mode(mode), column: bad})
        assert res.n_rejected == 1
        assert res.rejects.loc[0, "reject_reason"].startswith(f"{column}: ")


@pytest.mark.parametrize(("column", "good", "bad"), INSPECTION_RULES)
def test_inspection_rule(tmp_path: Path, column: str, good: str, bad: str) -> None:
    ok = _validate_one(tmp_path, {**GOOD_INSPECTION, column: good}, INSPECTIONS)
    assert ok.n_valid == 1, ok.rejects.get("reject_reason")
    res = _validate_one(tmp_path, {**GOOD_INSPECTION, column: bad}, INSPECTIONS)
    assert res.n_rejected == 1
    assert res.rejects.loc[0, "reject_reason"].startswith(f"{column}: ")


def test_valid_rows_have_contract_dtypes(tmp_path: Path) -> None:
    """Typing gives every column its contract dtype (pandera does not check types again), from CSV text
    and from a Parquet file's own types (read as the daily batch reads it)."""
    res = _validate_one(tmp_path, GOOD_DECLARATION)
    for col in DECLARATIONS.columns:
        assert str(res.valid[col.name].dtype) == str(col.dtype), col.name
    assert res.valid.loc[0, "hs_code"] == "080390"
    assert str(res.valid.loc[0, "filed_at"].tz) == "UTC"
    native = res.valid.astype({"amend_count": "int64", "gross_weight_kg": "float32", "is_reefer": "bool"})
    native.to_parquet(tmp_path / "one.parquet")
    typed = validate_frame(read_raw(tmp_path / "one.parquet", DECLARATIONS.coded), DECLARATIONS)
    assert typed.n_valid == 1
    for col in DECLARATIONS.columns:
        assert str(typed.valid[col.name].dtype) == str(col.dtype), col.name


def test_timestamps_convert_to_utc(tmp_path: Path) -> None:
    res = _validate_one(tmp_path, {**GOOD_DECLARATION, "filed_at": "2024-03-02T09:00:00+09:00"})
    assert res.valid.loc[0, "filed_at"] == pd.Timestamp("2024-03-02T00:00:00Z")


def test_absent_optional_columns_are_added_and_extras_kept(tmp_path: Path) -> None:
    row = {c: GOOD_DECLARATION[c] for c in DECLARATIONS.required} | {"my_extra": "007"}
    res = _validate_one(tmp_path, row)
    assert res.n_valid == 1
    assert list(res.valid.columns) == [*DECLARATIONS.names, "my_extra"]
    assert res.valid.loc[0, "my_extra"] == "007"
    assert res.valid["hs_code"].isna().all()


def test_tables_are_described_completely() -> None:
    assert set(TABLES) == {"declarations", "inspections", "ground_truth", "scores"}
    for tbl in (DECLARATIONS, INSPECTIONS, GROUND_TRUTH, SCORES):
        assert tbl.required, tbl.name
        assert all(isinstance(c.kind, Kind) for c in tbl.columns)
        assert set(tbl.empty_frame().columns) == set(tbl.names)
    assert "reason_3_contribution" in SCORES.names
    with pytest.raises(ConfigError, match="unknown table"):
        table("manifests")
