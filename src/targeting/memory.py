"""How the daily batch keeps the memory it frees.

On virtual machines whose memory balloon reports free pages to the host (this project's CI and
benchmark machines do), memory a process gives back to the kernel is soon taken back by the host, and
touching it again costs 1-2.5 s per GiB instead of ~0.2 s; huge pages cost more than small ones when
they are cold. The batch allocates and frees gigabytes of temporaries, and by default glibc unmaps large
blocks as soon as they are freed, Arrow's allocator purges its pages, and NumPy asks for huge pages.
Inside `retained_memory()`, freed memory stays in the process for the next allocation instead:
`python -m benchmarks score` measured the 1 M-row run ~2 s faster (12.1-13.5 s -> 10.3-10.8 s), with
kernel time from 4.3-6.2 s to 1.3-1.4 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator

#: glibc's mallopt parameters and their defaults (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


def _glibc() -> ctypes.CDLL | None:
    """glibc, or None on a C library without mallopt (musl, macOS): the policy is then NumPy's and Arrow's
    part only."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def retained_memory() -> Iterator[None]:
    """Within the block, large blocks come from malloc's heap and stay there when freed (no mmap, no trim),
    Arrow allocates through malloc too, and NumPy does not ask for huge pages. Restored on exit (the
    memory the block grew stays with the process until it ends)."""
    import numpy as np
    import pyarrow as pa

    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())  # Arrow's buffers keep their own pool: switching is safe
    set_hugepage = getattr(getattr(np, "_core", None), "multiarray", None)
    set_hugepage = getattr(set_hugepage, "_set_madvise_hugepage", None)
    hugepage = set_hugepage(False) if set_hugepage else None
    try:
        yield
    finally:
        if set_hugepage is not None and hugepage is not None:
            set_hugepage(hugepage)
        pa.set_memory_pool(pool)
        if libc is not None:
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Within the block the garbage collector ignores every object that existed before it (gc.freeze):
    collections then walk only what the job itself creates. Unfrozen on exit."""
    import gc

    already = gc.get_freeze_count() > 0  # frozen by the caller: left frozen
    gc.freeze()
    try:
        yield
    finally:
        if not already:
            gc.unfreeze()
