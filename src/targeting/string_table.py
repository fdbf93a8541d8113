"""A hash table of stored text values, built once and probed by whole Arrow arrays (compiled with numba).

A daily batch checks its million ids against the history's 2.2 million stored ids. Arrow's `is_in` and
`index_in` rebuild their hash table of the stored values on every call (0.7 s here); this table is
built once, when the history index is saved (0.2-0.35 s; the saved index maps it back), and a probe
costs a hash and, for an id not stored, usually one cache line: 0.1 s for the batch. Answers are those of
`index_in` for stored values without nulls: the position of the first stored occurrence, -1 for a value
not stored or missing (tests/test_history_index.py). For the keys' value sets (up to 700,000 values,
mostly found) Arrow's rebuilt table probed as fast as this one, so they stay with `index_in`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit, types  # imported with the module: the compiled loops load later, from disk

_compiled: dict[str, Any] = {}


class StringTable:
    """Stored text values (an Arrow array; missing values are never found) and their open-addressing
    table: slot s holds (63-bit hash, position) at [2s, 2s + 1], position -1 when empty."""

    def __init__(self, values: pa.Array, table: np.ndarray | None = None) -> None:
        """`table`: the one built for these same values before (saved with them), if it fits."""
        self.values = _large(values)
        self._offsets, self._data, valid = _buffers(self.values)  # views of the values' Arrow buffers
        self.bits = max(4, int(np.ceil(np.log2(max(1, len(self.values)) * 2))))  # load factor <= 1/2
        if table is None or table.shape != (2 << self.bits,) or table.dtype != np.int64:
            table = load()["build"](self._offsets, self._data, valid, self.bits)
        self.table = table

    def positions(self, query: pa.Array) -> np.ndarray:
        """Position of each query value among the stored ones (first occurrence), -1 where not stored or
        missing."""
        q_offsets, q_data, q_valid = _buffers(_large(query))
        return load()["lookup"](q_offsets, q_data, q_valid, self.table, self.bits, self._offsets, self._data)


def _large(values: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.large_string())


def _buffers(values: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (len + 1, int64), the data bytes and the validity of a large_string array."""
    _, offsets, data = values.buffers()
    start = values.offset
    offsets = np.frombuffer(offsets, np.int64)[start : start + len(values) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    return offsets, data, np.ascontiguousarray(valid, np.bool_)


def load() -> dict[str, Any]:
    """The compiled build and lookup (numba's on-disk cache after the first run)."""
    if not _compiled:
        _compiled.update(_compile())
    return _compiled


def _compile() -> dict[str, Any]:
    """Build and lookup, typed (read-only inputs accept any array) and compiled or loaded from the cache."""
    ints = types.Array(types.int64, 1, "C", readonly=True)
    data = types.Array(types.uint8, 1, "C", readonly=True)
    valid = types.Array(types.boolean, 1, "C", readonly=True)
    table = types.Array(types.int64, 1, "C")
    return {
        "build": njit(table(ints, data, valid, types.int64), nogil=True, cache=True)(_build),
        "lookup": njit(table(ints, data, valid, ints, types.int64, ints, data), nogil=True, cache=True)(
            _lookup
        ),
    }


# The loops are module-level functions (numba's cache does not find closures again in a new process);
# helpers are jitted lazily: they are compiled into the loops that call them.


@njit(nogil=True, cache=True)
def _hash63(buf, start, end):  # type: ignore[no-untyped-def]
    h = np.uint64(14695981039346656037)  # FNV-1a, then murmur3's finaliser to spread the bits
    for k in range(start, end):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return np.int64(h >> np.uint64(1))


@njit(nogil=True, cache=True)
def _same(a, a_start, a_end, b, b_start, b_end):  # type: ignore[no-untyped-def]
    if a_end - a_start != b_end - b_start:
        return False
    for k in range(a_end - a_start):
        if a[a_start + k] != b[b_start + k]:
            return False
    return True


def _build(offsets, buf, ok, bits):  # type: ignore[no-untyped-def]
    size = np.int64(1) << bits
    mask = size - 1
    table = np.full(2 * size, -1, np.int64)
    for i in range(len(ok)):
        if not ok[i]:
            continue
        h = _hash63(buf, offsets[i], offsets[i + 1])
        slot = (h >> (63 - bits)) & mask
        while True:
            j = table[2 * slot + 1]
            if j < 0:
                table[2 * slot] = h
                table[2 * slot + 1] = i
                break
            if table[2 * slot] == h and _same(
                buf, offsets[j], offsets[j + 1], buf, offsets[i], offsets[i + 1]
            ):
                break  # a repeated value keeps its first position
            slot = (slot + 1) & mask
    return table


def _lookup(q_offsets, q_buf, q_ok, table, bits, s_offsets, s_buf):  # type: ignore[no-untyped-def]
    n = len(q_ok)
    mask = (np.int64(1) << bits) - 1
    found = np.full(n, -1, np.int64)
    for i in range(n):
        if not q_ok[i]:
            continue
        start, end = q_offsets[i], q_offsets[i + 1]
        h = _hash63(q_buf, start, end)
        slot = (h >> (63 - bits)) & mask
        while True:
            j = table[2 * slot + 1]
            if j < 0:
                break
            if table[2 * slot] == h and _same(s_buf, s_offsets[j], s_offsets[j + 1], q_buf, start, end):
                found[i] = j
                break
            slot = (slot + 1) & mask
    return found
