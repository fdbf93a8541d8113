"""The history store, indexed once for fast as-of answers at scoring and serving time.

`HistoryStore.as_of` sorts every stored event together with the query each time: right for training
(every row against the rows before it), but a daily batch then pays for sorting the whole history again,
and a one-row REST request as much as a batch. `HistoryIndex` sorts the stored events once per key
(declarations, outcomes, hits as `code * SPAN + second` integers, with each code's first position) and
answers a query with array lookups: a key's whole past where it all precedes the query (the daily case),
a binary search where it does not, plus what the query batch itself adds (its own earlier rows and the
stored outcomes of its rows). The answers are exactly those of `HistoryStore.as_of` (tested on random
histories and queries), so training and scoring features cannot drift apart.

`save` writes the index beside the history (`<history>/as_of_index/<target>/`: NumPy arrays without
pickling, Parquet values, a fingerprint of the history files); `load_fresh` reads it back only while the
history files are unchanged. Building it is the once-per-history-update part of the daily cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from targeting.history import (
    _SPAN,
    PARTY_KEYS,
    ROUTE_KEYS,
    WINDOW_DAYS,
    HistoryStore,
    _seconds,
    first_per_key,
)
from targeting.io import arrow_text

INDEX_FOLDER = "as_of_index"
INDEX_FORMAT = 1
#: queries above this many rows check their ids against the store with one set lookup, not the hash index
SET_LOOKUP_ROWS = 100_000
_PAIR = np.int64(2**31)  # pair key = address code * _PAIR + sender code
_HISTORY_FILES = ("declarations.parquet", "inspections.parquet")


def _values(series: pd.Series) -> pd.Series:
    """Key values as the store compares them (object columns as read become strings)."""
    return series.astype("str") if series.dtype == object else series


def _positions(stored: pd.Index, values: pd.Series | pd.Index, large: bool | None = None) -> np.ndarray:
    """Position of each value among the stored values (-1: not stored). Small queries (serving) use the
    pandas hash table of the stored values, built on first use and kept; a large batch one Arrow set lookup,
    cheaper than building that table for a single call."""
    if large if large is not None else len(values) > SET_LOOKUP_ROWS:
        import pyarrow.compute as pc

        found = pc.index_in(arrow_text(values), value_set=arrow_text(stored))
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return stored.get_indexer(values).astype(np.int64)


def _sorted_events(codes: np.ndarray, seconds: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted `code * SPAN + second` of the events with a key, and each code's first position (n_codes + 1)."""
    keep = codes >= 0
    events = np.sort(codes[keep].astype(np.int64) * _SPAN + seconds[keep])
    starts = np.searchsorted(events, np.arange(n_codes + 1, dtype=np.int64) * _SPAN)
    return events, starts


@dataclass
class _Key:
    column: str
    values: pd.Index  # code -> stored value
    decl: np.ndarray  # sorted code * SPAN + filed second
    decl_start: np.ndarray  # code -> first position in decl (n_codes + 1 entries)
    insp: np.ndarray  # the same for every outcome, at its known second
    insp_start: np.ndarray
    hits: np.ndarray  # the same, hits only
    hits_start: np.ndarray


@dataclass
class _Batch:
    """What one query brings: its rows' seconds, which rows are new declarations, and the stored outcomes of
    those new rows (outcome known second, hit, position of the row in the query)."""

    seconds: np.ndarray
    new: np.ndarray
    orphan_rows: np.ndarray
    orphan_s: np.ndarray
    orphan_hit: np.ndarray


class HistoryIndex:
    """A `HistoryStore` prepared once for many `as_of` calls (same answers, array lookups per query)."""

    def __init__(self, store: HistoryStore, threads: int = 1) -> None:
        """Index `store`; with `threads` > 1 the keys are indexed side by side."""
        decl = store.declarations
        self.ids = pd.Index(decl["declaration_id"].astype(str))
        decl_s = _seconds(decl["filed_at"])
        outcome = store.outcomes.merge(decl, on="declaration_id", how="inner")
        out_s = _seconds(outcome["known_at"])
        hit = outcome["label"].to_numpy(dtype=bool)
        self.orphans = store.outcomes[~store.outcomes["declaration_id"].isin(decl["declaration_id"])]
        self.orphans = self.orphans.reset_index(drop=True)

        def index_key(col: str) -> tuple[_Key, np.ndarray]:
            codes, uniques = pd.factorize(_values(decl[col]), use_na_sentinel=True)
            values = pd.Index(uniques)
            o_codes = values.get_indexer(_values(outcome[col]))
            n = len(values)
            return _Key(col, values, *_sorted_events(codes, decl_s, n), *_sorted_events(o_codes, out_s, n),
                        *_sorted_events(o_codes[hit], out_s[hit], n)), codes  # fmt: skip

        columns = {name: col for name, col in {**PARTY_KEYS, **ROUTE_KEYS}.items() if col in decl}
        with ThreadPoolExecutor(max(1, threads)) as pool:
            built = dict(zip(columns, pool.map(index_key, columns.values()), strict=True))
        self.keys: dict[str, _Key] = {name: key for name, (key, _) in built.items()}
        codes = {name: c for name, (_, c) in built.items()}
        self.pairs: dict[str, np.ndarray] | None = None
        if "address" in codes and "consignor" in codes:
            a, s = codes["address"], codes["consignor"]
            ok = (a >= 0) & (s >= 0)
            pair = a[ok].astype(np.int64) * _PAIR + s[ok]
            keep = first_per_key(pair, decl_s[ok])
            self.pairs = {
                "pair": pair[keep], "first_s": decl_s[ok][keep],  # sorted by pair
                "events": np.sort(a[ok][keep].astype(np.int64) * _SPAN + decl_s[ok][keep]),
            }  # fmt: skip

    # ---- answering ----------------------------------------------------------------------------

    def as_of(self, query: pd.DataFrame, threads: int = 1) -> pd.DataFrame:
        """Raw as-of counts for every query row (index kept): the same frame `HistoryStore.as_of` returns.
        With `threads` > 1 the keys are answered side by side, while one more thread finds which query
        rows are new to the store (the keys need that only for the batch's own rows, after their lookups)."""
        seconds = _seconds(query["filed_at"])
        names = [n for n, k in self.keys.items() if k.column in query]
        if threads > 1:
            with ThreadPoolExecutor(1) as side, ThreadPoolExecutor(threads) as pool:
                pending = side.submit(self._batch, query, seconds)
                work = pool.map(lambda n: self._answer_key(n, query, seconds, pending.result), names)
                answers = dict(zip(names, work, strict=True))
                batch = pending.result()
        else:
            batch = self._batch(query, seconds)
            answers = {name: self._answer_key(name, query, seconds, lambda: batch) for name in names}
        result: dict[str, np.ndarray] = {}
        for name in names:
            result.update(answers[name][0])
        if self.pairs is not None and "address" in answers and "consignor" in answers:
            result["h_address_new_senders_30d"] = self._new_senders(
                answers["address"][1], answers["consignor"][1], answers["address"][2], batch
            )
        # one column-major block: the frame takes it without copying 40 columns into a new block
        block = np.empty((len(query), len(result)), np.float64, order="F")
        for j, values in enumerate(result.values()):
            block[:, j] = values
        return pd.DataFrame(block, index=query.index.copy(), columns=list(result), copy=False)

    def _batch(self, query: pd.DataFrame, seconds: np.ndarray) -> _Batch:
        ids = query["declaration_id"].astype(str)
        new = ~self._stored(ids) & ~ids.duplicated().to_numpy()
        rows = np.zeros(0, np.int64)
        o_s, o_hit = np.zeros(0, np.int64), np.zeros(0, bool)
        if len(self.orphans):
            new_ids = pd.Index(ids[new])
            pos = new_ids.get_indexer(self.orphans["declaration_id"].astype(str))
            mine = pos >= 0
            if mine.any():
                rows = np.flatnonzero(new)[pos[mine]]
                o_s = _seconds(self.orphans["known_at"][mine])
                o_hit = self.orphans["label"].to_numpy(dtype=bool)[mine]
        return _Batch(seconds, new, rows, o_s, o_hit)

    def _stored(self, ids: pd.Series) -> np.ndarray:
        """Which ids the store holds."""
        return _positions(self.ids, ids) >= 0

    def _codes(self, key: _Key, values: pd.Series) -> np.ndarray:
        """Codes of the query's values: stored values keep their code, values never stored get codes after
        them (the same code for the same value), missing values -1. A large batch is looked up row by row
        in one Arrow set lookup, and only the values not found are factorized; a small one looks each
        distinct value up once in the kept pandas hash table."""
        values = _values(values)
        if len(values) > SET_LOOKUP_ROWS:
            code = _positions(key.values, values, large=True)
            unseen = (code < 0) & values.notna().to_numpy()
            if unseen.any():
                extra, _ = pd.factorize(values[unseen], use_na_sentinel=True)
                code[unseen] = len(key.values) + extra
            return code
        local, distinct = pd.factorize(values, use_na_sentinel=True)
        found = _positions(key.values, pd.Index(distinct), large=False)
        unseen = found < 0
        found[unseen] = len(key.values) + np.arange(int(unseen.sum()))
        return np.append(found, -1)[local]  # a missing value (local -1) picks the appended -1

    def _answer_key(self, name: str, query: pd.DataFrame, seconds: np.ndarray,
                    batch_of: Callable[[], _Batch]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:  # fmt: skip
        """The `h_<name>_*` columns for the query, the query's codes for this key and its (code, time) order.
        `batch_of` gives what the query brings as new rows (asked for only once the store's part is done)."""
        key = self.keys[name]
        code = self._codes(key, query[key.column])
        n_codes = len(key.values)
        seen = (code >= 0) & (code < n_codes)
        c = np.where(seen, code, 0)
        base = c.astype(np.int64) * _SPAN
        at = base + seconds
        sort_key = np.where(code >= 0, code.astype(np.int64) * _SPAN + seconds, -1)
        order = np.argsort(sort_key)  # ties need no order: equal (code, time) rows are handled as one run
        out: dict[str, np.ndarray] = {}
        stored = {}
        for what, events, starts in (("decl", key.decl, key.decl_start), ("insp", key.insp, key.insp_start),
                                     ("hits", key.hits, key.hits_start)):  # fmt: skip
            stored[what] = np.where(seen, _count_before(events, starts, c, at, order), 0)
        batch = batch_of()
        intra_decl, first_new_s = _intra(code, sort_key, order, batch.new, seconds)
        o_insp, o_hits, o_last = _orphan_counts(code, batch, sort_key)
        missing = code < 0
        for what, values in (("decl", stored["decl"] + intra_decl), ("insp", stored["insp"] + o_insp),
                             ("hits", stored["hits"] + o_hits)):  # fmt: skip
            out[f"h_{name}_{what}"] = np.where(missing, np.nan, values.astype(float))
        if name in PARTY_KEYS:
            first = np.full(len(code), np.nan)
            has_stored = stored["decl"] > 0
            if len(key.decl):
                first_event = key.decl[np.minimum(key.decl_start[c], len(key.decl) - 1)] - base
                first = np.where(has_stored, first_event, np.nan).astype(float)
            first = np.fmin(first, np.where(intra_decl > 0, first_new_s, np.nan))
            last = np.full(len(code), np.nan)
            if len(key.hits):
                n_hits = stored["hits"]
                last_pos = np.minimum(key.hits_start[c] + n_hits - 1, len(key.hits) - 1)
                last = np.where(n_hits > 0, key.hits[np.maximum(last_pos, 0)] - base, np.nan).astype(float)
            last = np.fmax(last, o_last)
            out[f"h_{name}_first_seen_s"] = np.where(missing, np.nan, first)
            out[f"h_{name}_last_hit_s"] = np.where(missing, np.nan, last)
        return out, code, order

    def _new_senders(
        self, addr: np.ndarray, sender: np.ndarray, order: np.ndarray, batch: _Batch
    ) -> np.ndarray:
        """Senders first seen at the address within 30 days before each query: the stored pair-first events,
        corrected by the batch's pairs that appear earlier than in the store (or not at all)."""
        p = self.pairs
        assert p is not None
        window = WINDOW_DAYS * 86_400
        q_s = batch.seconds
        at = np.maximum(addr, 0).astype(np.int64) * _SPAN + q_s

        at_sorted = at[order]  # `order` sorts the query by (address, time): searches in ascending order

        def in_window(events: np.ndarray) -> np.ndarray:
            found = np.empty(len(at), np.int64)
            found[order] = np.searchsorted(events, at_sorted) - np.searchsorted(events, at_sorted - window)
            return found

        counts = in_window(p["events"]).astype(float)
        new = batch.new
        ok = new & (addr >= 0) & (sender >= 0)
        if ok.any():
            pair = addr[ok].astype(np.int64) * _PAIR + sender[ok]
            first = first_per_key(pair, q_s[ok])
            b_pair, b_first, b_addr = pair[first], q_s[ok][first], addr[ok][first]
            known = np.zeros(len(b_pair), bool)
            store_first = np.full(len(b_pair), np.iinfo(np.int64).max)
            if len(p["pair"]):  # the store's first time of each batch pair, where the store has the pair
                pos = np.minimum(np.searchsorted(p["pair"], b_pair), len(p["pair"]) - 1)
                known = p["pair"][pos] == b_pair
                store_first = np.where(known, p["first_s"][pos], store_first)
            moved = b_first < store_first
            added = np.sort(b_addr[moved].astype(np.int64) * _SPAN + b_first[moved])
            removed = np.sort(b_addr[moved & known].astype(np.int64) * _SPAN + store_first[moved & known])
            counts += in_window(added) - in_window(removed)
        return np.where(addr < 0, np.nan, counts)

    # ---- persistence ------------------------------------------------------------------------

    def save(self, folder: str | Path, fingerprint: dict[str, Any]) -> Path:
        """Write the index into `folder` (replaced whole): arrays as .npy, values and ids as Parquet."""
        import shutil
        import tempfile

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".index-", dir=folder.parent))
        arrays: dict[str, np.ndarray] = {}
        for name, key in self.keys.items():
            for part in ("decl", "decl_start", "insp", "insp_start", "hits", "hits_start"):
                arrays[f"{name}.{part}"] = getattr(key, part)
            pd.DataFrame({"value": key.values.astype(str)}).to_parquet(tmp / f"values.{name}.parquet")
        for part, values in (self.pairs or {}).items():
            arrays[f"pairs.{part}"] = values
        for label, values in arrays.items():
            np.save(tmp / f"{label}.npy", values, allow_pickle=False)
        pd.DataFrame({"declaration_id": self.ids.astype(str)}).to_parquet(tmp / "ids.parquet")
        self.orphans.to_parquet(tmp / "orphans.parquet")
        meta = {"format": INDEX_FORMAT, "fingerprint": fingerprint,
                "keys": {name: key.column for name, key in self.keys.items()}, "pairs": self.pairs is not None}  # fmt: skip
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> HistoryIndex:
        folder = Path(folder)
        meta = json.loads((folder / "index.json").read_text())

        def array(label: str) -> np.ndarray:
            return np.load(folder / f"{label}.npy", allow_pickle=False)

        keys = {}
        for name, column in meta["keys"].items():
            values = pd.Index(pd.read_parquet(folder / f"values.{name}.parquet")["value"])
            parts = [
                array(f"{name}.{p}")
                for p in ("decl", "decl_start", "insp", "insp_start", "hits", "hits_start")
            ]
            keys[name] = _Key(column, values, *parts)
        pairs = {p: array(f"pairs.{p}") for p in ("pair", "first_s", "events")} if meta["pairs"] else None
        ids = pd.Index(pd.read_parquet(folder / "ids.parquet")["declaration_id"])
        orphans = pd.read_parquet(folder / "orphans.parquet")
        index = cls.__new__(cls)  # the saved arrays, not a store to index again
        index.keys, index.pairs, index.ids, index.orphans = keys, pairs, ids, orphans
        return index


def _count_before(events: np.ndarray, starts: np.ndarray, code: np.ndarray, at: np.ndarray,
                  order: np.ndarray) -> np.ndarray:  # fmt: skip
    """Events of each row's code strictly before its time: the code's whole run where its last event is
    earlier (no search), a binary search for the rest (in sorted query order, which is cache-friendly)."""
    if len(events) == 0:
        return np.zeros(len(code), np.int64)
    lo, hi = starts[code], starts[code + 1]
    count = hi - lo
    later = (hi > lo) & (events[np.maximum(hi - 1, 0)] >= at)
    if later.any():
        rows = order[later[order]]  # the rows needing a search, in ascending (code, time) order
        count[rows] = np.searchsorted(events, at[rows]) - lo[rows]
    return count


def _intra(code: np.ndarray, sort_key: np.ndarray, order: np.ndarray, new: np.ndarray,
           seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The query's own contribution per row, given its (code, time) sort key and order and which rows are
    new declarations: the number of new rows of the same code filed strictly earlier, and the filing second
    of the code's first new row."""
    n = len(code)
    k = sort_key[order]
    c = code[order]
    new = new[order]
    idx = np.arange(n)
    run_start = np.maximum.accumulate(
        np.where(np.r_[True, k[1:] != k[:-1]] if n else np.zeros(0, bool), idx, 0)
    )
    group_start = np.maximum.accumulate(
        np.where(np.r_[True, c[1:] != c[:-1]] if n else np.zeros(0, bool), idx, 0)
    )
    before = np.cumsum(new) - new  # new rows before each position
    count_sorted = before[run_start] - before[group_start]
    new_pos = np.flatnonzero(new)
    first_new = new_pos[np.minimum(np.searchsorted(new_pos, group_start), max(len(new_pos) - 1, 0))] \
        if len(new_pos) else np.zeros(n, np.int64)  # fmt: skip
    first_s_sorted = np.where(count_sorted > 0, seconds[order][first_new] if n else 0, 0)
    intra, first_s = np.empty(n, np.int64), np.empty(n, np.float64)
    intra[order] = np.where(c >= 0, count_sorted, 0)
    first_s[order] = np.where(count_sorted > 0, first_s_sorted, np.nan)
    return intra, first_s


def _orphan_counts(
    code: np.ndarray, batch: _Batch, at_all: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored outcomes of the query's new rows, known strictly before each row (`at_all`: the row's
    `code * SPAN + second`, any value where the code is missing): count, hits, last hit second."""
    n = len(code)
    if len(batch.orphan_rows) == 0:
        return np.zeros(n, np.int64), np.zeros(n, np.int64), np.full(n, np.nan)
    o_code = code[batch.orphan_rows].astype(np.int64)
    keep = o_code >= 0
    events = np.sort(o_code[keep] * _SPAN + batch.orphan_s[keep])
    hits = np.sort((o_code * _SPAN + batch.orphan_s)[keep & batch.orphan_hit])
    base = np.maximum(code, 0).astype(np.int64) * _SPAN

    def count(ev: np.ndarray) -> np.ndarray:
        return np.searchsorted(ev, at_all) - np.searchsorted(ev, base)

    n_hits = count(hits)
    last_i = np.searchsorted(hits, at_all) - 1
    last = np.where(n_hits > 0, hits[np.maximum(last_i, 0)] - base if len(hits) else 0, np.nan).astype(float)
    valid = code >= 0
    return np.where(valid, count(events), 0), np.where(valid, n_hits, 0), np.where(valid, last, np.nan)


# ---- the index beside a history folder -------------------------------------------------------------


def index_folder(history: str | Path, target: str) -> Path:
    return Path(history) / INDEX_FOLDER / str(target)


def fingerprint(history: str | Path, target: str) -> dict[str, Any]:
    """What the index was built from: each history file's size and modification time, and the target."""
    files = {}
    for name in _HISTORY_FILES:
        path = Path(history) / name
        if path.exists():
            stat = path.stat()
            files[name] = [stat.st_size, stat.st_mtime_ns]
    return {"target": str(target), "files": files}


def load_fresh(history: str | Path, target: str) -> HistoryIndex | None:
    """The saved index of this history and target, or None when there is none or the files changed since."""
    folder = index_folder(history, target)
    try:
        meta = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != INDEX_FORMAT or meta.get("fingerprint") != fingerprint(history, target):
        return None
    return HistoryIndex.load(folder)
