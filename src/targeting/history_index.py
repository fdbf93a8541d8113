"""The history store, indexed for fast as-of answers at scoring and serving time.

`HistoryStore.as_of` sorts every stored event together with the query each time: right for training
(every row against the rows before it), but a one-row REST request then costs as much as sorting the
whole history. `HistoryIndex` sorts the stored events once (per key: declarations, outcomes, hits,
first-seen of each address-sender pair, as `code * SPAN + second` integers) and answers a query by
binary search, adding what the query batch itself contributes (its own earlier rows, and outcomes of its
rows, when the store has them) with the same sort-merge code as the store. The answers are exactly those
of `HistoryStore.as_of` (tested on random queries), so training and scoring features cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from targeting.history import (
    _SPAN,
    PARTY_KEYS,
    ROUTE_KEYS,
    WINDOW_DAYS,
    HistoryStore,
    _running,
    _seconds,
    first_per_key,
)

_PAIR = np.int64(2**31)  # pair key = address code * _PAIR + sender code


def _sorted_keys(codes: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    keep = codes >= 0
    return np.sort(codes[keep].astype(np.int64) * _SPAN + seconds[keep])


def _values(series: pd.Series) -> pd.Series:
    return series.astype("str") if series.dtype == object else series


def _codes(index: pd.Index, *series: pd.Series) -> list[np.ndarray]:
    """Codes of the stored index (its hash table is built once); values it has never seen get shared codes
    after it, missing values -1 (no O(store) work per query)."""
    codes = [index.get_indexer(_values(s)) for s in series]
    unseen = pd.concat([_values(s)[c < 0] for s, c in zip(series, codes, strict=True)], ignore_index=True)
    extra, _ = pd.factorize(unseen, use_na_sentinel=True)
    start = 0
    for c in codes:
        n = int((c < 0).sum())
        part = extra[start : start + n]
        c[c < 0] = np.where(part >= 0, len(index) + part, -1)
        start += n
    return codes


@dataclass
class _Key:
    column: str
    index: pd.Index  # stored value -> code
    decl: np.ndarray  # sorted code * SPAN + filed second
    insp: np.ndarray  # sorted code * SPAN + known second, every outcome
    hits: np.ndarray  # the same, hits only


class HistoryIndex:
    """A `HistoryStore` prepared once for many `as_of` calls (same answers, binary search per query)."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        decl = store.declarations
        self.ids = pd.Index(decl["declaration_id"].astype(str))
        decl_s = _seconds(decl["filed_at"])
        outcome = store.outcomes.merge(decl, on="declaration_id", how="inner")
        out_s = _seconds(outcome["known_at"])
        hit = outcome["label"].to_numpy(dtype=bool)
        self.orphans = store.outcomes[~store.outcomes["declaration_id"].isin(decl["declaration_id"])]
        self.keys: dict[str, _Key] = {}
        for name, col in {**PARTY_KEYS, **ROUTE_KEYS}.items():
            if col not in decl:
                continue
            codes, uniques = pd.factorize(_values(decl[col]), use_na_sentinel=True)
            index = pd.Index(uniques)
            o_codes = index.get_indexer(_values(outcome[col]))
            self.keys[name] = _Key(col, index, _sorted_keys(codes, decl_s), _sorted_keys(o_codes, out_s),
                                   _sorted_keys(o_codes[hit], out_s[hit]))  # fmt: skip
        self.pairs = None
        if "consignee_addr_hash" in decl and "consignor_id" in decl:
            a_codes, a_uni = pd.factorize(_values(decl["consignee_addr_hash"]), use_na_sentinel=True)
            s_codes, s_uni = pd.factorize(_values(decl["consignor_id"]), use_na_sentinel=True)
            ok = (a_codes >= 0) & (s_codes >= 0)
            pair = a_codes[ok].astype(np.int64) * _PAIR + s_codes[ok]
            keep = first_per_key(pair, decl_s[ok])
            self.pairs = {
                "addr": pd.Index(a_uni), "sender": pd.Index(s_uni),
                "pair": pair[keep], "first_s": decl_s[ok][keep],  # sorted by pair
                "events": np.sort(a_codes[ok][keep].astype(np.int64) * _SPAN + decl_s[ok][keep]),
            }  # fmt: skip

    def as_of(self, query: pd.DataFrame) -> pd.DataFrame:
        """Raw as-of counts for every query row (index kept): the same frame `HistoryStore.as_of` returns."""
        query = query.reset_index(drop=False)
        index_name = query.columns[0]
        q_s = _seconds(query["filed_at"])
        ids = query["declaration_id"].astype(str)
        new = (self.ids.get_indexer(ids) < 0) & ~ids.duplicated().to_numpy()  # get_indexer: hash built once
        batch = query[new]
        b_s = q_s[new]
        orphans = self.orphans.merge(batch.drop(columns=[index_name]), on="declaration_id", how="inner")
        o_s = _seconds(orphans["known_at"]) if len(orphans) else np.zeros(0, np.int64)
        o_hit = orphans["label"].to_numpy(dtype=bool)
        result: dict[str, np.ndarray] = {}
        for name, key in self.keys.items():
            if key.column not in query:
                continue
            party = name in PARTY_KEYS
            q = query[key.column]
            code = key.index.get_indexer(_values(q))
            seen = code >= 0
            base = np.where(seen, code.astype(np.int64) * _SPAN, 0)
            at = base + q_s

            def count(events: np.ndarray, base=base, at=at, seen=seen) -> np.ndarray:
                return np.where(seen, np.searchsorted(events, at) - np.searchsorted(events, base), 0)

            intra = _running(batch[key.column], b_s, orphans[key.column] if len(orphans) else q.iloc[:0],
                             o_s, o_hit, q, q_s, times=party)  # fmt: skip
            missing = q.isna().to_numpy()
            n_decl = count(key.decl)
            for what, events in (("decl", key.decl), ("insp", key.insp), ("hits", key.hits)):
                values = count(events) + np.nan_to_num(intra[what])
                result[f"h_{name}_{what}"] = np.where(missing, np.nan, values).astype(float)
            if party:
                start = np.searchsorted(key.decl, base)
                first = np.where(seen & (n_decl > 0), key.decl[np.minimum(start, len(key.decl) - 1)] - base, np.nan) \
                    if len(key.decl) else np.full(len(q), np.nan)  # fmt: skip
                last_i = np.searchsorted(key.hits, at) - 1
                has_hit = seen & (last_i >= np.searchsorted(key.hits, base))
                last = np.where(has_hit, key.hits[np.maximum(last_i, 0)] - base, np.nan) if len(key.hits) \
                    else np.full(len(q), np.nan)  # fmt: skip
                result[f"h_{name}_first_seen_s"] = np.fmin(first.astype(float), intra["first_seen_s"])
                result[f"h_{name}_last_hit_s"] = np.fmax(last.astype(float), intra["last_hit_s"])
        if self.pairs is not None and "consignee_addr_hash" in query and "consignor_id" in query:
            result["h_address_new_senders_30d"] = self._new_senders(query, q_s, batch, b_s)
        frame = pd.DataFrame(result, index=query[index_name].to_numpy())
        frame.index.name = None
        return frame

    def _new_senders(
        self, query: pd.DataFrame, q_s: np.ndarray, batch: pd.DataFrame, b_s: np.ndarray
    ) -> np.ndarray:
        """Senders first seen at the address within 30 days before each query: the stored pair-first events,
        corrected by the batch's pairs that appear earlier than in the store (or not at all)."""
        p = self.pairs
        window = WINDOW_DAYS * 86_400
        q_addr = _values(query["consignee_addr_hash"])
        qa, ba = _codes(p["addr"], q_addr, batch["consignee_addr_hash"])
        at = qa.astype(np.int64) * _SPAN + q_s

        def in_window(events: np.ndarray) -> np.ndarray:
            return np.searchsorted(events, at) - np.searchsorted(events, at - window)

        counts = in_window(p["events"]).astype(float)
        (bs,) = _codes(p["sender"], batch["consignor_id"])
        ok = (ba >= 0) & (bs >= 0)
        if ok.any():
            pair = ba[ok].astype(np.int64) * _PAIR + bs[ok]
            first = first_per_key(pair, b_s[ok])
            b_pair, b_first, b_addr = pair[first], b_s[ok][first], ba[ok][first]
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
        return np.where(q_addr.isna().to_numpy(), np.nan, counts)
