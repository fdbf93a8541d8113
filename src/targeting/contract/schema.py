"""The data contract (`shared/docs/data-contract.md`) as code.

Every table `targeting` reads or writes is described here once: column names, the kind of value,
whether it is required, and the rule a value must satisfy. Validation (`validate.py`) and the
writers build their checks from these descriptions, so the contract and the code cannot drift apart.

Categorical columns are stored as plain strings with an allowed-value rule rather than as pandas
`category` (pandas categories through an MLflow pyfunc are a known trap, mlflow#12910).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import pandas as pd
import pyarrow as pa
import pycountry

from targeting.errors import ConfigError


class Kind(StrEnum):
    STRING = "string"
    CATEGORY = "category"
    TIMESTAMP = "timestamp"  # timezone-aware, stored in UTC
    DATE = "date"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"


#: pandas dtype of each kind once validated
DTYPES: dict[Kind, object] = {
    Kind.STRING: "str",
    Kind.CATEGORY: "str",
    Kind.TIMESTAMP: "datetime64[us, UTC]",
    Kind.DATE: pd.ArrowDtype(pa.date32()),
    Kind.INT: "Int64",
    Kind.FLOAT: "float64",
    Kind.BOOL: "boolean",
}

# ---- allowed values ------------------------------------------------------------------------------

MODES = ("SEA", "AIR", "POST", "EXPRESS")
PARTY_TYPES = ("ORG", "PERSON", "UNKNOWN")
ADDR_TYPES = ("COMMERCIAL", "RESIDENTIAL", "PO_BOX", "FORWARDER_WAREHOUSE", "C_O", "UNKNOWN")
FREIGHT_PAYMENT = ("A", "B", "C", "D", "H", "Y", "Z")
ITEM_CATEGORIES = ("GIFT", "DOCUMENTS", "COMMERCIAL_SAMPLE", "RETURNED_GOODS", "SALE_OF_GOODS", "OTHER")
FCL_LCL = ("FCL", "LCL")
MAIL_CLASSES = ("LETTER", "SMALL_PACKET", "PARCEL", "EMS")
CN_FORMS = ("CN22", "CN23")
SELECTION_REASONS = ("RULE", "MODEL", "RANDOM", "INTEL_TIP", "OFFICER", "MANDATORY")
EXAM_TYPES = ("DOC_CHECK", "NII_XRAY", "CANINE", "PHYSICAL_PARTIAL", "PHYSICAL_FULL", "LAB")
RESULTS = ("NO_FINDING", "DRUG", "PRECURSOR", "OTHER_VIOLATION")
HIT_RESULTS = ("DRUG", "PRECURSOR")
DRUG_CLASSES = (
    "COCAINE", "METH", "HEROIN", "CANNABIS", "MDMA", "KETAMINE", "NPS_CATHINONE", "NPS_CANNABINOID",
    "NPS_OTHER", "SYNTH_OPIOID", "PSYCHOTROPIC_RX", "PRECURSOR", "OTHER",
)  # fmt: skip
CONCEALMENTS = (
    "IN_COVER_LOAD", "RIP_ON_DOOR", "REEFER_MACHINERY", "STRUCTURAL", "IN_GOODS_ITEM",
    "LIQUID_DISSOLVED", "IMPREGNATED", "LOOSE_IN_PARCEL", "MISDECLARED_CHEMICAL",
)  # fmt: skip
DECISIONS = ("INSPECT", "EXPLORE", "RELEASE")
PATTERN_IDS = tuple(f"P{i:02d}" for i in range(1, 13))

#: every timestamp and date of the contract lies in [TIME_START, the day it is checked + TIME_AHEAD]: earlier
#: or later values are typing errors (year 9999, 0001, 2263), and would not fit the nanosecond times the
#: as-of history computes with
TIME_START = pd.Timestamp("1990-01-01", tz="UTC")
TIME_AHEAD = pd.Timedelta(days=366)


def time_range(now: pd.Timestamp | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The plausible range of a contract timestamp when checked at `now` (default: the current time)."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    return TIME_START, (now + TIME_AHEAD).floor("D")


#: user-assigned codes accepted beside the assigned ISO 3166-1 alpha-2 codes: ZZ = unknown (used by
#: the Korea Customs Service and UN/LOCODE), XK = Kosovo (widely used, not yet assigned).
EXTRA_COUNTRY_CODES = ("ZZ", "XK")


@cache
def country_codes() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (pycountry) plus the documented user-assigned extras."""
    return frozenset({c.alpha_2 for c in pycountry.countries} | set(EXTRA_COUNTRY_CODES))


def _country_alternation() -> str:
    return "(?:" + "|".join(sorted(country_codes())) + ")"


@cache
def locode_pattern() -> str:
    """UN/LOCODE: an ISO country code and a 3-character place code (letters and digits 2-9)."""
    return _country_alternation() + "[A-Z2-9]{3}"


# ---- column and table descriptions ---------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the contract and the rule its values follow."""

    name: str
    kind: Kind
    required: bool = False
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None  # regex every non-null value must match in full
    rule: str | None = None  # how the pattern reads to a person
    min_value: float | None = None
    min_inclusive: bool = True
    max_value: float | None = None
    max_inclusive: bool = True
    max_length: int | None = None
    unique: bool = False
    modes: tuple[str, ...] | None = None  # mode-specific: must be null for the other modes
    empty_ok: bool = False  # a required string that may be "" but never null (goods_desc)
    country: bool = False  # an ISO 3166-1 alpha-2 code

    @property
    def dtype(self) -> object:
        return DTYPES[self.kind]

    @property
    def coded(self) -> bool:
        """Text drawn from a code list (a closed vocabulary, country codes, UN/LOCODEs, HS codes, ...):
        a day holds few distinct values however many rows, so its rules can be checked once per value."""
        text = self.kind in (Kind.STRING, Kind.CATEGORY)
        return text and not self.unique and bool(self.allowed or self.country or self.pattern)

    def describe_rule(self) -> str:
        """The rule in words, as it appears in reject reasons and documentation."""
        parts: list[str] = []
        if self.allowed:
            parts.append("must be one of " + ", ".join(self.allowed))
        if self.country:
            parts.append("must be an ISO 3166-1 alpha-2 country code")
        if self.rule:
            parts.append(self.rule)
        if self.min_value is not None:
            parts.append(f"must be {'>=' if self.min_inclusive else '>'} {self.min_value:g}")
        if self.max_value is not None:
            parts.append(f"must be {'<=' if self.max_inclusive else '<'} {self.max_value:g}")
        return "; ".join(parts) or f"must be a {self.kind}"


@dataclass(frozen=True)
class Table:
    """A table of the contract: its columns in order and its key."""

    name: str
    columns: tuple[Column, ...]
    key: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(names) != len(set(names)):
            raise ValueError(f"table {self.name} repeats a column")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def coded(self) -> tuple[str, ...]:
        """Names of the columns whose values come from a code list (see `Column.coded`)."""
        return tuple(c.name for c in self.columns if c.coded)

    def of_kind(self, kind: str) -> tuple[str, ...]:
        """Names of the columns of one kind, in table order (e.g. every yes/no column)."""
        return tuple(c.name for c in self.columns if c.kind == kind)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def dtypes(self) -> dict[str, object]:
        return {c.name: c.dtype for c in self.columns}

    def empty_frame(self) -> pd.DataFrame:
        """A zero-row frame with every contract column at its contract dtype."""
        return pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in self.columns})


_S, _C, _T, _D, _I, _F, _B = (
    Kind.STRING, Kind.CATEGORY, Kind.TIMESTAMP, Kind.DATE, Kind.INT, Kind.FLOAT, Kind.BOOL,
)  # fmt: skip

#: Longest goods description accepted; ICS2 allows 512 characters, free text from posts can be longer.
MAX_GOODS_DESC = 4096
_LOCODE_RULE = "must be a UN/LOCODE (country code + 3 characters, e.g. KRPUS)"


def _locode(name: str, **kw: object) -> Column:
    return Column(name, _S, pattern=locode_pattern(), rule=_LOCODE_RULE, **kw)  # type: ignore[arg-type]


def _country(name: str, **kw: object) -> Column:
    return Column(name, _S, country=True, **kw)  # type: ignore[arg-type]


DECLARATION_ID = "declaration_id"
MODE = "mode"
FILED_AT = "filed_at"

DECLARATIONS = Table(
    "declarations",
    (
        Column(
            DECLARATION_ID,
            _S,
            required=True,
            unique=True,
            pattern=r"\S(?:.*\S)?",
            rule="must not be blank or padded with spaces",
            max_length=128,
        ),
        Column(MODE, _C, required=True, allowed=MODES),
        Column(FILED_AT, _T, required=True),
        Column("arrival_date", _D),
        Column("amend_count", _I, min_value=0),
        Column("transport_doc_no", _S),
        Column("master_doc_no", _S),
        Column("carrier_id", _S),
        _country("origin_country", required=True),
        _country("goods_origin_country"),
        _locode("load_loc"),
        Column(
            "transit_locs",
            _S,
            pattern=f"(?:{locode_pattern()}(?:;{locode_pattern()})*)?",
            rule="must be UN/LOCODEs joined by ';' (empty if direct)",
        ),
        _locode("discharge_loc"),
        Column("consignor_id", _S, required=True),
        Column("consignor_type", _C, allowed=PARTY_TYPES),
        _country("consignor_country"),
        Column("consignee_id", _S, required=True),
        Column("consignee_type", _C, allowed=PARTY_TYPES),
        Column("consignee_addr_type", _C, allowed=ADDR_TYPES),
        Column("consignee_addr_hash", _S),
        Column("consignee_phone_hash", _S),
        Column("consignee_email_hash", _S),
        Column("consignee_taxid_present", _B),
        Column("forwarder_id", _S),
        Column("declarant_id", _S),
        Column("notify_party_id", _S),
        Column("hs_code", _S, pattern=r"\d{6,10}", rule="must be 6 to 10 digits (leading zeros kept)"),
        Column("goods_desc", _S, required=True, empty_ok=True, max_length=MAX_GOODS_DESC),
        Column("n_packages", _I, min_value=1),
        Column(
            "package_type", _C, pattern=r"[0-9A-Z]{2}", rule="must be a UN/ECE Rec. 21 code (2 characters)"
        ),
        Column("gross_weight_kg", _F, required=True, min_value=0, min_inclusive=False),
        Column("declared_value_usd", _F, min_value=0),
        Column("freight_payment", _C, allowed=FREIGHT_PAYMENT),
        Column("item_category", _C, allowed=ITEM_CATEGORIES),
        Column("is_transit_cargo", _B),
        # SEA
        Column(
            "container_type",
            _C,
            pattern=r"[0-9A-Z]{2}[A-Z][0-9A-Z]",
            rule="must be an ISO 6346 size-type code (e.g. 42G1, 45R1)",
            modes=("SEA",),
        ),
        Column("is_reefer", _B, modes=("SEA",)),
        Column("fcl_lcl", _C, allowed=FCL_LCL, modes=("SEA",)),
        Column("vessel_imo", _S, pattern=r"\d{7}", rule="must be a 7-digit IMO number", modes=("SEA",)),
        Column("seal_discrepancy", _B, modes=("SEA",)),
        # AIR
        Column(
            "flight_no",
            _S,
            pattern=r"[A-Z0-9]{2}\d{1,4}[A-Z]?",
            rule="must be an IATA flight number (e.g. KE082)",
            modes=("AIR",),
        ),
        Column("shipper_account_age_days", _I, min_value=0, modes=("AIR",)),
        Column("known_consignor", _B, modes=("AIR",)),
        # POST
        Column("mail_class", _C, allowed=MAIL_CLASSES, modes=("POST",)),
        Column("cn_form", _C, allowed=CN_FORMS, modes=("POST",)),
        # EXPRESS
        Column("express_operator", _S, modes=("EXPRESS",)),
        Column("simplified_clearance", _B, modes=("EXPRESS",)),
    ),
    key=DECLARATION_ID,
)

EXAM_AT = "exam_at"
RESULT = "result"

INSPECTIONS = Table(
    "inspections",
    (
        Column(DECLARATION_ID, _S, required=True),
        Column("selection_reason", _C, required=True, allowed=SELECTION_REASONS),
        Column("selection_propensity", _F, min_value=0, min_inclusive=False, max_value=1),
        Column("exam_type", _C, required=True, allowed=EXAM_TYPES),
        Column(EXAM_AT, _T, required=True),
        Column(RESULT, _C, required=True, allowed=RESULTS),
        Column("drug_class", _C, allowed=DRUG_CLASSES),
        Column("quantity_kg", _F, min_value=0),
        Column("concealment", _C, allowed=CONCEALMENTS),
    ),
)

GROUND_TRUTH = Table(
    "ground_truth",
    (
        Column(DECLARATION_ID, _S, required=True, unique=True),
        Column("is_smuggling", _B, required=True),
        Column("pattern_id", _S, allowed=PATTERN_IDS),
        Column("network_id", _S),
        Column("drug_class", _C, allowed=DRUG_CLASSES),
        Column("concealment", _C, allowed=CONCEALMENTS),
        Column("true_qty_kg", _F, min_value=0),
    ),
    key=DECLARATION_ID,
)

#: number of plain-language reasons written per scored row
N_REASONS = 3


def _reason_columns(k: int) -> tuple[Column, ...]:
    cols: list[Column] = []
    for i in range(1, k + 1):
        cols += [
            Column(f"reason_{i}", _S),
            Column(f"reason_{i}_feature", _S),
            Column(f"reason_{i}_contribution", _F),
        ]
    return tuple(cols)


SCORES = Table(
    "scores",
    (
        Column(DECLARATION_ID, _S, required=True, unique=True),
        Column(MODE, _C, required=True, allowed=MODES),
        Column("risk_score", _F, required=True, min_value=0, max_value=1),
        Column("risk_rank", _I, required=True, min_value=1),
        Column("decision", _C, required=True, allowed=DECISIONS),
        *_reason_columns(N_REASONS),
        Column("model_uri", _S, required=True),
        Column("scored_at", _T, required=True),
    ),
    key=DECLARATION_ID,
)

REJECT_REASON = "reject_reason"
SOURCE_ROW = "source_row"  # 1-based data row number in the input file (header not counted)

TABLES: dict[str, Table] = {t.name: t for t in (DECLARATIONS, INSPECTIONS, GROUND_TRUTH, SCORES)}


def table(name: str) -> Table:
    """The contract table called `name`."""
    try:
        return TABLES[name]
    except KeyError:
        raise ConfigError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}") from None
