"""Reading keeps codes as written; writing is atomic (no partial output on failure)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from targeting.contract.io import read_raw, write_tables
from targeting.errors import InputFileError


def test_csv_cells_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("hs_code,origin_country,n\n090240,NA,007\n,NULL,\n")
    raw = read_raw(path)
    assert raw.frame.loc[0].tolist() == ["090240", "NA", "007"]
    assert raw.frame.loc[1].tolist() == ["", "NULL", ""]
    assert raw.format == "csv" and not raw.encoding_errors


def test_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffdeclaration_id,mode\nD1,SEA\n".encode())
    assert list(read_raw(path).frame.columns) == ["declaration_id", "mode"]


def test_repeated_header_names_are_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,a\n1,2\n")
    with pytest.raises(InputFileError, match="repeated column"):
        read_raw(path)


def test_write_tables_is_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the second output needs a folder")
    with pytest.raises(OSError):
        write_tables(
            {
                tmp_path / "first.parquet": pd.DataFrame({"a": [1, 2]}),
                tmp_path / "blocker" / "second.parquet": pd.DataFrame({"a": [3]}),
            }
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]  # first.parquet was not left behind


def test_write_tables_replaces_existing_files(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    write_tables({target: pd.DataFrame({"a": [1]})})
    write_tables({target: pd.DataFrame({"a": [1, 2, 3]}), tmp_path / "t.csv": pd.DataFrame({"b": ["x"]})})
    assert len(pd.read_parquet(target)) == 3
    assert pd.read_csv(tmp_path / "t.csv")["b"].tolist() == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]


def test_csv_timestamps_are_iso_8601_utc_with_z_and_missing_ones_empty(tmp_path: Path) -> None:
    times = pd.Series(pd.to_datetime(["2024-03-02T08:15:00.5Z", None, "2024-03-02T08:15:00.5Z",
                                      "2023-12-31T23:59:59Z"], utc=True, format="ISO8601")).astype("datetime64[us, UTC]")  # fmt: skip
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "at": times})
    write_tables({tmp_path / "t.csv": frame})
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[1:] == ['"a","2024-03-02T08:15:00.500000Z"', '"b",', '"c","2024-03-02T08:15:00.500000Z"',
                         '"d","2023-12-31T23:59:59.000000Z"']  # fmt: skip


def test_csv_for_people_neutralises_formulas_and_parquet_keeps_every_value(tmp_path: Path) -> None:
    """OWASP's rule for CSV injection: a text cell beginning with =, +, -, @, tab or carriage return gets a
    leading apostrophe in the CSV; numbers and other text are written as they are."""
    values = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@cmd", "\tTAB", "\rCR", "plain",
              "a=b", None]  # fmt: skip
    frame = pd.DataFrame({"declaration_id": values, "risk_score": [-1.5, 0, 1, 2, 3, 4, 5, 6, 7]})
    write_tables({tmp_path / "x.csv": frame, tmp_path / "x.parquet": frame})
    back = pd.read_csv(tmp_path / "x.csv", dtype={"declaration_id": str}, keep_default_na=False)
    assert back["declaration_id"].tolist() == ["'" + v for v in values[:6]] + ["plain", "a=b", ""]
    assert back["risk_score"].tolist() == [-1.5, 0, 1, 2, 3, 4, 5, 6, 7]
    assert pd.read_parquet(tmp_path / "x.parquet")["declaration_id"].tolist()[:8] == values[:8]
