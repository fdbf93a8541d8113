"""The daily job's checks before it reads anything, and its memory and collector policy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def test_score_refuses_an_unknown_engine_before_reading_anything(tmp_path) -> None:
    from typer.testing import CliRunner

    from targeting.cli import app

    result = CliRunner().invoke(app, ["score", str(tmp_path / "missing.csv"), "--engine", "flink",
                                      "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and "--engine 'flink': choose pandas or spark" in result.output
    assert not (tmp_path / "out").exists()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_given_back_by_freeing_64_mib() -> int:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, above glibc's largest mmap threshold, touched
    with_block = _rss_bytes()
    del block
    return with_block - _rss_bytes()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from Linux's /proc")
def test_the_batch_keeps_the_memory_it_frees_and_restores_the_allocators_after() -> None:
    """Inside the block a freed 64 MiB stays in the process. (Whether it goes back outside depends on what
    the heap already holds in this test process, so only the allocators' settings are checked there.)"""
    import pyarrow as pa

    from targeting.scoring._concurrency import _glibc, retained_memory

    pool = pa.default_memory_pool().backend_name
    hugepage = np._core.multiarray._set_madvise_hugepage(True)
    with retained_memory():
        assert pa.default_memory_pool().backend_name == "system"  # Arrow allocates through malloc
        assert np._core.multiarray._set_madvise_hugepage(False) is False  # no huge pages inside
        if _glibc() is not None:
            assert _rss_given_back_by_freeing_64_mib() < 16 * 2**20  # kept for the next allocation
    assert pa.default_memory_pool().backend_name == pool
    assert np._core.multiarray._set_madvise_hugepage(hugepage) is True


def test_the_batch_keeps_the_collector_off_what_existed_before_it() -> None:
    import gc

    from targeting.scoring._concurrency import frozen_gc

    assert gc.get_freeze_count() == 0
    with frozen_gc():
        assert gc.get_freeze_count() > 0  # the imports' objects, set aside
    assert gc.get_freeze_count() == 0
