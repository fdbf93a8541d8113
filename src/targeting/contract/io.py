"""Reading and writing tables: the only module that knows file formats.

Reads keep every value as the file holds it (CSV cells stay strings, so `hs_code` keeps its leading
zeros and the country code "NA" stays Namibia); typing and rules are `validate.py`'s job. Writes are
atomic: data goes to a temporary file beside the target and is renamed into place, so a failure never
leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from targeting.errors import InputFileError

CSV_SUFFIXES = (".csv", ".txt", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
REPLACEMENT_CHAR = "\ufffd"


@dataclass
class RawTable:
    """A table as read, before any typing: values, where they came from, and row-level read problems."""

    frame: pd.DataFrame
    path: Path
    format: str  # "csv" or "parquet"
    encoding_errors: bool = False  # the file had bytes that are not UTF-8 (replaced by U+FFFD)
    #: row position -> reason, for rows the reader could not split into the header's fields
    row_errors: dict[int, str] = field(default_factory=dict)
    #: column -> (its distinct values, each row's position among them or -1 where missing), for the text
    #: columns a Parquet file was asked to be read as dictionaries (the frame holds their values as usual)
    distinct: dict[str, tuple[pa.Array, np.ndarray]] = field(default_factory=dict)


def file_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise InputFileError(f"{path}: unknown file type (expected .csv or .parquet)")


def read_raw(path: str | Path, dictionary: Collection[str] = ()) -> RawTable:
    """Read a CSV or Parquet file without interpreting its values. The text columns named in `dictionary`
    are read from a Parquet file as Arrow dictionaries too (`RawTable.distinct`): the file stores them so,
    and a rule then needs checking once per distinct value, not once per row."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a .csv or .parquet file")
    fmt = file_format(path)
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    return _read_parquet_raw(path, dictionary) if fmt == "parquet" else _read_csv_raw(path)


def _read_parquet_raw(path: Path, dictionary: Collection[str] = ()) -> RawTable:
    try:
        names = pq.read_schema(path).names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputFileError(f"{path}: repeated column name(s) {', '.join(repeated)}")
        if dictionary:
            schema = pq.read_schema(path)
            text = {f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}
            dictionary = [c for c in dictionary if c in text]
        # one chunk per row group (pq.read_table splits each into batches of 128 Ki rows, and a later
        # take of a few rows, the selected ones, would join every column's chunks first)
        tbl = pq.ParquetFile(path, read_dictionary=list(dictionary) or None).read(use_threads=True)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
    tbl, distinct = _decoded(tbl, list(dictionary))
    return RawTable(tbl.to_pandas(), path, "parquet", distinct=distinct)


def _decoded(tbl: pa.Table, names: list[str]) -> tuple[pa.Table, dict[str, tuple[pa.Array, np.ndarray]]]:
    """The table with its dictionary columns as plain text again (as a plain read gives them; on two
    threads, Arrow's take releases the GIL), and each one's distinct values and row positions."""
    from concurrent.futures import ThreadPoolExecutor

    if not names:
        return tbl, {}
    tbl = tbl.unify_dictionaries()  # the file's row groups share one dictionary per column

    def decode(name: str) -> tuple[pa.ChunkedArray, tuple[pa.Array, np.ndarray]]:
        column = tbl.column(name)
        kind = column.type.value_type
        values = column.chunk(0).dictionary if column.num_chunks else pa.array([], kind)
        codes = [pc.fill_null(chunk.indices, -1).to_numpy() for chunk in column.chunks]
        positions = np.concatenate(codes).astype(np.int32) if codes else np.zeros(0, np.int32)
        # decoded straight to the large_string pandas holds text in: decoded to `string`, to_pandas would
        # widen every offset again, in fresh memory
        return column.cast(pa.large_string()), (values, positions)

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(names, pool.map(decode, names), strict=True))
    for name, (plain, _) in done.items():
        tbl = tbl.set_column(tbl.schema.get_field_index(name), name, plain)
    return tbl, {name: found for name, (_, found) in done.items()}


def _read_csv_raw(path: Path) -> RawTable:
    """Every row with the header's fields as text ("" for an empty field). A row with fewer or more fields
    than the header is kept (padded with missing values, or cut) and flagged in `row_errors`, so that it
    becomes a reject saying so. Arrow's reader does the work and reports such rows; a file with bytes that
    are not UTF-8 is read by Python's csv module instead, with those bytes replaced (U+FFFD), so that only
    the rows holding them are rejected."""
    with path.open("rb") as fh:
        head = fh.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        raise InputFileError(f"{path}: not UTF-8 text (it looks like UTF-16); save the file as UTF-8")
    if 0 in head:  # a header never starts with NUL: UTF-16 without its mark, or not text at all
        raise InputFileError(f"{path}: not UTF-8 text (it starts with NUL bytes: UTF-16 or a binary file)")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
        encoding_errors = False
    except UnicodeDecodeError:
        encoding_errors = True
    del raw
    header = _csv_header(path)
    if not header:
        raise InputFileError(f"{path}: file is empty (no header row)")
    if len(set(header)) != len(header) or any(h.strip() == "" for h in header):
        raise InputFileError(f"{path}: header has blank or repeated column names")
    frame, row_errors = _read_csv_python(path) if encoding_errors else _read_csv_arrow(path, header)
    return RawTable(frame, path, "csv", encoding_errors, row_errors)


def _csv_header(path: Path) -> list[str]:
    """The header as written (pandas would rename a repeated name to "name.1")."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        return next(csv.reader(fh), [])


def _field_count_error(found: int, expected: int) -> str:
    if found < expected:
        return f"row: has fewer fields than the header ({found} of {expected})"
    return f"row: has {found} fields, the header has {expected}"


def _read_csv_arrow(path: Path, header: list[str]) -> tuple[pd.DataFrame, dict[int, str]]:
    """Arrow's CSV reader, every column as text; the rows it cannot split into the header's fields are
    taken aside (with their record number, hence one thread when there are any) and put back in place."""
    bad: list[tuple[int | None, int, str]] = []

    def aside(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.actual_columns, row.text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        bad.clear()
        try:
            return pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(use_threads=threads, column_names=header, skip_rows=1),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=aside),
                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.large_string()),
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False),
            )  # fmt: skip
        except pa.ArrowInvalid as exc:
            if "skip initial" in str(exc):  # a header without a line after it: no rows
                return pa.table({name: pa.array([], pa.large_string()) for name in header})
            raise InputFileError(f"{path}: not a readable CSV file ({_first_line(exc)})") from None

    table = read(threads=True)
    if bad and any(number is None for number, _, _ in bad):
        table = read(threads=False)
    frame = table.to_pandas(types_mapper={pa.large_string(): pd.StringDtype(na_value=np.nan)}.get)
    if not bad:
        return frame, {}
    n = len(header)
    # a record's number counts the header as 1: data row i (0-based) is record i + 2
    positions = [number - 2 for number, _, _ in bad if number is not None]
    cells = [next(csv.reader([text]), []) for _, _, text in bad]
    extra = pd.DataFrame([(c + [None] * n)[:n] for c in cells], columns=header, dtype="str")
    order = np.argsort(np.concatenate([np.setdiff1d(np.arange(len(frame) + len(bad)), positions), positions]),
                       kind="stable")  # fmt: skip
    merged = pd.concat([frame, extra], ignore_index=True).iloc[order].reset_index(drop=True)
    errors = {pos: _field_count_error(found, n) for pos, (_, found, _) in zip(positions, bad, strict=True)}
    return merged, errors


def _read_csv_python(path: Path) -> tuple[pd.DataFrame, dict[int, str]]:
    """Python's csv module, for files with bytes that are not UTF-8 (replaced by U+FFFD): every row kept,
    padded or cut to the header's fields and flagged when it had fewer or more."""
    csv.field_size_limit(2**31 - 1)  # long free-text cells are the validator's to judge, not the reader's
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows: list[list[str | None]] = []
        errors: dict[int, str] = {}
        n = len(header)
        for row in reader:
            if not row:
                continue  # a blank line, as Arrow and pandas skip it
            if len(row) != n:
                errors[len(rows)] = _field_count_error(len(row), n)
            rows.append((row + [None] * n)[:n])
    return pd.DataFrame(rows, columns=header, dtype="str"), errors


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---- writing ------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` in place of `target` in one step: a reader sees the old folder whole or the new
    one whole, never a mix. On Linux the two are exchanged atomically (renameat2 RENAME_EXCHANGE) and the
    old one removed after; elsewhere (or on a file system without the exchange) the old one is renamed
    aside first, so for a moment there is no `target`."""
    import shutil

    if not target.exists():
        os.rename(new, target)
        return
    if not _exchange(new, target):
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, aside)
        os.rename(new, target)
        new = aside
    shutil.rmtree(new, ignore_errors=True)  # now the old folder


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is unavailable."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if done == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the temporary folders and files `<prefix><pid>-...` in `parent` whose process is gone (left by
    a run that was killed); returns what was removed."""
    import shutil

    removed = []
    for path in parent.glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as Parquet or CSV (by suffix), atomically. Returns the path written."""
    return write_tables({Path(path): frame})[0]


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(obj: object, path: str | Path) -> Path:
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file this project wrote (already contract-typed)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def write_text_values(values: pd.Index | pd.Series, path: str | Path) -> Path:
    """Text values as an Arrow IPC file (uncompressed), which `read_text_values` maps without copying."""
    import pyarrow.ipc as ipc

    table = pa.table({"value": arrow_text(values)})
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return Path(path)


def read_text_values(path: str | Path) -> pd.Index:
    """The values of `write_text_values` as a pandas `str` index over the file's pages (memory-mapped, so
    the ids of a large history load without being decoded as Parquet would be)."""
    import pyarrow.ipc as ipc

    try:
        column = ipc.open_file(pa.memory_map(str(path))).read_all().column(0)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Arrow file ({_first_line(exc)})") from None
    return pd.Index(pd.arrays.ArrowStringArray(column), dtype="str")


def arrow_text(values: pd.Series | pd.Index) -> pa.Array:
    """Text values as one Arrow large_string array, for Arrow set lookups (`is_in`, `index_in`): taken as
    they are when pandas already holds them in Arrow, built from the objects otherwise."""
    if values.dtype == object:
        return pa.array(values.to_numpy(dtype=object), pa.large_string())
    column = pa.chunked_array(pa.array(values.array))
    # one chunk is taken as it is (combine_chunks would copy it into fresh memory)
    column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column if column.type == pa.large_string() else column.cast(pa.large_string())


def text_series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An Arrow string array as a pandas `str` column, without a round trip through Python."""
    return pd.Series(pd.arrays.ArrowStringArray(values), dtype="str")


def strictly_ascending(values: pd.Series) -> bool:
    """Whether a text column has no missing value and each value sorts after the one before (so none
    repeats): one pass of Arrow comparisons. Manifests usually come sorted by id,
    and validation and ranking then skip a hash table or a sort of the ids."""
    if len(values) < 2 or not isinstance(values.array, pd.arrays.ArrowStringArray) or values.hasnans:
        return False
    text = arrow_text(values)
    return bool(pc.all(pc.less(text.slice(0, len(text) - 1), text.slice(1))).as_py())


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns become text so that Parquet can hold them: columns of strings and missing values at
    once, mixed values as read (numbers among text) value by value."""
    obj = [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c].dtype)]
    if not obj:
        return frame
    frame = frame.copy()
    for c in obj:
        if pd.api.types.infer_dtype(frame[c], skipna=True) not in ("string", "empty"):
            frame[c] = frame[c].map(
                lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)
            )
        frame[c] = frame[c].astype("str")
    return frame


def write_tables(outputs: dict[Path, pd.DataFrame]) -> list[Path]:
    """Write several tables all-or-nothing: every file is written to a temporary name first, and only
    when all of them succeeded are they renamed into place. Each frame is converted to Arrow once (a table
    written as Parquet and CSV is not converted twice) and the files are written on two threads (Arrow's
    writers release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    staged: list[tuple[Path, Path]] = []
    tables: dict[int, pa.Table] = {}
    jobs = []
    try:
        for target, frame in outputs.items():
            target = Path(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            staged.append((Path(tmp), target))
            if id(frame) not in tables:
                tables[id(frame)] = pa.Table.from_pandas(_arrow_safe(frame), preserve_index=False)
            jobs.append((tables[id(frame)], Path(tmp), file_format(target)))
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(_write_one, *job) for job in jobs]:
                done.result()
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
    return [t for _, t in staged]


def _write_one(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        _write_csv(table, path)


#: a text cell beginning with one of these is a formula to a spreadsheet (OWASP, "CSV injection")
_FORMULA_START = r"^[=+\-@\t\r]"


def _write_csv(table: pa.Table, path: Path) -> None:
    """CSV for people, through Arrow's writer (faster than pandas on large tables): timestamps as ISO 8601
    with microseconds and Z, booleans as true/false, missing values as empty cells, and every text cell
    that a spreadsheet would run as a formula (beginning with =, +, -, @, tab or carriage return) written
    with a leading apostrophe, so that it opens as the text it is. Parquet keeps every value as it is."""
    for i, spec in enumerate(table.schema):
        if pa.types.is_timestamp(spec.type):
            table = table.set_column(i, spec.name, _iso_text(table.column(i)))
        elif pa.types.is_string(spec.type) or pa.types.is_large_string(spec.type):
            table = table.set_column(i, spec.name, _neutralised(table.column(i)))
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))


def _neutralised(column: pa.ChunkedArray) -> pa.ChunkedArray:
    formula = pc.match_substring_regex(column, _FORMULA_START)
    if not pc.any(formula).as_py():
        return column
    quote = pa.scalar("'", column.type)
    return pc.if_else(formula, pc.binary_join_element_wise(quote, column, pa.scalar("", column.type)), column)


def _iso_text(column: pa.ChunkedArray) -> pa.Array:
    """UTC timestamps as ISO 8601 text with a Z, each distinct value formatted once (Arrow's strftime per
    value is slow, and a day's scores share a single `scored_at`)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    text = pc.strftime(encoded.dictionary, format="%Y-%m-%dT%H:%M:%S")  # %S carries the fraction
    return pc.binary_join_element_wise(text, pa.scalar("Z"), "").take(encoded.indices)
