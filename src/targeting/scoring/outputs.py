"""A scoring run's output folder holds one run: its files appear together or not at all.

The run writes into a fresh temporary folder beside `--out` (scores, rejects, explanations, the report);
only when everything is written does that folder take the place of `--out` in one step
(`contract.io.replace_folder`). A run killed at any point leaves `--out` as the previous run left it, and
its temporary folder is removed by the next run into the same place. A lock file beside `--out` keeps a
second run out while one is writing (it refuses with one line rather than mixing two runs' files).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from targeting.contract.io import replace_folder
from targeting.errors import InputFileError

#: a finished run's folder holds this file (written last by the job)
SUMMARY = "summary.json"


@contextmanager
def run_folder(out_dir: Path) -> Iterator[Path]:
    """A fresh folder for this run's outputs; when the block succeeds it replaces `out_dir` whole, when it
    fails (or the process is killed) `out_dir` stays as it was."""
    out_dir = Path(out_dir)
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / SUMMARY).exists())):
        raise InputFileError(f"--out {out_dir}: exists and is not a scoring run's folder (it would be replaced "
                             "whole): choose another folder")  # fmt: skip
    with _locked(parent / f".{out_dir.name}.lock", out_dir):
        for stale in parent.glob(f".{out_dir.name}.tmp-*"):  # left by a killed run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=parent))
        try:
            yield tmp
            replace_folder(tmp, out_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _locked(lock: Path, out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock` for the block (released by the kernel if the process dies)."""
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputFileError(f"--out {out_dir}: another scoring run is writing to this folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
