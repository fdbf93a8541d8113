"""The public Korea Customs Service declarations (Jeong et al. 2022) -> `declarations` + `inspections`.

Source: `shared/external/customs-declaration-datasets/` (CTGAN-synthetic, every row inspected, label
`Fraud` = duty fraud). Mapping decisions, each also stated in the README:

* `mode`: Mode of Transport 10 maritime -> SEA, 40 air -> AIR, 50 mail -> POST. Korea had no open land
  border in 2020-21, so road (30) and rail (20) consignments reach it on ferries and map to SEA, as does
  "other" (90, 0.2 % of rows). The original code is kept in `kcs_transport_mode`.
* `filed_at`: the declaration date at 00:00 UTC (KCS publishes a date only; keeping the calendar date
  makes the published 2020 / 2021-Q1 splits line up with UTC windows). `exam_at` = `filed_at` +
  `exam_lag_days`.
* parties: Importer -> consignee, Seller -> consignor (9.6 % missing: `UNKNOWN`, type `UNKNOWN`),
  Declarant -> declarant, Courier -> forwarder.
* goods: HS6 left-padded to 6 digits; Net Mass -> `gross_weight_kg` (net, the only mass published; 0.0
  means below the 0.1 kg reporting unit and becomes `zero_mass_kg`, raw value kept in `kcs_net_mass`);
  Item Price (KRW) -> `declared_value_usd` at the fixed rate `krw_per_usd`.
* places: Country of Departure -> `origin_country`, Country of Origin -> `goods_origin_country`, Office
  ID -> `discharge_loc` for the offices whose port is known, all offices kept in `kcs_office_id`.
* outcomes: one inspection per row (`selection_reason` RULE: KCS's selectivity; `exam_type`
  DOC_CHECK: duty fraud is found on documents), `Fraud` 1 -> OTHER_VIOLATION else NO_FINDING, and
  `Critical Fraud` kept as `kcs_critical_fraud`. Train with `--target violation` on this data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from targeting.config import KcsConfig
from targeting.contract.io import RawTable, read_raw
from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.contract.validate import ValidationResult, check_inspections_against, validate_frame
from targeting.errors import SchemaError

KCS_COLUMNS = (
    "Declaration ID", "Date", "Office ID", "Process Type", "Import Type", "Import Use", "Payment Type",
    "Mode of Transport", "Declarant ID", "Importer ID", "Seller ID", "Courier ID", "HS6 Code",
    "Country of Departure", "Country of Origin", "Tax Rate", "Tax Type", "Country of Origin Indicator",
    "Net Mass", "Item Price", "Fraud", "Critical Fraud",
)  # fmt: skip

TRANSPORT_MODES = {"10": "SEA", "20": "SEA", "30": "SEA", "40": "AIR", "50": "POST", "90": "SEA"}

#: KCS office -> UN/LOCODE of the port of entry, for the offices the dataset README names.
OFFICE_LOCODES = {"10": "KRSEL", "13": "KRINC", "16": "KRPTK", "20": "KRINC", "30": "KRPUS", "40": "KRINC"}

#: KCS-only columns carried as extra columns (features for Protocol A).
EXTRA_COLUMNS = {
    "Office ID": "kcs_office_id",
    "Process Type": "kcs_process_type",
    "Import Type": "kcs_import_type",
    "Import Use": "kcs_import_use",
    "Payment Type": "kcs_payment_type",
    "Mode of Transport": "kcs_transport_mode",
    "Tax Rate": "kcs_tax_rate",
    "Tax Type": "kcs_tax_type",
    "Country of Origin Indicator": "kcs_origin_indicator",
    "Net Mass": "kcs_net_mass",
    "Item Price": "kcs_item_price_krw",
}


@dataclass
class KcsImport:
    declarations: ValidationResult
    inspections: ValidationResult


def _blank_to_na(s: pd.Series) -> pd.Series:
    return s.mask(s.str.strip() == "")


def to_contract(kcs: pd.DataFrame, config: KcsConfig = KcsConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Map the KCS columns (all strings, as read) onto untyped declarations and inspections frames.

    Values the mapping cannot translate stay as they are, so validation rejects them with a reason.
    """
    missing = [c for c in KCS_COLUMNS if c not in kcs.columns]
    if missing:
        raise SchemaError(f"KCS file: missing column(s) {', '.join(missing)}")
    k = kcs.apply(lambda s: _blank_to_na(s.astype("str")))
    ids = config.id_prefix + "-" + k["Declaration ID"].str.strip()
    filed = k["Date"].str.strip() + "T00:00:00Z"
    mode = k["Mode of Transport"].map(TRANSPORT_MODES).fillna(k["Mode of Transport"])
    mass = pd.to_numeric(k["Net Mass"], errors="coerce")
    weight = mass.where(mass != 0, config.zero_mass_kg)
    price = pd.to_numeric(k["Item Price"], errors="coerce")
    seller_missing = k["Seller ID"].isna()

    decl = pd.DataFrame(
        {
            "declaration_id": ids,
            "mode": mode,
            "filed_at": filed,
            "origin_country": k["Country of Departure"],
            "goods_origin_country": k["Country of Origin"],
            "discharge_loc": k["Office ID"].map(OFFICE_LOCODES),
            "consignor_id": k["Seller ID"].fillna("UNKNOWN"),
            "consignor_type": np.where(seller_missing, "UNKNOWN", None),
            "consignee_id": k["Importer ID"],
            "forwarder_id": k["Courier ID"],
            "declarant_id": k["Declarant ID"],
            "hs_code": k["HS6 Code"].str.strip().str.zfill(6),
            "goods_desc": "",
            # keep unparseable text as is so that validation names it
            "gross_weight_kg": weight.astype("object").where(mass.notna(), k["Net Mass"]),
            "declared_value_usd": (price / config.krw_per_usd)
            .astype("object")
            .where(price.notna(), k["Item Price"]),
        }
    )
    for src, dst in EXTRA_COLUMNS.items():
        decl[dst] = k[src]

    fraud = k["Fraud"].str.strip()
    insp = pd.DataFrame(
        {
            "declaration_id": ids,
            "selection_reason": "RULE",
            "exam_type": "DOC_CHECK",
            "exam_at": (pd.to_datetime(k["Date"], format="%Y-%m-%d", errors="coerce", utc=True)
                        + pd.Timedelta(days=config.exam_lag_days)).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "result": fraud.map({"1": "OTHER_VIOLATION", "0": "NO_FINDING"}).fillna(fraud),
            "kcs_fraud": fraud,
            "kcs_critical_fraud": k["Critical Fraud"],
        }
    )  # fmt: skip
    return decl, insp


def import_kcs(path: str | Path, config: KcsConfig = KcsConfig()) -> KcsImport:
    """Read a KCS CSV, map it and validate both tables; every input row is in valid or rejects."""
    raw = read_raw(path)
    decl, insp = to_contract(raw.frame, config)
    declarations = validate_frame(RawTable(decl, raw.path, "mapped", raw.encoding_errors, raw.row_errors),
                                  DECLARATIONS)  # fmt: skip
    inspections = validate_frame(RawTable(insp, raw.path, "mapped", raw.encoding_errors, raw.row_errors),
                                 INSPECTIONS)  # fmt: skip
    inspections = check_inspections_against(inspections, declarations.valid)
    return KcsImport(declarations, inspections)
