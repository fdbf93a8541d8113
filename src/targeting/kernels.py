"""Compiled inner loops (numba), where NumPy passes cost too much.

**As-of answers of one key** (`answer_key`, the inner loop of `HistoryIndex.as_of`). A daily batch asks 11
keys about a million rows each. As NumPy passes every key cost ~0.4 s of temporaries (a dozen
million-element arrays per key); one compiled loop over the rows costs a fraction of that and releases
the GIL, so keys run side by side on threads. The rules are those of `HistoryStore.as_of`
(tests/test_history_index.py checks that they agree):
- stored events of the row's key value strictly before the row's second: the value's whole run when its
  last event is earlier (the daily case), else a binary search within the run;
- the batch's own new rows of the same value filed strictly earlier, and the second of the value's first
  new row (rows visited in time order, keeping counts per value: no sort per key, and for a batch that
  is already in time order, as a day's manifests are, no gathers either);
- stored outcomes of the batch's new rows, given by the caller per row (empty arrays when there are none).

**Drift bins** (`bin_counts`): a batch column's counts per reference bin without the float64 copy, mask
and binary-search arrays of a million rows per column: one pass per bound counting the values at or
above it (or equal to it, for codes), a loop the compiler vectorises, and the bins are differences of
those counts.

**Tree walking** (`walk_forest`): the raw scores of `forest.CompiledForest`, LightGBM's rules (see there),
rows in blocks walked tree by tree.

**Lower bounds of ascending queries** (`lower_bounds`): `np.searchsorted` for the new-senders count's
million sorted queries, galloping forward from the previous answer instead of searching from scratch.

**First row per key** (`first_per_key`): the new-senders count's earliest row of each (address, sender)
pair, through a hash table of the pairs rather than a lexsort of every row.

The loops are compiled once for fixed argument types (read-only inputs accept any array) and cached on
disk by numba: later processes load them in well under a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types  # imported with the module: the compiled loops load later, from disk

from targeting.history import _SPAN as SPAN  # composite key = code * SPAN + second

#: batches smaller than this keep their per-value counts by a dense number per distinct value, not by code
DENSE_BELOW = 100_000

_compiled: dict[str, Any] = {}


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
    load()["answer_key"](_ints(code), _ints(slot.reshape(-1)), _ints(seconds), _ints(order),
                         np.ascontiguousarray(new, np.bool_), int(n_codes), *[_ints(a) for a in stored],
                         np.ascontiguousarray(inspected, np.bool_), _ints(orphans[0]), _ints(orphans[1]),
                         _floats(orphans[2]), bool(party), *columns)  # fmt: skip


def bin_counts(x: np.ndarray, edges: np.ndarray | None = None, codes: np.ndarray | None = None) -> np.ndarray:
    """Counts of `x` per bin: [missing, bin 0, ..., bin len(edges)] for quantile `edges` (a value goes
    after every edge it equals), or [missing, code 0, ..., other] for `codes` (a value repeated in
    `codes` counts at its first place). Missing means not finite."""
    kernel = load()["bin_counts"]
    x = np.ascontiguousarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    by_codes = codes is not None
    bounds = _floats(codes if by_codes else edges if edges is not None else np.zeros(0))
    if not by_codes:  # a value's bin is the number of edges at or below it, whatever their order
        bounds = np.sort(bounds)
    raw = kernel(x, bounds, by_codes)  # [not finite, +inf, per bound: values >= it (or == it)]
    missing, k = int(raw[0]), len(bounds)
    finite = len(x) - missing
    counts = np.zeros(k + 2, np.int64)
    counts[0] = missing
    if by_codes:
        first = np.zeros(k, bool)
        first[np.unique(bounds, return_index=True)[1]] = True
        at = np.where(first & np.isfinite(bounds), raw[2:], 0)
        counts[1 : k + 1] = at
        counts[k + 1] = finite - at.sum()
        return counts
    at_or_above = raw[2:] - raw[1] * np.isfinite(bounds)  # finite values >= each (finite) edge
    levels = np.concatenate([[finite], at_or_above, [0]])  # values past 0, 1, ..., k edges
    counts[1:] = levels[:-1] - levels[1:]
    return counts


def lower_bounds(events: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """`np.searchsorted(events, queries)` (side left) for sorted int64 `events`, galloping forward from the
    previous answer while the queries ascend: a batch's million sorted queries cost one pass over the
    events instead of a million binary searches (7 ms against 30 ms for 2 M events)."""
    return load()["lower_bounds"](_ints(events), _ints(queries))


def first_per_key(key: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """`history.first_per_key` (each key's earliest row, ties in time: the first listed; in ascending key
    order) by one pass through a hash table of the keys and a sort of the distinct keys only, instead of
    a two-key lexsort of every row (the new-senders count's million pairs: 0.11-0.13 -> 0.06-0.08 s), releasing
    the GIL for the pass."""
    rows = load()["first_rows"](_ints(key), _ints(seconds))
    return rows[np.argsort(key[rows])]


def walk_forest(x: np.ndarray, forest: Any, start: int, stop: int, out: np.ndarray) -> None:
    """Fill `out[start:stop]` with the raw scores of rows `start:stop` of the float32 matrix `x` (any
    memory order) under `forest` (a `forest.CompiledForest`); releases the GIL."""
    f = forest
    load()["walk_forest"](x, f.roots, f.feature, f.threshold, f.child, f.flags, f.cat_start, f.cat_len, f.cat_words,
                          f.leaf_value, int(start), int(stop), out)  # fmt: skip


def load() -> dict[str, Any]:
    """The compiled loops: from numba's on-disk cache after the first run, compiled (a few seconds) on
    it. Scoring loads them on its loading thread, beside validation."""
    if not _compiled:
        _compiled.update(_compile())
    return _compiled


def _ints(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.int64)


def _floats(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64)


def _compile() -> dict[str, Any]:
    """The loops, typed (read-only inputs accept any array) and compiled or loaded from numba's cache."""

    def array(kind: Any, readonly: bool = True) -> Any:
        return types.Array(kind, 1, "C", readonly=readonly)

    ints, floats, out = array(types.int64), array(types.float64), array(types.float64, readonly=False)
    answer = types.void(ints, ints, ints, ints, array(types.boolean), types.int64, *[ints] * 6, array(types.boolean),
                        *[ints] * 2, floats, types.boolean, *[out] * 5)  # fmt: skip
    counts = types.Array(types.int64, 1, "C")
    bins = [counts(array(t), floats, types.boolean) for t in (types.float32, types.float64)]
    int32s = array(types.int32)
    walk = types.void(types.Array(types.float32, 2, "A", readonly=True), *[int32s] * 2, floats, *[int32s] * 4,
                      array(types.uint32), floats, types.int64, types.int64, out)  # fmt: skip
    return {
        "answer_key": njit(answer, nogil=True, cache=True)(_answer),
        "bin_counts": njit(bins, nogil=True, cache=True)(_bins),
        "lower_bounds": njit(counts(ints, ints), nogil=True, cache=True)(_lower_bounds),
        "first_rows": njit(counts(ints, ints), nogil=True, cache=True)(_first_rows),
        "walk_forest": njit(walk, nogil=True, cache=True)(_walk_forest),
    }


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


def _bins(x, bounds, by_codes):  # type: ignore[no-untyped-def]
    # one simple counting pass per bound (LLVM vectorises it): 7x faster than finding each value's bin
    # without branches (1 M values, 9 edges: 1.4 against 10 ms), and that was 3x faster than a search
    k = len(bounds)
    out = np.zeros(k + 2, np.int64)
    for i in range(len(x)):
        out[0] += not np.isfinite(x[i])
        out[1] += x[i] == np.inf
    for b in range(k):
        e = bounds[b]
        c = 0
        if by_codes:
            for i in range(len(x)):
                c += x[i] == e
        else:
            for i in range(len(x)):
                c += x[i] >= e
        out[2 + b] = c
    return out


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


#: LightGBM's kZeroThreshold (1e-35f): its dense reader drops values this close to zero
_ZERO = 1.0000000180025095e-35
#: rows walked tree by tree: a block's rows stay in cache while each tree is walked (4,096 measured
#: fastest, 3.1-3.4 s for 1 M rows x 155 trees on one core, against 3.6-4.8 s for 16-512 or 16,384+)
_BLOCK = 4096


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


def _walk_forest(x, roots, feature, threshold, child, flags, cat_start, cat_len, cat_words, leaf_value,  # type: ignore[no-untyped-def]
                 start, stop, out):  # fmt: skip
    for b0 in range(start, stop, _BLOCK):
        b1 = min(b0 + _BLOCK, stop)
        for r in range(b0, b1):
            out[r] = 0.0
        for t in range(len(roots)):
            root = roots[t]
            for r in range(b0, b1):
                node = root
                while node >= 0:
                    v = np.float64(x[r, feature[node]])
                    fl = flags[node]
                    if fl & 4:  # categorical: the integer part (C's truncation) in the bitset
                        left = False
                        if v > -1.0 and v < 2147483648.0:  # false for NaN
                            c = np.int64(v)
                            w = c >> 5
                            if w < cat_len[node]:
                                left = (cat_words[cat_start[node] + w] >> (c & 31)) & 1 == 1
                    elif v != v:
                        left = fl & 1 != 0
                    elif abs(v) <= _ZERO:
                        left = fl & 2 != 0
                    else:
                        left = v <= threshold[node]
                    node = child[2 * node + 1] if left else child[2 * node]
                out[r] += leaf_value[~node]
