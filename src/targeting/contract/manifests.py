"""Today's manifests: every file validated against the contract, a declaration id that an earlier file
already holds rejected as a duplicate, every row read accounted for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from targeting.contract.io import RawTable, arrow_text, read_raw
from targeting.contract.schema import DECLARATION_ID, DECLARATIONS, REJECT_REASON, SOURCE_ROW
from targeting.contract.validate import validate_frame


@dataclass
class Manifests:
    """Today's declarations from one or more files: the valid rows and every rejected row."""

    valid: pd.DataFrame
    rejects: pd.DataFrame  # the row as read + source_file, source_row, reject_reason
    n_read: int
    #: per file, the positions among its rows as read of the rows it contributes to `valid`, in order
    kept_rows: list[np.ndarray]
    #: per file, its path and its rows as read (what a reject shows)
    files: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)

    def reject(self, reasons: dict[int, str]) -> Manifests:
        """These valid rows (position in `valid` -> reason) moved to the rejects, as read."""
        if not reasons:
            return self
        positions = np.array(sorted(reasons), dtype=np.int64)
        ends = np.cumsum([len(k) for k in self.kept_rows])
        file_of = np.searchsorted(ends, positions, side="right")
        extra = []
        for i, (path, raw) in enumerate(self.files):
            mine = positions[file_of == i]
            if not len(mine):
                continue
            row_in_file = self.kept_rows[i][mine - (ends[i - 1] if i else 0)]
            rows = raw.iloc[row_in_file].copy()
            rows.insert(0, SOURCE_ROW, row_in_file + 1)
            rows.insert(0, "source_file", str(path))
            rows[REJECT_REASON] = [reasons[int(p)] for p in mine]
            extra.append(rows.reset_index(drop=True))
        keep = np.ones(len(self.valid), bool)
        keep[positions] = False
        kept_rows = [k[keep[(ends[i - 1] if i else 0) : ends[i]]] for i, k in enumerate(self.kept_rows)]
        rejects = pd.concat([self.rejects, *extra], ignore_index=True)
        return Manifests(self.valid[keep].reset_index(drop=True), rejects, self.n_read, kept_rows, self.files)


def read_manifests(paths: list[Path], first_read: Callable[[RawTable], None] | None = None) -> Manifests:
    """Validate each file (file-level problems raise before anything is written); a declaration id that
    an earlier file already holds is rejected as a duplicate. `first_read` is given the first file as read,
    before it is validated."""
    valid, rejects, kept_rows, files = [], [], [], []
    earlier = []  # (file, its accepted ids as Arrow)
    n_read = 0
    for i, path in enumerate(paths):
        raw = read_raw(path, DECLARATIONS.coded)
        if first_read is not None and i == 0:
            first_read(raw)
        result = validate_frame(raw, DECLARATIONS)
        n_read += result.n_read
        rej = result.rejects.copy()
        rej.insert(0, "source_file", str(path))
        ids = result.valid[DECLARATION_ID].astype(str)  # unique within the file: validation rejects repeats
        first_file = np.full(len(ids), "", dtype=object)
        these = arrow_text(ids) if earlier else None
        for file, accepted in earlier:  # set lookups in Arrow, not a Python dict of every id
            found = pc.is_in(these, value_set=accepted).to_numpy(zero_copy_only=False)
            first_file[found & (first_file == "")] = file
        dup = first_file != ""
        if dup.any():
            positions = result.valid_pos[dup]
            extra = result.raw.iloc[positions].copy()
            extra.insert(0, SOURCE_ROW, positions + 1)
            extra.insert(0, "source_file", str(path))
            extra[REJECT_REASON] = [
                f"{DECLARATION_ID}: duplicate of a row in {f or path}" for f in first_file[dup]
            ]
            rej = pd.concat([rej, extra.reset_index(drop=True)], ignore_index=True)
        kept = ids[~dup] if dup.any() else ids
        if len(paths) > 1:
            earlier.append((str(path), arrow_text(kept)))
        valid.append(result.valid[~dup] if dup.any() else result.valid)  # no copy of a clean file
        kept_rows.append(result.valid_pos[~dup])
        rejects.append(rej)
        files.append((path, result.raw))
    frame = valid[0] if len(valid) == 1 else pd.concat(valid, ignore_index=True)
    return Manifests(frame, pd.concat(rejects, ignore_index=True), n_read, kept_rows, files)
