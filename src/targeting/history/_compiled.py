"""Compiled inner loops of the history's as-of answers (numba), where NumPy passes or Arrow calls cost too much.

**As-of answers of one key** (`answer_key`, the inner loop of `HistoryIndex.as_of`). A daily batch asks 11
keys about a million rows each. As NumPy passes every key costs a dozen million-element temporaries; one
compiled loop over the rows costs a fraction of that and releases the GIL, so keys run side by side on
threads. The rules are those of `HistoryStore.as_of` (tests/history/test_index.py checks that they agree):
- stored events of the row's key value strictly before the row's second: the value's whole run when its
  last event is earlier (the daily case), else a binary search within the run;
- the batch's own new rows of the same value filed strictly earlier, and the second of the value's first
  new row (rows visited in time order, keeping counts per value: no sort per key, and for a batch that
  is already in time order, as a day's manifests are, no gathers either);
- stored outcomes of the batch's new rows, given by the caller per row (empty arrays when there are none).

**Lower bounds of ascending queries** (`lower_bounds`): `np.searchsorted` for the new-senders count's
sorted queries, galloping forward from the previous answer instead of searching from scratch.

**First row per key** (`first_per_key`): the new-senders count's earliest row of each (address, sender)
pair, through a hash table of the pairs rather than a lexsort of every row.

**The stored-id table** (`StringTable`): a hash table of the stored ids, built once when the history index
is saved and probed by whole Arrow arrays. Arrow's `is_in` and `index_in` rebuild their hash table of the
stored values on every call; this one is built once and mapped back with the saved index. Answers are
those of `index_in` for stored values without nulls: the position of the first stored occurrence, -1 for
a value not stored or missing. For the keys' value sets (mostly found) Arrow's rebuilt table probes as
fast, so they stay with `index_in`.

The loops are compiled once for fixed argument types (read-only inputs accept any array) and cached on
disk by numba: later processes load them from that cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit, types  # imported with the module: the compiled loops load later, from disk

from targeting._numba import Loops, array_type, floats, ints
from targeting.history.store import _SPAN as SPAN  # composite key = code * SPAN + second

#: batches smaller than this keep their per-value counts by a dense number per distinct value, not by code
DENSE_BELOW = 100_000


def answer_key(code: np.ndarray, seconds: np.ndarray, order: np.ndarray | None, new: np.ndarray, n_codes: int,
               stored: tuple[np.ndarray, ...], inspected: np.ndarray,
               orphans: tuple[np.ndarray, np.ndarray, np.ndarray], party: bool, out: np.ndarray) -> None:  # fmt: skip
    """Fill `out` (rows x 3, or x 5 for a party key; float64 columns, each contiguous): earlier
    declarations, outcomes and hits, then the first-seen and last-hit seconds relative to the value's
    base. `order` visits the rows in time order (None: they are in time order already); `stored` =
    (decl, decl_start, insp, insp_start, hits, hits_start) of `history_index._Key`; `inspected` whether
    each stored value has any outcome; `orphans` = (outcomes, hits, last hit second) per row from the
    store's outcomes of new rows, or three empty arrays."""
    columns = [out[:, j] for j in range(out.shape[1])] + [np.empty(0)] * (5 - out.shape[1])
    # per-value counts indexed by code, or for a small batch (serving) by a dense number per distinct code,
    # so that a one-row request does not allocate counts for every stored value
    slot = code if len(code) >= DENSE_BELOW else np.unique(code, return_inverse=True)[1]
    order = order if order is not None else np.zeros(0, np.int64)
    load()["answer_key"](ints(code), ints(slot.reshape(-1)), ints(seconds), ints(order),
                         np.ascontiguousarray(new, np.bool_), int(n_codes), *[ints(a) for a in stored],
                         np.ascontiguousarray(inspected, np.bool_), ints(orphans[0]), ints(orphans[1]),
                         floats(orphans[2]), bool(party), *columns)  # fmt: skip


def lower_bounds(events: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """`np.searchsorted(events, queries)` (side left) for sorted int64 `events`, galloping forward from the
    previous answer while the queries ascend: a batch's million sorted queries cost one pass over the
    events instead of a million binary searches."""
    return load()["lower_bounds"](ints(events), ints(queries))


def first_per_key(key: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """`history.first_per_key` (each key's earliest row, ties in time: the first listed; in ascending key
    order) by one pass through a hash table of the keys and a sort of the distinct keys only, instead of
    a two-key lexsort of every row, releasing the GIL for the pass."""
    rows = load()["first_rows"](ints(key), ints(seconds))
    return rows[np.argsort(key[rows])]


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


def _compile() -> dict[str, Any]:
    """The loops, typed (read-only inputs accept any array) and compiled or loaded from numba's cache."""

    ints, floats, out = array_type(types.int64), array_type(types.float64), array_type(types.float64, readonly=False)
    answer = types.void(ints, ints, ints, ints, array_type(types.boolean), types.int64, *[ints] * 6, array_type(types.boolean),
                        *[ints] * 2, floats, types.boolean, *[out] * 5)  # fmt: skip
    counts = types.Array(types.int64, 1, "C")
    data, valid = array_type(types.uint8), array_type(types.boolean)
    return {
        "answer_key": njit(answer, nogil=True, cache=True)(_answer),
        "lower_bounds": njit(counts(ints, ints), nogil=True, cache=True)(_lower_bounds),
        "first_rows": njit(counts(ints, ints), nogil=True, cache=True)(_first_rows),
        "build": njit(counts(ints, data, valid, types.int64), nogil=True, cache=True)(_build),
        "lookup": njit(counts(ints, data, valid, ints, types.int64, ints, data), nogil=True, cache=True)(_lookup),
    }


#: the loops by name, compiled or loaded from numba's cache on first use
load = Loops(_compile)


# The loops are module-level functions (numba's cache does not find closures again in a new process);
# helpers are jitted lazily: they are compiled into the loops that call them.


@njit(nogil=True, cache=True)
def _count_before(events, starts, c, at):  # type: ignore[no-untyped-def]
    lo, hi = starts[c], starts[c + 1]
    if hi == lo or events[hi - 1] < at:
        return hi - lo
    a, b = lo, hi  # first position in [lo, hi) whose event is >= at
    while a < b:
        m = (a + b) // 2
        if events[m] < at:
            a = m + 1
        else:
            b = m
    return a - lo


def _answer(code, slot, seconds, order, new, n_codes, decl, decl_start, insp, insp_start, hits, hits_start,  # type: ignore[no-untyped-def]
            inspected, o_insp, o_hits, o_last, party, out_decl, out_insp, out_hits, out_first, out_last):  # fmt: skip
    n = len(code)
    n_all = 0  # stored codes, then the batch's unseen ones
    for i in range(n):
        n_all = max(n_all, slot[i] + 1)
    # per value, in time order, side by side in one row (one cache line for a value, where four arrays
    # cost four misses on a key with a million values): new rows so far, new rows before the current
    # second, that second, and the second of the value's first new row (read only once there is one)
    state = np.zeros((n_all, 4), np.int64)
    state[:, 2] = -1
    has_orphans = len(o_insp) > 0
    natural = len(order) == 0
    for p in range(n):
        i = p if natural else order[p]
        c = code[i]
        if c < 0:  # no value: nothing to count
            out_decl[i] = np.nan
            out_insp[i] = np.nan
            out_hits[i] = np.nan
            if party:
                out_first[i] = np.nan
                out_last[i] = np.nan
            continue
        s = seconds[i]
        k = slot[i]  # the value's place in the per-value counts
        if state[k, 2] != s:  # the value's first row at this second: earlier seconds' new rows are final
            state[k, 1] = state[k, 0]
            state[k, 2] = s
        earlier_new = state[k, 1]
        if new[i]:
            if state[k, 0] == 0:
                state[k, 3] = s
            state[k, 0] += 1
        d, ins, h = 0, 0, 0
        base = c * SPAN
        if c < n_codes:  # a stored value
            at = base + s
            d = _count_before(decl, decl_start, c, at)
            if inspected[c]:  # else no outcome and no hit: their start arrays are not read
                ins = _count_before(insp, insp_start, c, at)
                h = _count_before(hits, hits_start, c, at)
        oi, oh, ol = 0, 0, np.nan
        if has_orphans:
            oi, oh, ol = o_insp[i], o_hits[i], o_last[i]
        out_decl[i] = d + earlier_new
        out_insp[i] = ins + oi
        out_hits[i] = h + oh
        if party:
            first = np.nan
            if d > 0:
                first = float(decl[decl_start[c]] - base)
            if earlier_new > 0 and not (first <= float(state[k, 3])):
                first = float(state[k, 3])
            last = np.nan
            if h > 0:
                last = float(hits[hits_start[c] + h - 1] - base)
            if not np.isnan(ol) and not (last >= ol):
                last = ol
            out_first[i] = first
            out_last[i] = last


def _lower_bounds(events, queries):  # type: ignore[no-untyped-def]
    m = len(events)
    out = np.empty(len(queries), np.int64)
    pos = 0  # every event before pos is < the current query
    for i in range(len(queries)):
        q = queries[i]
        if i > 0 and q < queries[i - 1]:
            pos = 0
        hi, step = pos, 1  # gallop: widen [pos, hi) until events[hi] >= q
        while hi < m and events[hi] < q:
            pos = hi + 1
            hi = pos + step
            step *= 2
        hi = min(hi, m)
        while pos < hi:  # then the first event >= q in [pos, hi]
            mid = (pos + hi) // 2
            if events[mid] < q:
                pos = mid + 1
            else:
                hi = mid
        out[i] = pos
    return out


def _first_rows(key, seconds):  # type: ignore[no-untyped-def]
    """The row of each distinct key with the earliest second (the first listed among equals), unordered:
    open addressing on a multiplicative hash, a table of at least twice the rows."""
    n = len(key)
    bits = 4
    while (1 << bits) < 2 * n:
        bits += 1
    mask = (1 << bits) - 1
    slot_row = np.full(1 << bits, -1, np.int64)
    found = 0
    for i in range(n):
        k = key[i]
        s = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))
        while True:
            r = slot_row[s]
            if r < 0:
                slot_row[s] = i
                found += 1
                break
            if key[r] == k:
                if seconds[i] < seconds[r]:
                    slot_row[s] = i
                break
            s = (s + 1) & mask
    out = np.empty(found, np.int64)
    j = 0
    for s in range(len(slot_row)):
        if slot_row[s] >= 0:
            out[j] = slot_row[s]
            j += 1
    return out


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

