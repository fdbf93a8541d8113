"""Every thread, prefetch and memory policy of the daily job, so that `job.py` reads as its steps.

**The loading thread.** The model and the saved history index load on a second thread while the manifests
are read and validated (a bad manifest is still reported first). For a single Parquet manifest it starts
before the read (the footer tells whether the batch is large), so MLflow's Python work runs beside Arrow's
decoding, which releases the GIL, rather than beside pandera's validation, which holds it; otherwise it
starts once the first file is read. For a large single Parquet manifest that thread then looks the
manifest's ids and key values up in the saved index (`PrefetchedCodes`), work that validation would
otherwise leave a core idle for; the as-of step claims what is done and looks up the rest itself.

**Side jobs.** `beside` runs one function on a thread while the caller goes on (drift binning beside the
decisions and explanations).

**Memory.** On virtual machines whose memory balloon reports free pages to the host (this project's CI
and benchmark machines do), memory a process gives back to the kernel is soon taken back by the host,
and touching it again costs far more than fresh memory on a quiet machine; huge pages cost more than
small ones when they are cold. The batch allocates and frees gigabytes of temporaries, and by default
glibc unmaps large blocks as soon as they are freed, Arrow's allocator purges its pages, and NumPy asks
for huge pages. Inside `retained_memory()`, freed memory stays in the process for the next allocation
instead (`docs/performance.md` has the measurements). `frozen_gc()` keeps the collector off the objects
that existed before the job.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import pyarrow.parquet as pq

from targeting.contract.io import RawTable, file_format
from targeting.contract.validate import register_backends

# the compiled loops' modules (and numba) are imported with the job, on the main thread, before the loading
# thread starts; the loading thread only loads the loops from numba's cache
from targeting.history import _compiled as _history_loops  # noqa: F401
from targeting.history.index import SET_LOOKUP_ROWS, HistoryIndex, PrefetchedCodes
from targeting.model import _compiled as _model_loops  # noqa: F401

T = TypeVar("T")


@dataclass
class Loaded(Generic[T]):
    """What the loading thread hands back: the loaded value and its saved history index (or None)."""

    value: T
    saved_index: HistoryIndex | None


@contextlib.contextmanager
def job_policy() -> Iterator[None]:
    """The job's process-wide settings: memory kept for reuse, the collector off old objects, pandera's
    backends registered before any thread starts (see `register_backends`)."""
    with retained_memory(), frozen_gc():
        register_backends()
        yield


class Loading(Generic[T]):
    """The loading thread: `load(large_batch)` runs on it once, then (for a large single Parquet manifest)
    the lookups of the manifest's key values in the saved index that `load` returned."""

    def __init__(self, load: Callable[[bool], Loaded[T]], paths: list[Path], lookups: bool) -> None:
        """`lookups`: whether the as-of step can use prefetched lookups (the pandas engine)."""
        self._load, self._paths, self._lookups = load, paths, lookups
        self._pool = ThreadPoolExecutor(1)
        self._loading: Future[Loaded[T]] | None = None
        self._prefetched: PrefetchedCodes | None = None
        known_rows = _parquet_rows(paths[0]) if len(paths) == 1 else None
        if known_rows is not None:
            self._start(known_rows > SET_LOOKUP_ROWS)

    def _start(self, large: bool) -> None:
        if self._loading is None:
            self._loading = self._pool.submit(self._load, large)

    def on_first_read(self, raw: RawTable) -> None:
        """Given the first manifest as read (before validation): start loading if not started, and start the
        lookups of a large single Parquet manifest (a small batch looks its values up itself)."""
        large = len(raw.frame) > SET_LOOKUP_ROWS
        self._start(large)
        if len(self._paths) == 1 and raw.format == "parquet" and self._lookups and large:
            codes = PrefetchedCodes()
            loading = self._loading
            assert loading is not None
            self._pool.submit(lambda: codes.run(loading.result().saved_index, raw.frame))
            self._prefetched = codes

    def result(self) -> T:
        """The loaded value (waiting for the thread; its error, if it failed)."""
        assert self._loading is not None, "on_first_read starts the loading"
        return self._loading.result().value

    def prefetched(self, kept_rows: np.ndarray) -> PrefetchedCodes | None:
        """The lookups started for the manifest, for its validated rows `kept_rows` (whose ids are unique:
        validation rejects a repeated id), or None."""
        if self._prefetched is not None:
            self._prefetched.rows = kept_rows
            self._prefetched.ids_unique = True
        return self._prefetched

    def close(self) -> None:
        """Cancel the lookups not started and wait for the thread."""
        if self._prefetched is not None:
            self._prefetched.claim()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Loading[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parquet_rows(path: Path) -> int | None:
    """The row count a Parquet file's footer states, or None (not Parquet, or unreadable: the read reports it)."""
    try:
        return pq.read_metadata(path).num_rows if file_format(path) == "parquet" else None
    except Exception:  # noqa: BLE001 - the read that follows reports the file's problem in one line
        return None


class _Done(Generic[T]):
    def __init__(self, value: T) -> None:
        self._value = value

    def result(self) -> T:
        return self._value


@contextlib.contextmanager
def beside(fn: Callable[..., T] | None, *args: object) -> Iterator[Future[T] | _Done[None]]:
    """`fn(*args)` on a second thread while the block runs; its future (a finished None for no `fn`)."""
    if fn is None:
        yield _Done(None)
        return
    with ThreadPoolExecutor(1) as side:
        yield side.submit(fn, *args)


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
