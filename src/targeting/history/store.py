"""The history store: past declarations and outcomes, asked point-in-time questions (decision 2).

For every query declaration and every entity it names (consignee, consignor, forwarder, declarant, the
consignee's phone / e-mail / address tokens, and route keys), the store answers with what was known
strictly before the row's `filed_at`: declarations filed earlier, inspections whose outcome was known
earlier (`known_at`), hits among them, the time of the last hit, and first-seen time. The same code
answers for a training window (every row against the rows before it) and for a new batch at scoring
time (against everything in the store, including outcomes that arrived after training).

Everything is vectorised: events and queries of one key are sorted together once, and running sums
are read off at the query positions (query rows sort before events with the same timestamp, so an
event at exactly `filed_at` never counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from targeting.config import Target
from targeting.contract.labels import labels

#: entity name -> declaration column; history features are computed for each
PARTY_KEYS: dict[str, str] = {
    "consignee": "consignee_id",
    "consignor": "consignor_id",
    "forwarder": "forwarder_id",
    "declarant": "declarant_id",
    "phone": "consignee_phone_hash",
    "email": "consignee_email_hash",
    "address": "consignee_addr_hash",
}
#: route keys: the transit key is the whole chain of transit ports as declared ("PABLB;MXZLO")
ROUTE_KEYS: dict[str, str] = {"origin": "origin_country", "load": "load_loc", "transit": "transit_locs",
                              "discharge": "discharge_loc"}  # fmt: skip
WINDOW_DAYS = 30


def answer_parts(name: str) -> tuple[str, ...]:
    """What `as_of` answers for entity `name`, in column order (`h_<name>_<part>`): counts for every key,
    first-seen and last-hit times for parties."""
    return ("decl", "insp", "hits", *(("first_seen_s", "last_hit_s") if name in PARTY_KEYS else ()))
_NS_PER_S = 1_000_000_000
_SPAN = 10_000_000_000  # > any epoch second we will meet: composite key = code * _SPAN + second
HISTORY_COLUMNS = ("declaration_id", "filed_at", *PARTY_KEYS.values(), *ROUTE_KEYS.values())


#: what a stored declaration's as-of answers depend on besides its id: two rows under one id that differ
#: here would be answered with each other's past
CONTENT_COLUMNS = tuple(c for c in HISTORY_COLUMNS if c != "declaration_id")


def content_text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A content column as comparable text: times as UTC microseconds, a missing or empty value as "" (so
    a CSV's empty cell, a Parquet null and an absent column read alike)."""
    if column not in frame:
        return pd.Series("", index=frame.index, dtype="str")
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        micros = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64")
        return micros.astype("str").where(values.notna(), "")
    return values.astype("str").where(values.notna(), "").fillna("")


def row_digests(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit digest of each row's content columns (equal content, equal digest; pandas' hash of text)."""
    if not len(frame):
        return np.zeros(0, np.uint64)
    text = pd.DataFrame({c: content_text(frame, c) for c in CONTENT_COLUMNS}, index=frame.index)
    return pd.util.hash_pandas_object(text, index=False).to_numpy(np.uint64)


def _seconds(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64").to_numpy() // _NS_PER_S


@dataclass
class HistoryStore:
    """Past declarations (the key columns) and their outcomes (label, known_at) for one target."""

    declarations: pd.DataFrame
    outcomes: pd.DataFrame  # declaration_id, label, known_at

    @classmethod
    def from_tables(cls, declarations: pd.DataFrame, inspections: pd.DataFrame,
                    target: Target | str = Target.HIT) -> HistoryStore:  # fmt: skip
        """The store of contract tables (`INSPECTIONS.empty_frame()` when there are no outcomes yet)."""
        decl = declarations[[c for c in HISTORY_COLUMNS if c in declarations]].drop_duplicates(
            "declaration_id"
        )
        return cls(decl.reset_index(drop=True), labels(inspections, target))

    def as_of(self, query: pd.DataFrame) -> pd.DataFrame:
        """Raw as-of counts for every query row (index kept): `h_<entity>_<what>` columns."""
        query = query.reset_index(drop=False)
        index_name = query.columns[0]
        decl = pd.concat([self.declarations, query[[c for c in self.declarations.columns if c in query]]])
        decl = decl.drop_duplicates("declaration_id").reset_index(drop=True)
        decl_s = _seconds(decl["filed_at"])
        outcome = self.outcomes.merge(decl, on="declaration_id", how="inner")
        out_s = _seconds(outcome["known_at"])
        hit = outcome["label"].to_numpy(dtype=bool)
        q_s = _seconds(query["filed_at"])
        result: dict[str, np.ndarray] = {}
        for name, col in {**PARTY_KEYS, **ROUTE_KEYS}.items():
            if col not in query:
                continue
            counts = _running(
                decl[col], decl_s, outcome[col], out_s, hit, query[col], q_s, times=name in PARTY_KEYS
            )
            for what, values in counts.items():
                result[f"h_{name}_{what}"] = values
        if "consignee_addr_hash" in query and "consignor_id" in query:
            result["h_address_new_senders_30d"] = _new_pairs_in_window(
                decl["consignee_addr_hash"], decl["consignor_id"], decl_s, query["consignee_addr_hash"], q_s
            )
        frame = pd.DataFrame(result, index=query[index_name].to_numpy())
        frame.index.name = None
        return frame


def _codes(*series: pd.Series) -> list[np.ndarray]:
    """Shared integer codes for the values of several series (missing -> -1)."""
    # pandas' Arrow-backed strings factorize fast; object columns (mixed values as read) become strings first
    joined = pd.concat([s if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object else s.astype("str")
                        for s in series], ignore_index=True)  # fmt: skip
    codes, _ = pd.factorize(joined, use_na_sentinel=True)
    out, start = [], 0
    for s in series:
        out.append(codes[start : start + len(s)])
        start += len(s)
    return out


def _running(d_key, d_s, o_key, o_s, o_hit, q_key, q_s, times: bool = True) -> dict[str, np.ndarray]:
    """Per query: prior declarations, inspections, hits and (with `times`) first-seen and last-hit time."""
    d_code, o_code, q_code = _codes(d_key, o_key, q_key)
    n_d, n_o, n_q = len(d_code), len(o_code), len(q_code)
    code = np.concatenate([q_code, d_code, o_code])
    sec = np.concatenate([q_s, d_s, o_s])
    kind = np.concatenate([np.zeros(n_q, np.int8), np.ones(n_d, np.int8), np.full(n_o, 2, np.int8)])
    # one int64 sort key (code, time, event after query): queries come first at equal (key, time), so
    # only strictly earlier events count; stable, as the three-key lexsort it replaces
    order = np.argsort((code.astype(np.int64) * _SPAN + sec) * 2 + (kind != 0), kind="stable")
    code, sec, kind = code[order], sec[order], kind[order]
    is_decl = kind == 1
    is_insp = kind == 2
    hit_all = np.concatenate([np.zeros(n_q + n_d, bool), o_hit])[order]
    start = np.r_[True, code[1:] != code[:-1]]
    group = np.cumsum(start) - 1

    def group_cumsum(x: np.ndarray) -> np.ndarray:
        c = np.cumsum(x, dtype=np.int64)
        base = (c - x)[start]
        return c - base[group]

    decl_n = group_cumsum(is_decl.astype(np.int64))
    insp_n = group_cumsum(is_insp.astype(np.int64))
    hit_n = group_cumsum((is_insp & hit_all).astype(np.int64))
    # values at a query row include only earlier rows (the query adds nothing itself)
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(order))
    at = pos[:n_q]
    missing = q_code < 0
    res = {
        "decl": decl_n[at].astype(float),
        "insp": insp_n[at].astype(float),
        "hits": hit_n[at].astype(float),
    }
    for k in ("decl", "insp", "hits"):
        res[k][missing] = np.nan
    if times:
        # first seen: events are sorted by time within a key, so once a declaration precedes the query the
        # key's first declaration does too; last hit: a running maximum that cannot cross keys, because
        # each key's values are offset by group * span (seconds shifted to be >= 0 and < span)
        base = int(sec.min()) if len(sec) else 0
        shifted = sec - base
        span = int(shifted.max()) + 2 if len(sec) else 2
        group_start = np.flatnonzero(start)
        first_decl = np.minimum.reduceat(np.where(is_decl, shifted, np.iinfo(np.int64).max), group_start)
        first_seen = np.where(decl_n[at] > 0, first_decl[group[at]] + base, np.nan).astype(float)
        offset = group.astype(np.int64) * span
        running = np.maximum.accumulate(np.where(is_insp & hit_all, shifted, -1) + offset)
        last = running[at] - offset[at]
        last_hit = np.where(last >= 0, last + base, np.nan).astype(float)
        first_seen[missing] = np.nan
        last_hit[missing] = np.nan
        res.update({"first_seen_s": first_seen, "last_hit_s": last_hit})
    return res


def first_per_key(key: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Positions of each key's earliest event, in ascending key order (ties in time: the first listed)."""
    if len(key) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((seconds, key))
    return order[np.r_[True, key[order][1:] != key[order][:-1]]]


def _new_pairs_in_window(addr: pd.Series, sender: pd.Series, d_s: np.ndarray, q_addr: pd.Series,
                         q_s: np.ndarray, days: int = WINDOW_DAYS) -> np.ndarray:  # fmt: skip
    """Senders seen for the first time at an address within the `days` before each query."""
    a_code, q_code = _codes(addr, q_addr)
    s_code = _codes(sender)[0]
    pair = a_code.astype(np.int64) * (int(s_code.max()) + 2) + s_code
    keep = first_per_key(pair, d_s)
    keep = keep[(a_code[keep] >= 0) & (s_code[keep] >= 0)]
    ev = np.sort(a_code[keep].astype(np.int64) * _SPAN + d_s[keep])
    q = q_code.astype(np.int64) * _SPAN + q_s
    count = np.searchsorted(ev, q, "left") - np.searchsorted(ev, q - days * 86_400, "left")
    return np.where(q_code >= 0, count, np.nan).astype(float)
