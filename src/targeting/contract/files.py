"""File to file: validate a file against the contract, import a public format; every output written
atomically (nothing is written when a file-level problem stops the command)."""

from __future__ import annotations

from pathlib import Path

from targeting.config import KcsConfig
from targeting.contract.adapters.kcs import KcsImport, import_kcs
from targeting.contract.io import read_raw, write_tables
from targeting.contract.schema import DECLARATIONS, table
from targeting.contract.validate import ValidationResult, check_inspections_against, validate_frame


def validate_file(
    path: Path, table_name: str, out_dir: Path | None = None, declarations: Path | None = None
) -> ValidationResult:
    """Validate one file; with `out_dir`, write `<table>.parquet` and `rejects.parquet/.csv` there."""
    spec = table(table_name)
    result = validate_frame(read_raw(path, spec.coded), spec)
    if declarations is not None:
        decl = validate_frame(read_raw(declarations, DECLARATIONS.coded), DECLARATIONS)
        result = check_inspections_against(result, decl.valid)
    if out_dir is not None:
        write_tables(
            {
                out_dir / f"{spec.name}.parquet": result.valid,
                out_dir / "rejects.parquet": result.rejects,
                out_dir / "rejects.csv": result.rejects,
            }
        )
    return result


def import_kcs_file(path: Path, out_dir: Path, config: KcsConfig = KcsConfig()) -> KcsImport:
    """Convert a KCS CSV; writes declarations/inspections and their rejects into `out_dir`."""
    result = import_kcs(path, config)
    write_tables(
        {
            out_dir / "declarations.parquet": result.declarations.valid,
            out_dir / "inspections.parquet": result.inspections.valid,
            out_dir / "rejects.parquet": result.declarations.rejects,
            out_dir / "inspections_rejects.parquet": result.inspections.rejects,
        }
    )
    return result
