"""The bad-input suite: every kind of bad file `validate` and `score` may meet, and every kind of bad payload
the server may meet, each checked the same way: a file problem is one line and exit 1 with nothing written;
a bad row is a reject naming its column and rule while the rest is scored (rows in = scored + rejected);
no traceback ever; the server answers valid JSON and stays up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from tests.helpers import GOOD_DECLARATION, make_champion, scratch_project, write_csv

pytestmark = pytest.mark.slow


def _rows(n: int = 4) -> list[dict[str, str]]:
    return [{**GOOD_DECLARATION, "declaration_id": f"S-{i}"} for i in range(n)]


def _csv_lines(folder: Path) -> list[str]:
    return write_csv(folder / "base.csv", _rows()).read_text().splitlines()


def _parquet(folder: Path, frame: pd.DataFrame | pa.Table, name: str = "in.parquet") -> Path:
    path = folder / name
    if isinstance(frame, pd.DataFrame):
        frame.to_parquet(path)
    else:
        pq.write_table(frame, path)
    return path


def _typed() -> pd.DataFrame:
    frame = pd.DataFrame(_rows())
    frame["filed_at"] = pd.to_datetime(frame["filed_at"], utc=True)
    frame["gross_weight_kg"] = frame["gross_weight_kg"].astype(float)
    return frame


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _without(column: str) -> Callable[[Path], Path]:
    return lambda d: write_csv(d / "in.csv", [{k: v for k, v in r.items() if k != column} for r in _rows()])


# ---- file-level problems: one line, exit 1, nothing written ---------------------------------------

FILE_PROBLEMS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty file": (lambda d: _bytes(d / "in.csv", b""), "file is empty"),
    "only a byte-order mark": (lambda d: _bytes(d / "in.csv", b"\xef\xbb\xbf"), "empty"),
    "header only": (lambda d: _bytes(d / "in.csv", (",".join(GOOD_DECLARATION) + "\n").encode()), "no data rows"),  # fmt: skip
    **{f"no {c} column": (_without(c), f"missing required column(s) {c}")
       for c in ("declaration_id", "mode", "filed_at", "origin_country", "consignor_id", "consignee_id",
                 "goods_desc", "gross_weight_kg")},  # fmt: skip
    "repeated header name": (lambda d: _bytes(d / "in.csv", b"declaration_id,mode,mode\nD,SEA,SEA\n"),
                             "blank or repeated column names"),  # fmt: skip
    "blank header name": (lambda d: _bytes(d / "in.csv", b"declaration_id,,mode\nD,x,SEA\n"),
                          "blank or repeated column names"),  # fmt: skip
    "UTF-16 text": (lambda d: _bytes(d / "in.csv", "\n".join(_csv_lines(d)).encode("utf-16")), "not UTF-8"),  # fmt: skip
    "unknown file type": (lambda d: _bytes(d / "in.xlsx", b"PK\x03\x04"), "unknown file type"),
    "a header without a line end": (lambda d: _bytes(d / "in.csv", ",".join(GOOD_DECLARATION).encode()), "no data rows"),
    "a folder": (lambda d: (d / "in.csv").mkdir() or d / "in.csv", "is a folder"),
    "no such file": (lambda d: d / "missing.parquet", "no such file"),
    "binary garbage named .csv": (lambda d: _bytes(d / "in.csv", bytes(range(256)) * 40), "not UTF-8"),  # fmt: skip
    "corrupt Parquet": (lambda d: _bytes(d / "in.parquet", b"PAR1" + os.urandom(500) + b"PAR1"),
                        "not a readable Parquet file"),  # fmt: skip
    "truncated Parquet": (lambda d: _bytes(d / "in.parquet", _parquet(d, _typed(), "whole.parquet").read_bytes()[:600]),
                          "not a readable Parquet file"),  # fmt: skip
    "Parquet times without a zone": (lambda d: _parquet(d, _typed().assign(filed_at=lambda f: f["filed_at"].dt.tz_localize(None))),
                                     "no time zone"),  # fmt: skip
    "Parquet repeated column": (lambda d: _parquet(d, pa.Table.from_pandas(_typed(), preserve_index=False)
                                                   .append_column("mode", pa.array(["AIR"] * 4))),
                                "repeated column name(s) mode"),  # fmt: skip
    "Parquet true/false in a number column": (lambda d: _parquet(d, _typed().assign(gross_weight_kg=True)),
                                              "true/false values"),  # fmt: skip
    "Parquet without rows": (lambda d: _parquet(d, _typed().iloc[:0]), "no data rows"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with scratch_project(tmp_path_factory.mktemp("bad-input")) as folder:
        yield folder, make_champion(folder)


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output[-2000:]
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 or (len(lines) == 2 and lines[0].startswith(">")), output  # `score` says its stage
    return lines[-1]


@pytest.mark.parametrize("kind", list(FILE_PROBLEMS))
def test_a_bad_file_is_one_line_exit_1_and_nothing_written(project, tmp_path, kind) -> None:
    make, message = FILE_PROBLEMS[kind]
    path = make(tmp_path)
    for command in (["validate", str(path), "--out", str(tmp_path / "out")],
                    ["score", str(path), "--out", str(tmp_path / "out"), "--no-report"]):  # fmt: skip
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, (command[0], result.output)
        line = _one_error_line(result.output)
        assert line.startswith("error:") and message in line, (command[0], line)
        assert not (tmp_path / "out").exists()


# ---- row-level problems: each row a reject naming its column and rule, the rest scored --------------


def _row(**change: str) -> dict[str, str]:
    return {**GOOD_DECLARATION, **change}


ROW_PROBLEMS: dict[str, tuple[dict[str, str], str]] = {
    "negative weight": (_row(gross_weight_kg="-5.0"), "gross_weight_kg: must be > 0"),
    "zero weight": (_row(gross_weight_kg="0"), "gross_weight_kg: must be > 0"),
    "NaN weight": (_row(gross_weight_kg="nan"), "gross_weight_kg: not a number"),
    "infinite weight": (_row(gross_weight_kg="inf"), "gross_weight_kg: not a finite number"),
    "text weight": (_row(gross_weight_kg="heavy"), "gross_weight_kg: not a number"),
    "missing weight": (_row(gross_weight_kg=""), "gross_weight_kg: must not be empty"),
    "unknown mode": (_row(mode="TRAIN"), "mode: must be one of"),
    "lower-case mode": (_row(mode="sea"), "mode: must be one of"),
    "country XX": (_row(origin_country="XX"), "origin_country: must be an ISO 3166-1 alpha-2 country code"),
    "lower-case country": (_row(origin_country="ec"), "origin_country: must be an ISO 3166-1"),
    "naive time": (_row(filed_at="2024-03-02T08:15:00"), "filed_at: timestamp without time zone"),
    "date for a time": (_row(filed_at="2024-03-02"), "filed_at: timestamp without time zone"),
    "year 9999": (_row(filed_at="9999-01-01T00:00:00Z"), "filed_at: outside 1990-01-01 .."),
    "year 2263": (_row(filed_at="2263-01-01T00:00:00Z"), "filed_at: outside 1990-01-01 .."),
    "year 0001": (_row(filed_at="0001-01-01T00:00:00Z"), "filed_at: outside 1990-01-01 .."),
    "year 1677": (_row(filed_at="1677-09-21T00:12:43Z"), "filed_at: outside 1990-01-01 .."),
    "unreadable time": (_row(filed_at="yesterday"), "filed_at: not an ISO-8601 timestamp"),
    "arrival in 1900": (_row(arrival_date="1900-01-01"), "arrival_date: outside 1990-01-01 .."),
    "unreadable arrival": (_row(arrival_date="10/03/2024"), "arrival_date: not a date"),
    "empty id": (_row(declaration_id=""), "declaration_id: must not be empty"),
    "goods description too long": (_row(goods_desc="x" * 5000), "goods_desc: longer than 4096 characters"),
    "negative amendments": (_row(amend_count="-1"), "amend_count: must be >= 0"),
    "fractional amendments": (_row(amend_count="1.5"), "amend_count: not a whole number"),
    "no packages": (_row(n_packages="0"), "n_packages: must be >= 1"),
    "not true/false": (_row(is_reefer="maybe"), "is_reefer: not true/false"),
    "letters in an HS code": (_row(hs_code="08O390"), "hs_code: must be 6 to 10 digits"),
    "bad UN/LOCODE": (_row(load_loc="ECGY"), "load_loc:"),
    "negative declared value": (_row(declared_value_usd="-1"), "declared_value_usd: must be >= 0"),
    "SEA column on an AIR row": (_row(mode="AIR", container_type="45R1", flight_no="", is_reefer="",
                                      fcl_lcl="", vessel_imo="", seal_discrepancy=""), "container_type:"),  # fmt: skip
    "unknown party type": (_row(consignee_type="ROBOT"), "consignee_type: must be one of"),
}


def _manifest(folder: Path) -> tuple[Path, dict[str, str], int]:
    """Good rows and one bad row of every kind (ids by kind), plus a short row, a long row, a repeated id and
    a row with bytes that are not UTF-8: as a CSV file."""
    rows = [{**r, "declaration_id": f"G-{i}"} for i, r in enumerate(_rows(6))]
    expected = {}
    for i, (row, reason) in enumerate(ROW_PROBLEMS.values()):
        rid = row["declaration_id"] if row["declaration_id"] == "" else f"B-{i}"
        rows.append({**row, "declaration_id": rid})
        expected[rid or "(empty)"] = reason
    path = write_csv(folder / "rows.csv", rows)
    lines = path.read_text().splitlines()
    header = len(lines[0].split(","))
    good = lines[1]
    lines.append(",".join(good.replace("G-0", "SHORT").split(",")[:-3]))
    lines.append(good.replace("G-0", "LONG") + ",surplus")
    lines.append(good.replace("G-0", "G-1"))  # a repeated id
    data = ("\n".join(lines) + "\n").encode() + good.replace("G-0", "LATIN").replace("bananas", "bananas \xe9").encode("latin-1") + b"\n"
    path.write_bytes(data)
    expected |= {"SHORT": f"row: has fewer fields than the header ({header - 3} of {header})",
                 "LONG": f"row: has {header + 1} fields, the header has {header}",
                 "G-1": "declaration_id: duplicate of an earlier row", "LATIN": "goods_desc: invalid UTF-8 bytes"}  # fmt: skip
    return path, expected, len(rows) + 4


def test_every_bad_row_kind_is_a_reject_and_the_rest_is_scored(project, tmp_path) -> None:
    folder, _ = project
    path, expected, n_rows = _manifest(tmp_path)
    assert len(expected) == len(ROW_PROBLEMS) + 4
    validated = CliRunner().invoke(app, ["validate", str(path), "--out", str(tmp_path / "checked")])
    assert validated.exit_code == 0 and "Traceback" not in validated.output, validated.output
    out = tmp_path / "scored"
    scored = CliRunner().invoke(app, ["score", str(path), "--out", str(out), "--no-report"])
    assert scored.exit_code == 0 and "Traceback" not in scored.output, scored.output
    for where, table in ((tmp_path / "checked", "declarations"), (out, "scores")):
        rejects = pd.read_parquet(where / "rejects.parquet")
        kept = pd.read_parquet(where / f"{table}.parquet")
        assert len(kept) + len(rejects) == n_rows, where
        reasons = dict(zip(rejects["declaration_id"].fillna("").replace("", "(empty)"), rejects["reject_reason"],
                           strict=True))  # fmt: skip
        for rid, reason in expected.items():
            assert rid in reasons and reason in reasons[rid], (where.name, rid, reasons.get(rid), reason)
        assert set(kept["declaration_id"]) == {f"G-{i}" for i in range(6)}  # the good rows, and only them


# ---- the server: every bad payload a 4xx in valid JSON, and the server stays up ----------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(project):
    folder, world = project
    port = _free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen([str(Path(sys.executable).with_name("targeting")), "serve", "--port", str(port),
                                "--history", str(world), "--max-body-mb", "1"], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 120
    while not _up(port):
        assert process.poll() is None and time.time() < deadline, (folder / "server.log").read_text()[-3000:]
        time.sleep(0.5)
    yield port, folder, world
    process.terminate()
    process.wait(timeout=30)


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _good(world: Path, n: int = 2) -> list[dict[str, object]]:
    from targeting.serving.requests import request_rows

    day = pd.read_parquet(sorted((world / "declarations").glob("*.parquet"))[-1]).head(n)
    return [{**r, "declaration_id": f"NEW-{i}"} for i, r in enumerate(request_rows(day).to_dict("records"))]


def _records(change: dict[str, object]) -> Callable[[Path], bytes]:
    def make(world: Path) -> bytes:
        rows = _good(world)
        rows[1] = {**rows[1], **change}
        return json.dumps({"dataframe_records": rows}).encode()

    return make


PAYLOADS: dict[str, tuple[Callable[[Path], bytes], str, int, str]] = {
    # kind: (body, content type, status, words the message holds)
    "body over the limit": (lambda w: b'{"dataframe_records": [' + b" " * (2 * 2**20) + b"]}", "application/json", 413, "limit"),
    "field over the contract's length": (_records({"goods_desc": "x" * 5000}), "application/json", 400, "goods_desc: longer than 4096"),
    "not JSON": (lambda w: b"not json", "application/json", 400, "not valid JSON"),
    "nested 100,000 deep": (lambda w: b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply"),
    "no content type": (lambda w: b"{}", "", 415, "Content-Type"),
    "CSV content type": (lambda w: b"a,b\n1,2\n", "text/csv", 415, "Content-Type"),
    "neither records nor split": (lambda w: b'{"columns": ["a"], "data": [[1]]}', "application/json", 400, "dataframe_split"),
    "both records and split": (lambda w: b'{"dataframe_records": [], "dataframe_split": {}}', "application/json", 400, "exactly one of"),
    "records not a list": (lambda w: b'{"dataframe_records": {"a": 1}}', "application/json", 400, "list of objects"),
    "split row of the wrong width": (lambda w: b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}', "application/json", 400, "list of 1 values"),
    "no rows": (lambda w: b'{"dataframe_records": []}', "application/json", 400, "no rows"),
    "a JSON array": (lambda w: b"[1, 2, 3]", "application/json", 400, "exactly one of"),
    "missing required column": (lambda w: json.dumps({"dataframe_records": [{"mode": "SEA"}]}).encode(), "application/json", 400, "missing required column(s) declaration_id"),
    "negative weight": (_records({"gross_weight_kg": -5.0}), "application/json", 400, "gross_weight_kg: must be > 0"),
    "NaN weight (a JSON extension)": (lambda w: _records({})(w).replace(b'"gross_weight_kg": ', b'"gross_weight_kg": NaN, "x": ', 1),
                                      "application/json", 400, "gross_weight_kg: must not be empty"),
    "infinite weight": (_records({"gross_weight_kg": "Infinity"}), "application/json", 400, "gross_weight_kg: not a finite number"),
    "mode TRAIN": (_records({"mode": "TRAIN"}), "application/json", 400, "mode: must be one of"),
    "country XX": (_records({"origin_country": "XX"}), "application/json", 400, "origin_country:"),
    "naive time": (_records({"filed_at": "2024-03-02T08:15:00"}), "application/json", 400, "filed_at: timestamp without time zone"),
    "year 9999": (_records({"filed_at": "9999-01-01T00:00:00Z"}), "application/json", 400, "filed_at: outside 1990-01-01"),
    "null id": (_records({"declaration_id": None}), "application/json", 400, "declaration_id: must not be empty"),
    "repeated id": (_records({"declaration_id": "NEW-0"}), "application/json", 400, "duplicate of an earlier row"),
    "text in a count": (_records({"n_packages": "many"}), "application/json", 400, "n_packages: not a number"),
    "true/false in a weight column": (lambda w: json.dumps({"dataframe_records": [{**r, "gross_weight_kg": True} for r in _good(w)]}).encode(),
                                      "application/json", 400, "true/false"),
}  # fmt: skip


def _send(port: int, body: bytes, content_type: str) -> tuple[int, bytes]:
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += f"Content-Type: {content_type}\r\n" if content_type else ""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(head.encode() + b"\r\n")
        # a body over the server's limit: it answers from the declared length, before reading the body (a
        # client sending all of it would find the connection closed under it, as with any server)
        s.sendall(body if len(body) <= 2**20 else body[: 2**16])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_part, _, answer = data.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), answer


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_a_bad_payload_is_a_4xx_in_valid_json_and_the_server_lives(server, kind) -> None:
    port, folder, world = server
    make, content_type, status, words = PAYLOADS[kind]
    code, answer = _send(port, make(world), content_type)

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    body = json.loads(answer, parse_constant=refuse)
    assert code == status, (code, body)
    assert words in body["message"], body
    text = answer.decode()
    assert "Traceback" not in text and str(folder) not in text and 'File "' not in text
    assert _up(port)
    ok, good = _send(port, json.dumps({"dataframe_records": _good(world)}).encode(), "application/json")
    assert ok == 200 and len(json.loads(good)["predictions"]) == 2


def test_the_suite_counts_at_least_sixty_kinds() -> None:
    assert len(FILE_PROBLEMS) + len(ROW_PROBLEMS) + 4 + len(PAYLOADS) >= 60
