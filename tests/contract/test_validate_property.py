"""Property: for any messy frame, rows in = valid + rejects, and every reject says why."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targeting.contract.io import RawTable, read_raw
from targeting.contract.schema import DECLARATIONS
from targeting.contract.validate import validate_frame
from tests.helpers import GOOD_DECLARATION

# for each column: a mix of good values and typical garbage
MESSY = {
    "declaration_id": st.sampled_from(["D-1", "D-2", "D-3", "", " D-4", "D-5"]),
    "mode": st.sampled_from(["SEA", "AIR", "POST", "EXPRESS", "sea", "", "TRUCK"]),
    "filed_at": st.sampled_from(
        [
            "2024-03-02T08:15:00Z",
            "2024-03-02T08:15:00+09:00",
            "2024-03-02 08:15",
            "",
            "soon",
            "2024-02-30T00:00:00Z",
        ]
    ),
    "origin_country": st.sampled_from(["CN", "NA", "XX", "", "cn", "CHN"]),
    "consignor_id": st.sampled_from(["S-1", "", "S-2"]),
    "consignee_id": st.sampled_from(["C-1", "", "C-2"]),
    "goods_desc": st.text(max_size=30),
    "gross_weight_kg": st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(str), st.sampled_from(["", "abc", "1e3", "-0"])
    ),
    "hs_code": st.sampled_from(["090240", "90240", "", "0902400000", "09.02"]),
    "n_packages": st.sampled_from(["1", "0", "2.5", "", "many", "10"]),
    "is_reefer": st.sampled_from(["true", "false", "", "maybe", "1"]),
    "transit_locs": st.sampled_from(["", "SGSIN", "SGSIN;MYPKG", "SGSIN,", ";"]),
}

rows = st.fixed_dictionaries(MESSY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rows, min_size=1, max_size=25))
def test_every_row_is_accounted_for_csv(tmp_path: Path, records: list[dict[str, str]]) -> None:
    path = tmp_path / "messy.csv"
    # QUOTE_ALL: pandas leaves a bare "\r" unquoted, which any CSV reader takes as a line break
    pd.DataFrame(records).to_csv(path, index=False, quoting=csv.QUOTE_ALL)
    res = validate_frame(read_raw(path), DECLARATIONS)
    assert res.n_read == len(records)
    assert res.n_valid + res.n_rejected == len(records)
    assert res.rejects["reject_reason"].notna().all()
    assert (res.rejects["reject_reason"].str.len() > 0).all()
    # rejected positions and valid positions partition the input
    got = sorted(list(res.valid_pos) + [r - 1 for r in res.rejects["source_row"]])
    assert got == list(range(len(records)))
    # every valid row satisfies the rules that were checked
    assert res.valid["mode"].isin(["SEA", "AIR", "POST", "EXPRESS"]).all()
    assert (res.valid["gross_weight_kg"] > 0).all()
    assert res.valid["declaration_id"].is_unique


@settings(max_examples=40, deadline=None)
@given(st.lists(rows, min_size=1, max_size=25))
def test_every_row_is_accounted_for_in_memory(records: list[dict[str, str]]) -> None:
    frame = pd.DataFrame([{**GOOD_DECLARATION, **r} for r in records])
    res = validate_frame(RawTable(frame, Path("mem"), "csv"), DECLARATIONS)
    assert res.n_valid + res.n_rejected == len(records)
    assert all(isinstance(r, str) and r for r in res.rejects["reject_reason"])
