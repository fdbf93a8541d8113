"""Compiled inner loops of the model's scoring (numba): the tree walk and the drift bins.

**Tree walking** (`walk_forest`): the raw scores of `forest.CompiledForest`, LightGBM's rules (see there),
rows in blocks walked tree by tree.

**Drift bins** (`bin_counts`): a batch column's counts per reference bin without the float64 copy, mask
and binary-search arrays of a million rows per column: one pass per bound counting the values at or
above it (or equal to it, for codes), a loop the compiler vectorises, and the bins are differences of
those counts.

The loops are compiled once for fixed argument types (read-only inputs accept any array) and cached on
disk by numba: later processes load them from that cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types  # imported with the module: the compiled loops load later, from disk

from targeting._numba import Loops, array_type, floats


def bin_counts(x: np.ndarray, edges: np.ndarray | None = None, codes: np.ndarray | None = None) -> np.ndarray:
    """Counts of `x` per bin: [missing, bin 0, ..., bin len(edges)] for quantile `edges` (a value goes
    after every edge it equals), or [missing, code 0, ..., other] for `codes` (a value repeated in
    `codes` counts at its first place). Missing means not finite."""
    kernel = load()["bin_counts"]
    x = np.ascontiguousarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    by_codes = codes is not None
    bounds = floats(codes if by_codes else edges if edges is not None else np.zeros(0))
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


def walk_forest(x: np.ndarray, forest: Any, start: int, stop: int, out: np.ndarray) -> None:
    """Fill `out[start:stop]` with the raw scores of rows `start:stop` of the float32 matrix `x` (any
    memory order) under `forest` (a `forest.CompiledForest`); releases the GIL."""
    f = forest
    load()["walk_forest"](x, f.roots, f.feature, f.threshold, f.child, f.flags, f.cat_start, f.cat_len, f.cat_words,
                          f.leaf_value, int(start), int(stop), out)  # fmt: skip


def _compile() -> dict[str, Any]:
    """The loops, typed (read-only inputs accept any array) and compiled or loaded from numba's cache."""

    floats, out = array_type(types.float64), array_type(types.float64, readonly=False)
    counts = types.Array(types.int64, 1, "C")
    bins = [counts(array_type(t), floats, types.boolean) for t in (types.float32, types.float64)]
    int32s = array_type(types.int32)
    walk = types.void(types.Array(types.float32, 2, "A", readonly=True), *[int32s] * 2, floats, *[int32s] * 4,
                      array_type(types.uint32), floats, types.int64, types.int64, out)  # fmt: skip
    return {
        "bin_counts": njit(bins, nogil=True, cache=True)(_bins),
        "walk_forest": njit(walk, nogil=True, cache=True)(_walk_forest),
    }


#: the loops by name, compiled or loaded from numba's cache on first use
load = Loops(_compile)


# The loops are module-level functions (numba's cache does not find closures again in a new process);
# helpers are jitted lazily: they are compiled into the loops that call them.


def _bins(x, bounds, by_codes):  # type: ignore[no-untyped-def]
    # one simple counting pass per bound, which LLVM vectorises: faster than finding each value's bin,
    # with or without branches (docs/performance.md)
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


#: LightGBM's kZeroThreshold (1e-35f): its dense reader drops values this close to zero
_ZERO = 1.0000000180025095e-35

#: rows walked tree by tree: a block's rows stay in cache while each tree is walked (the fastest block
#: size measured, docs/performance.md)
_BLOCK = 4096


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

