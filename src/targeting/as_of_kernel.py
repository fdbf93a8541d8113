"""One key's as-of answers for a query batch, compiled: the inner loop of `HistoryIndex.as_of`.

A daily batch asks 11 keys about a million rows each. Written as NumPy passes, every key cost ~0.4 s of
temporaries (a dozen million-element arrays per key, page faults included); the same rules as one
compiled loop over the rows cost a fraction of that and release the GIL, so keys run side by side on
threads. The rules are those of `HistoryStore.as_of` (tests/test_history_index.py checks they agree):

- stored events of the row's key value strictly before the row's second: the value's whole run when its
  last event is earlier (the daily case), else a binary search within the run;
- the batch's own new rows of the same value filed strictly earlier (rows visited in (value, second)
  order), and the second of the value's first new row;
- stored outcomes of the batch's new rows (`o_*`, empty when there are none), added by the caller's arrays.

Compiled on first use and cached on disk by numba (a dependency of shap already).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPAN = 10_000_000_000  # history._SPAN: composite key = code * SPAN + second

_kernel: Any = None


def answer_key(code: np.ndarray, seconds: np.ndarray, order: np.ndarray, new: np.ndarray, n_codes: int,
               stored: tuple[np.ndarray, ...], orphans: tuple[np.ndarray, np.ndarray, np.ndarray],
               party: bool, out: np.ndarray) -> None:  # fmt: skip
    """Fill `out` (rows x 3, or x 5 for a party key; float64 columns, each contiguous): earlier
    declarations, outcomes and hits, then the first-seen and last-hit seconds relative to the value's
    base. `stored` = (decl, decl_start, insp, insp_start, hits, hits_start) of `history_index._Key`;
    `orphans` = (outcomes, hits, last hit second) per row from the store's outcomes of new rows, or
    three empty arrays."""
    kernel = load()
    columns = [out[:, j] for j in range(out.shape[1])]
    if not party:
        columns += [np.empty(0), np.empty(0)]
    kernel(np.ascontiguousarray(code, np.int64), np.ascontiguousarray(seconds, np.int64),
           np.ascontiguousarray(order, np.int64), np.ascontiguousarray(new, np.bool_), int(n_codes),
           *[np.ascontiguousarray(a, np.int64) for a in stored], np.ascontiguousarray(orphans[0], np.int64), np.ascontiguousarray(orphans[1], np.int64),
           np.ascontiguousarray(orphans[2], np.float64), bool(party), *columns)  # fmt: skip


def load() -> Any:
    """The compiled kernel: numba's on-disk cache on later runs, compiled (a few seconds) on the first.
    Scoring calls it on its loading thread, beside validation, so that the answers do not wait for it."""
    global _kernel
    if _kernel is None:
        _kernel = _compile()
    return _kernel


def _compile() -> Any:
    from numba import njit

    @njit(nogil=True, cache=True)
    def count_before(events, starts, c, at):  # type: ignore[no-untyped-def]
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

    @njit(nogil=True, cache=True)
    def kernel(code, seconds, order, new, n_codes, decl, decl_start, insp, insp_start, hits, hits_start,  # type: ignore[no-untyped-def]
               o_insp, o_hits, o_last, party, out_decl, out_insp, out_hits, out_first, out_last):  # fmt: skip
        n = len(code)
        has_orphans = len(o_insp) > 0
        earlier_new = 0  # new rows of the current value at earlier seconds
        run_new = 0  # new rows in the current run of equal (value, second)
        first_new = np.nan  # second of the current value's first new row
        prev_code, prev_second = -2, -1
        for p in range(n):
            i = order[p]
            c = code[i]
            s = seconds[i]
            if p == 0 or c != prev_code:
                earlier_new, run_new, first_new = 0, 0, np.nan
            elif s != prev_second:
                earlier_new += run_new
                run_new = 0
            prev_code, prev_second = c, s
            if new[i]:
                run_new += 1
                if np.isnan(first_new):
                    first_new = float(s)
            if c < 0:  # no value: nothing to count
                out_decl[i] = np.nan
                out_insp[i] = np.nan
                out_hits[i] = np.nan
                if party:
                    out_first[i] = np.nan
                    out_last[i] = np.nan
                continue
            d, ins, h = 0, 0, 0
            base = c * SPAN
            if c < n_codes:  # a stored value
                at = base + s
                d = count_before(decl, decl_start, c, at)
                ins = count_before(insp, insp_start, c, at)
                h = count_before(hits, hits_start, c, at)
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
                if earlier_new > 0 and not (first <= first_new):
                    first = first_new
                last = np.nan
                if h > 0:
                    last = float(hits[hits_start[c] + h - 1] - base)
                if not np.isnan(ol) and not (last >= ol):
                    last = ol
                out_first[i] = first
                out_last[i] = last

    return kernel
