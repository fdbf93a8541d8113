"""Bad input gives one clear line (file-level) or rejects with reasons (row-level); nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from targeting.contract.io import read_raw
from targeting.contract.schema import DECLARATIONS, INSPECTIONS, time_range
from targeting.contract.validate import check_inspections_against, validate_frame
from targeting.errors import InputFileError, SchemaError
from tests.helpers import GOOD_DECLARATION, GOOD_INSPECTION, write_csv

runner = CliRunner()


def _rows(n: int) -> list[dict[str, str]]:
    return [{**GOOD_DECLARATION, "declaration_id": f"D-{i}"} for i in range(n)]


def _validate(path: Path, tbl=DECLARATIONS):
    res = validate_frame(read_raw(path), tbl)
    assert res.n_valid + res.n_rejected == res.n_read
    assert res.rejects["reject_reason"].str.len().gt(0).all()
    return res


def _cli(*args: str):
    return runner.invoke(app, list(args))


# ---- file-level problems: one line, exit 1, nothing written -------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"declaration_id,mode,filed_at\n", "missing required column"),
        (",".join(GOOD_DECLARATION).encode() + b"\n", "no data rows"),
    ],
    ids=["empty", "header-only-missing-columns", "header-only"],
)
def test_file_level_problem_exits_1_with_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    out = tmp_path / "out"
    result = _cli("validate", str(src), "--out", str(out))
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not out.exists()


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    row = {k: v for k, v in GOOD_DECLARATION.items() if k != "gross_weight_kg"}
    with pytest.raises(SchemaError, match="missing required column.*gross_weight_kg"):
        _validate(write_csv(tmp_path / "x.csv", [row]))


def test_unknown_file_type_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_text("a")
    assert "unknown file type" in _cli("validate", str(tmp_path / "x.xlsx")).output
    assert "no such file" in _cli("validate", str(tmp_path / "nope.csv")).output


def test_corrupt_parquet_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    result = _cli("validate", str(bad))
    assert result.exit_code == 1 and "not a readable Parquet file" in result.output


def test_naive_parquet_timestamps_are_a_file_level_error(tmp_path: Path) -> None:
    frame = pd.DataFrame(_rows(2))
    frame["filed_at"] = pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:00"])
    frame.to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(SchemaError, match="filed_at: timestamps have no time zone"):
        _validate(tmp_path / "naive.parquet")


def test_unknown_table_is_one_line(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", _rows(1))
    result = _cli("validate", str(src), "--table", "manifests")
    assert result.exit_code == 1 and "unknown table" in result.output


# ---- row-level problems: rejects with reasons, the rest is valid --------------------------------


def test_wrong_types_are_rejected_per_row(tmp_path: Path) -> None:
    rows = _rows(4)
    rows[1]["gross_weight_kg"] = "twelve"
    rows[2]["n_packages"] = "3.5"
    rows[3]["is_reefer"] = "sometimes"
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert res.n_valid == 1
    assert list(res.rejects["source_row"]) == [2, 3, 4]
    assert list(res.rejects["reject_reason"]) == [
        "gross_weight_kg: not a number",
        "n_packages: not a whole number",
        "is_reefer: not true/false",
    ]
    assert res.rejects.loc[0, "gross_weight_kg"] == "twelve"  # the row as read


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-03-02 08:15:00", "filed_at: timestamp without time zone"),
        ("2024-03-02", "filed_at: timestamp without time zone"),
        ("02/03/2024 08:15", "filed_at: not an ISO-8601 timestamp"),
        ("2024-13-45T99:00:00Z", "filed_at: not an ISO-8601 timestamp"),
        ("", "filed_at: must not be empty"),
    ],
)
def test_bad_timestamps(tmp_path: Path, value: str, reason: str) -> None:
    rows = _rows(2)
    rows[0]["filed_at"] = value
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert res.n_valid == 1 and res.rejects.loc[0, "reject_reason"].startswith(reason)


@pytest.mark.parametrize("weight", ["0", "-1", "-0.0001"])
def test_non_positive_weights(tmp_path: Path, weight: str) -> None:
    rows = _rows(2)
    rows[1]["gross_weight_kg"] = weight
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert list(res.rejects["reject_reason"]) == ["gross_weight_kg: must be > 0"]


def test_unknown_mode(tmp_path: Path) -> None:
    rows = _rows(2)
    rows[0]["mode"] = "RAIL"
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert res.rejects.loc[0, "reject_reason"].startswith("mode: must be one of SEA, AIR, POST, EXPRESS")


def test_duplicate_declaration_id_keeps_the_first(tmp_path: Path) -> None:
    rows = _rows(3)
    rows[2]["declaration_id"] = rows[0]["declaration_id"]
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert list(res.valid["declaration_id"]) == ["D-0", "D-1"]
    assert list(res.rejects["source_row"]) == [3]
    assert res.rejects.loc[0, "reject_reason"] == "declaration_id: duplicate of an earlier row"


def test_ids_in_ascending_order_skip_the_hash_check_and_a_repeat_among_them_is_still_found(tmp_path: Path) -> None:
    from targeting.contract.io import strictly_ascending

    rows = _rows(4)
    res = _validate(write_csv(tmp_path / "sorted.csv", rows))
    assert res.n_rejected == 0 and strictly_ascending(res.valid["declaration_id"])
    rows[2]["declaration_id"] = rows[1]["declaration_id"]  # sorted, with a repeat next to its first
    res = _validate(write_csv(tmp_path / "repeat.csv", rows))
    assert not strictly_ascending(pd.Series(["D-0", "D-1", "D-1"], dtype="str"))
    assert list(res.rejects["source_row"]) == [3]
    assert res.rejects.loc[0, "reject_reason"] == "declaration_id: duplicate of an earlier row"


def test_non_utf8_bytes_reject_only_the_affected_row(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", _rows(3))
    data = src.read_bytes().replace(b"fresh bananas, cavendish", b"fresh bananas \xe9\xff", 1)
    src.write_bytes(data)
    res = _validate(src)
    assert res.n_valid == 2 and res.n_rejected == 1
    assert res.rejects.loc[0, "reject_reason"] == "goods_desc: invalid UTF-8 bytes"
    assert res.rejects.loc[0, "declaration_id"] == "D-0"


def test_latin1_file_is_accounted_row_by_row(tmp_path: Path) -> None:
    rows = _rows(2)
    rows[1]["goods_desc"] = "café crème"
    path = tmp_path / "latin1.csv"
    pd.DataFrame(rows).to_csv(path, index=False, encoding="latin-1")
    res = _validate(path)
    assert (res.n_valid, res.n_rejected) == (1, 1)


def test_one_megabyte_goods_desc_is_rejected_not_crashed(tmp_path: Path) -> None:
    rows = _rows(2)
    rows[0]["goods_desc"] = "powder " * 150_000  # ~1 MB
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert res.n_valid == 1
    assert res.rejects.loc[0, "reject_reason"] == "goods_desc: longer than 4096 characters"
    assert len(res.rejects.loc[0, "goods_desc"]) == len(rows[0]["goods_desc"])


def test_quoted_newlines_stay_in_one_row(tmp_path: Path) -> None:
    rows = _rows(3)
    rows[1]["goods_desc"] = 'tea leaves\n"premium", 2 kg\r\nsealed'
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert res.n_read == 3 and res.n_valid == 3
    assert res.valid.loc[1, "goods_desc"] == rows[1]["goods_desc"]


def test_ragged_rows_are_rejected_not_dropped(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", _rows(3))
    lines = src.read_text().splitlines()
    lines[2] = lines[2] + ",surplus"  # second data row: one field too many
    lines[3] = ",".join(lines[3].split(",")[:5])  # third data row: too few fields
    src.write_text("\n".join(lines) + "\n")
    res = _validate(src)
    assert res.n_read == 3 and res.n_valid == 1
    reasons = list(res.rejects["reject_reason"])
    assert reasons[0].startswith("row: has ") and "fields, the header has" in reasons[0]
    assert reasons[1].startswith("row: has fewer fields than the header")


def test_empty_goods_desc_is_allowed_but_null_is_not(tmp_path: Path) -> None:
    rows = _rows(1)
    rows[0]["goods_desc"] = ""
    assert _validate(write_csv(tmp_path / "x.csv", rows)).n_valid == 1
    frame = pd.DataFrame(_rows(2))
    frame.loc[0, "goods_desc"] = None
    frame.to_parquet(tmp_path / "x.parquet")
    res = _validate(tmp_path / "x.parquet")
    assert res.rejects.loc[0, "reject_reason"] == "goods_desc: must not be empty"


def test_inspections_must_reference_known_declarations_and_follow_filing(tmp_path: Path) -> None:
    decl = _validate(write_csv(tmp_path / "d.csv", _rows(2)))
    insp_rows = [
        {**GOOD_INSPECTION, "declaration_id": "D-0"},
        {**GOOD_INSPECTION, "declaration_id": "D-404"},
        {**GOOD_INSPECTION, "declaration_id": "D-1", "exam_at": "2024-03-01T00:00:00Z"},
    ]
    insp = _validate(write_csv(tmp_path / "i.csv", insp_rows), INSPECTIONS)
    res = check_inspections_against(insp, decl.valid)
    assert res.n_valid == 1 and res.n_valid + res.n_rejected == 3
    assert list(res.rejects["reject_reason"]) == [
        "declaration_id: references no known declaration",
        "exam_at: earlier than the declaration's filed_at",
    ]
    assert list(res.rejects["source_row"]) == [2, 3]


# ---- the command -------------------------------------------------------------------------------


def test_cli_validate_writes_valid_and_rejects(tmp_path: Path) -> None:
    rows = _rows(5)
    rows[3]["mode"] = "TRUCK"
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out"
    result = _cli("validate", str(src), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "mode: must be one of" in result.output
    valid = pd.read_parquet(out / "declarations.parquet")
    rejects = pd.read_parquet(out / "rejects.parquet")
    rejects_csv = pd.read_csv(out / "rejects.csv", dtype=str)
    assert len(valid) == 4 and len(rejects) == 1 and len(rejects_csv) == 1
    assert rejects.loc[0, "declaration_id"] == "D-3"
    assert str(valid["filed_at"].dtype) == "datetime64[us, UTC]"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_validate_inspections_against_declarations(tmp_path: Path) -> None:
    decl = write_csv(tmp_path / "d.csv", _rows(1))
    insp = write_csv(tmp_path / "i.csv", [{**GOOD_INSPECTION, "declaration_id": "D-9"}])
    result = _cli("validate", str(insp), "--table", "inspections", "--declarations", str(decl))
    assert result.exit_code == 0
    assert "references no known declaration" in result.output


def test_input_file_error_is_a_targeting_error() -> None:
    assert issubclass(InputFileError, Exception)
    with pytest.raises(InputFileError):
        read_raw("/nonexistent/file.csv")


def test_the_fast_blank_or_padded_check_equals_the_python_regex() -> None:
    """declaration_id's rule runs at Arrow speed for printable ASCII and falls back to Python's `re` for
    the rest: the answers are those of the pattern itself, Unicode whitespace included."""
    import pandas as pd

    from targeting.contract.validate import _fullmatch

    values = [
        "D-1",
        " D",
        "D ",
        "A\nB",
        "A B",
        "",
        "é",
        " é",
        "aé b",
        None,
        "a\u00a0",
        "\u2003x",
        "\tx",
        "x\x0b",
    ]
    s = pd.Series(values * 3, dtype="str")
    pattern = r"\S(?:.*\S)?"
    expected = s.str.fullmatch(pattern).fillna(False).astype(bool)
    pd.testing.assert_series_equal(_fullmatch(pattern)(s), expected)
    many = pd.Series(values * 30, dtype="str")  # past the few values matched one by one: vectorised
    pd.testing.assert_series_equal(_fullmatch(pattern)(many), many.str.fullmatch(pattern).fillna(False).astype(bool))


@pytest.mark.parametrize("copies", [2, 40])  # a few values (one by one) and many (vectorised)
def test_code_list_and_pattern_checks_give_pandas_answers_for_few_and_many_values(copies: int) -> None:
    from targeting.contract.schema import locode_pattern
    from targeting.contract.validate import _fullmatch, _isin

    values = ["SEA", "sea", "AIR", "", None, "NA", "KRPUS", "krpus", "KRPU5", "É", "080390", "0803 90"]
    s = pd.Series(values * copies, dtype="str")
    allowed = ["SEA", "AIR", "NA"]
    pd.testing.assert_series_equal(_isin(allowed)(s), s.isin(allowed), check_names=False)
    for pattern in (locode_pattern(), r"\d{6,10}"):
        pd.testing.assert_series_equal(_fullmatch(pattern)(s), s.str.fullmatch(pattern).fillna(False).astype(bool))


def test_code_list_rules_checked_per_distinct_value_give_the_same_rejects(tmp_path: Path) -> None:
    """A Parquet file's code-list columns read as dictionaries (as the daily batch reads manifests): their
    rules run once per distinct value, and every valid row, reject and reason (in the same order, several
    per row) is what checking every row gives."""
    rows = _rows(400)
    bad = {"mode": ["BOAT", None, "sea"], "origin_country": ["QQ", "kr"], "load_loc": ["bad", "KRPU"],
           "transit_locs": ["A;B", "KRPUS;"], "hs_code": ["12", "12345a"], "package_type": ["x"],
           "consignee_type": ["nobody"], "fcl_lcl": ["HALF"], "declaration_id": [" padded"],
           "goods_desc": ["x" * 5000], "gross_weight_kg": ["-1"]}  # rules checked per row, after code-list columns  # fmt: skip
    for i, row in enumerate(rows):
        for j, (column, values) in enumerate(bad.items()):
            if (i + j) % (5 + j) == 0:  # overlapping patterns: some rows break several rules
                row[column] = values[(i // 7) % len(values)]
    path = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(path)

    per_row = _validate(path)
    raw = read_raw(path, DECLARATIONS.coded)
    assert set(raw.distinct) == {c for c in DECLARATIONS.coded if c in raw.frame.columns}
    values, positions = raw.distinct["load_loc"]
    held = positions >= 0
    assert (values.to_numpy(zero_copy_only=False)[positions[held]] == raw.frame["load_loc"][held]).all()
    per_value = validate_frame(raw, DECLARATIONS)
    assert per_row.n_rejected > 50 and per_row.rejects["reject_reason"].str.contains(";").sum() > 10
    pd.testing.assert_frame_equal(per_value.rejects, per_row.rejects)
    pd.testing.assert_frame_equal(per_value.valid, per_row.valid)


# ---- hardening: times out of range, truncated rows, encodings, repeated Parquet columns ------------


@pytest.mark.parametrize("value", ["9999-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                                   "1677-09-21T00:12:43Z", "1989-12-31T23:59:59Z"])  # fmt: skip
def test_times_outside_the_plausible_range_are_rejects_naming_the_range(tmp_path: Path, value: str) -> None:
    rows = _rows(3)
    rows[1]["filed_at"] = value
    res = _validate(write_csv(tmp_path / "x.csv", rows))
    assert res.n_valid == 2 and res.n_rejected == 1
    reason = res.rejects.loc[0, "reject_reason"]
    assert reason == f"filed_at: outside 1990-01-01 .. {time_range()[1]:%Y-%m-%d} (UTC)"


def test_parquet_times_and_dates_outside_the_range_are_rejects(tmp_path: Path) -> None:
    frame = pd.DataFrame(_rows(3))
    frame["filed_at"] = pd.to_datetime(frame["filed_at"], utc=True)
    frame.loc[1, "filed_at"] = pd.Timestamp("2200-01-01", tz="UTC")
    frame["arrival_date"] = pd.to_datetime(frame["arrival_date"]).dt.date
    frame.loc[2, "arrival_date"] = pd.Timestamp("1970-01-01").date()
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    res = _validate(path)
    assert res.n_valid == 1
    end = f"{time_range()[1]:%Y-%m-%d}"
    assert list(res.rejects["reject_reason"]) == [f"filed_at: outside 1990-01-01 .. {end} (UTC)",
                                                  f"arrival_date: outside 1990-01-01 .. {end} (UTC)"]  # fmt: skip


def test_a_row_missing_only_its_trailing_optional_fields_is_a_reject_saying_so(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", _rows(3))
    lines = src.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:-2])  # the last two fields (optional SEA columns) missing
    src.write_text("\n".join(lines) + "\n")
    res = _validate(src)
    assert res.n_valid == 2
    assert list(res.rejects["reject_reason"]) == ["row: has fewer fields than the header (38 of 40)"]
    assert res.rejects.loc[0, "source_row"] == 2


def test_a_utf16_file_is_said_to_be_not_utf8(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", _rows(2))
    src.write_text(src.read_text(), encoding="utf-16")
    result = _cli("validate", str(src))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "not UTF-8" in lines[0] and "UTF-16" in lines[0]


def test_a_parquet_file_with_a_repeated_column_name_is_one_line(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame(_rows(2)), preserve_index=False)
    pq.write_table(table.append_column("mode", pa.array(["AIR", "SEA"])), tmp_path / "x.parquet")
    result = _cli("validate", str(tmp_path / "x.parquet"))
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "repeated column name(s) mode" in lines[0]
    assert "Traceback" not in result.output
