"""Why a shipment was flagged: exact TreeSHAP from LightGBM, summed into reasons an officer recognises.

`pred_contrib=True` gives, per row, one log-odds contribution per feature plus the expected value; they
add up to the raw score exactly (decision 4). Officers do not read feature names, so contributions are
summed into reason groups (the consignee's history, the declared value against its peers, the route...)
and each group is written as a sentence with the row's own values. Only the rows that need a reason
(flagged and explored) are explained, so the cost follows the budget, not the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from targeting.features.base import REASON_GROUPS


def contributions(booster: Any, matrix: pd.DataFrame, num_threads: int = 1) -> np.ndarray:
    """Exact TreeSHAP in log-odds: one column per feature, then the expected value (LightGBM layout)."""
    if len(matrix) == 0:
        return np.zeros((0, matrix.shape[1] + 1))
    return booster.predict(matrix.to_numpy(np.float32), pred_contrib=True, num_threads=num_threads)


def grouped(contrib: np.ndarray, names: list[str], groups: Mapping[str, str]) -> pd.DataFrame:
    """Per row, the contributions summed per reason group (`groups`: each feature's, as its transformer
    declares it; columns in REASON_GROUPS order)."""
    frame = pd.DataFrame(contrib[:, : len(names)], columns=names)
    summed = frame.T.groupby([groups[n] for n in names]).sum().T
    return summed.reindex(columns=[g for g in REASON_GROUPS if g in summed.columns])


# ---- sentences ----------------------------------------------------------------------------------


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _txt(v: Any, default: str = "unknown") -> str:
    return default if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v == "" else str(v)


def _n(v: float, noun: str) -> str:
    """`3 earlier declarations`, `1 earlier declaration`."""
    return f"{v:,.0f} {noun}" + ("" if round(v) == 1 else "s")


def _days(v: float) -> str:
    return _n(v, "day")


def _date(filed_at: Any, days_ago: float) -> str:
    return (pd.Timestamp(filed_at).to_pydatetime() - timedelta(days=float(days_ago))).date().isoformat()


#: what a sentence reads: a row's declaration fields and features by name (a dict, or `_Columns.row`)
Row = Mapping[str, Any]


def _party(kind: str, what: str) -> Callable[[Row], str]:
    def sentence(r: Row) -> str:
        decl, tenure = _num(r.get(f"{kind}_prior_decl")), _num(r.get(f"{kind}_tenure_days"))
        insp, hits = _num(r.get(f"{kind}_prior_insp")), _num(r.get(f"{kind}_prior_hits"))
        since = _num(r.get(f"{kind}_days_since_hit"))
        if math.isnan(decl):
            return f"{what} not declared"
        if decl == 0 or math.isnan(tenure):
            return f"{what} never seen before"
        text = (
            f"{what} first seen {_days(tenure)} ago, {decl:,.0f} earlier declarations, {insp:,.0f} inspected"
        )
        if hits > 0:
            text += f", {hits:,.0f} with a seizure (last on {_date(r['filed_at'], since)})"
        return text

    return sentence


def _linked(kind: str, what: str) -> Callable[[Row], str]:
    def sentence(r: Row) -> str:
        decl, hits = _num(r.get(f"{kind}_prior_decl")), _num(r.get(f"{kind}_prior_hits"))
        since = _num(r.get(f"{kind}_days_since_hit"))
        if math.isnan(decl):
            return f"no {what} declared"
        if hits > 0:
            return f"linked by {what} to a consignee with a seizure on {_date(r['filed_at'], since)}"
        if decl == 0:
            return f"{what} never used before"
        return f"{what} used on {_n(decl, 'earlier declaration')}, none with a seizure"

    return sentence


_ADDRESS_LINK = _linked("address", "delivery address")
_CONSIGNEE_PARTY = _party("consignee", "consignee")
_CONSIGNOR_PARTY = _party("consignor", "consignor")


def _value(r: Row) -> str:
    value, kg = _num(r.get("declared_value_usd")), _num(r.get("gross_weight_kg"))
    if not math.isfinite(value):  # the value is optional: say it is missing, never "nan USD"
        text = f"no value declared ({kg:,.1f} kg)"
    else:
        text = f"{value / kg if kg > 0 else float('nan'):,.2f} USD/kg declared ({value:,.0f} USD for {kg:,.1f} kg)"
    peer = _num(r.get("log_value_per_kg_peer"))  # log of the training window's median for the peers
    if math.isfinite(peer):
        hs, origin = _txt(r.get("hs_code"), "(none)"), _txt(r.get("origin_country"))
        text += f" vs {np.exp(peer):,.2f} USD/kg median for HS {hs} from {origin}"
    return text


def _packaging(r: Row) -> str:
    kg, packages = _num(r.get("gross_weight_kg")), _num(r.get("n_packages"))
    if not math.isfinite(packages):  # the count is optional
        return f"{kg:,.1f} kg, number of packages not declared"
    return (f"{kg:,.1f} kg in {packages:,.0f} {_txt(r.get('package_type'), 'package')} "
            f"({_num(r.get('weight_per_package_kg')):,.2f} kg each)")  # fmt: skip


def _goods(r: Row) -> str:
    hs = r.get("hs_code")
    category = _txt(r.get("item_category"), "")
    head = f"HS {hs}" if _txt(hs, "") else "no tariff number declared"
    return head + (f", declared as {_code(category)}" if category else "")


def _description(r: Row) -> str:
    desc = _txt(r.get("goods_desc"), "")
    shown = f'goods described as "{desc[:60]}"' if desc else "no goods description"
    score = _num(r.get("desc_text_score"))  # log-odds of the text model, balanced classes: > 0 leans to hits
    if not math.isfinite(score):
        return shown
    return shown + (": wording close to past seizures" if score > 0 else ": wording common in cleared trade")


def _timing(r: Row) -> str:
    lead, hour, amends = _num(r.get("lead_days")), _num(r.get("filed_hour")), _num(r.get("amend_count"))
    text = f"filed {_days(lead)} before arrival" if math.isfinite(lead) else "arrival date unknown"
    text += f", at {hour:02.0f}:00 UTC" if math.isfinite(hour) else ""
    return text + (f", amended {amends:,.0f} times" if amends > 0 else "")


def _route(r: Row) -> str:
    transit = _txt(r.get("transit_locs"), "")
    text = f"from {_txt(r.get('origin_country'))} (loaded at {_txt(r.get('load_loc'), '?')})"
    text += (
        " via " + transit.replace(";", ", ") if transit else ""
    ) + f" to {_txt(r.get('discharge_loc'), '?')}"
    rates = [_num(r.get(f"{k}_hit_rate")) for k in ("origin", "load", "transit", "discharge")]
    rates = [x for x in rates if math.isfinite(x)]
    return text + (f" (highest past hit rate on its legs {max(rates):.1%})" if rates else "")


def _address(r: Row) -> str:
    senders = _num(r.get("address_new_senders_30d"))
    base = _ADDRESS_LINK(r)
    if math.isfinite(senders) and senders > 0:
        return f"addressee received parcels from {_n(senders, 'different sender')} in 30 days; " + base
    return base


def _code(v: Any) -> str:
    """A contract code as words: SMALL_PACKET -> small packet."""
    return str(v).replace("_", " ").lower()


def _transport(r: Row) -> str:
    bits = [_txt(r.get("mode"))]
    if _txt(r.get("freight_payment"), ""):
        bits.append(
            "freight paid in cash"
            if r["freight_payment"] == "A"
            else f"freight payment code {r['freight_payment']}"
        )
    for col, name in (("container_type", "container"), ("mail_class", "mail class"), ("cn_form", "customs form"),
                      ("express_operator", "operator")):  # fmt: skip
        if _txt(r.get(col), ""):
            bits.append(f"{name} {_code(r[col]) if col == 'mail_class' else r[col]}")
    for flag, name in (("is_reefer", "reefer"), ("seal_discrepancy", "seal discrepancy"),
                       ("simplified_clearance", "simplified clearance")):  # fmt: skip
        if r.get(flag) is True or _num(r.get(flag)) == 1:
            bits.append(name)
    return ", ".join(bits)


def _consignee(r: Row) -> str:
    text = _CONSIGNEE_PARTY(r)
    if r.get("consignee_taxid_present") is False or _num(r.get("consignee_taxid_present")) == 0:
        text += ", no tax id"
    return text


def _consignor(r: Row) -> str:
    text = _CONSIGNOR_PARTY(r)
    age = _num(r.get("shipper_account_age_days"))
    return text + (f", shipper account {_days(age)} old" if math.isfinite(age) else "")


SENTENCES: dict[str, Callable[[Row], str]] = {
    "value": _value,
    "packaging": _packaging,
    "goods": _goods,
    "description": _description,
    "timing": _timing,
    "route": _route,
    "consignee": _consignee,
    "consignor": _consignor,
    "forwarder": _party("forwarder", "forwarder"),
    "declarant": _party("declarant", "declarant"),
    "phone": _linked("phone", "phone"),
    "email": _linked("email", "e-mail"),
    "address": _address,
    "transport": _transport,
    "other": lambda r: "other declared fields",
}


#: the long table of every reason group of every explained row
EXPLANATION_COLUMNS = ("declaration_id", "group", "label", "contribution", "sentence")


@dataclass
class Explanations:
    reasons: pd.DataFrame  # index as the explained rows: reason_i, reason_i_feature, reason_i_contribution
    groups: pd.DataFrame  # long: declaration_id, group, label, contribution, sentence (every group)
    expected_value: float


def explain(booster: Any, annotated: pd.DataFrame, matrix: pd.DataFrame, groups: Mapping[str, str],
            n_reasons: int = 3, num_threads: int = 1, every_group: bool = True) -> Explanations:  # fmt: skip
    """Top `n_reasons` positive reason groups per row, as sentences with the row's values (and, with
    `every_group`, the long table of every group of every row, for reports). `groups`: each feature's
    reason group, as the feature transformers declare them (`TargetingModel.feature_groups`).

    TreeSHAP runs in LightGBM's threads (outside the GIL) while this thread reads the rows' values and,
    with `every_group`, writes every group's sentence: those do not depend on the contributions."""
    names = list(matrix.columns)
    present = {groups[n] for n in names}
    group_names = [g for g in REASON_GROUPS if g in present]
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(contributions, booster, matrix, num_threads)
        # the sentences read declaration fields and features, never the raw as-of counts (`h_*`)
        columns = _Columns(annotated[[c for c in annotated.columns if not str(c).startswith("h_")]], matrix)
        texts = [columns.sentences(SENTENCES[g]) for g in group_names] if every_group else None
        contrib = job.result()
    values = grouped(contrib, names, groups).reindex(columns=group_names).to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")
    top_feature = _top_feature_per_group(contrib[:, : len(names)], names, groups)
    rows = np.arange(len(values))
    reasons: dict[str, Any] = {}
    for k in range(n_reasons):  # reason k exists when the k-th largest group contribution is positive
        j = order[:, k] if k < order.shape[1] else np.zeros(len(values), int)
        v = values[rows, j] if k < order.shape[1] else np.zeros(len(values))
        shown = v > 0
        reasons[f"reason_{k + 1}"] = [
            (texts[j[i]][i] if texts is not None else SENTENCES[group_names[j[i]]](columns.row(i)))
            if shown[i] else None
            for i in rows
        ]  # fmt: skip
        reasons[f"reason_{k + 1}_feature"] = [
            str(top_feature[group_names[j[i]]][i]) if shown[i] else None for i in rows
        ]
        reasons[f"reason_{k + 1}_contribution"] = np.where(shown, v, np.nan)
    ids = annotated["declaration_id"].astype(str).to_numpy()
    if texts is not None:
        n_groups = len(group_names)
        groups = pd.DataFrame({
            "declaration_id": np.repeat(ids, n_groups), "group": np.tile(np.asarray(group_names, object), len(ids)),
            "label": np.tile(np.asarray([REASON_GROUPS[g] for g in group_names], object), len(ids)),
            "contribution": values.astype(float).ravel(),
            "sentence": np.asarray(texts, dtype=object).reshape(n_groups, len(ids)).T.ravel(),
        })  # fmt: skip
    else:
        groups = pd.DataFrame(columns=list(EXPLANATION_COLUMNS))
    expected = float(contrib[0, -1]) if len(contrib) else float("nan")
    return Explanations(pd.DataFrame(reasons, index=annotated.index), groups, expected)


class _Columns:
    """The explained rows' values as Python lists per column, read by row without building a dict per
    row (features win over declaration fields of the same name, as in `{**fields, **features}`)."""

    def __init__(self, fields: pd.DataFrame, features: pd.DataFrame) -> None:
        self.values: dict[str, list[Any]] = {str(c): fields[c].tolist() for c in fields.columns}
        self.values |= {str(c): features[c].tolist() for c in features.columns}
        self.n = len(fields)

    def row(self, i: int) -> _Row:
        return _Row(self.values, i)

    def sentences(self, sentence: Callable[[Row], str]) -> list[str]:
        return [sentence(_Row(self.values, i)) for i in range(self.n)]


class _Row(Mapping[str, Any]):
    """One row of `_Columns`, read like the dict of its values."""

    __slots__ = ("_values", "_i")

    def __init__(self, values: dict[str, list[Any]], i: int) -> None:
        self._values, self._i = values, i

    def __getitem__(self, key: str) -> Any:
        return self._values[key][self._i]

    def get(self, key: str, default: Any = None) -> Any:
        column = self._values.get(key)
        return default if column is None else column[self._i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _top_feature_per_group(contrib: np.ndarray, names: list[str],
                           groups: Mapping[str, str]) -> dict[str, np.ndarray]:  # fmt: skip
    """Per group and row, the feature that pushed the score up most (for `reason_k_feature`)."""
    of_feature = np.array([groups[n] for n in names])
    best: dict[str, np.ndarray] = {}
    for g in np.unique(of_feature):
        idx = np.flatnonzero(of_feature == g)
        best[str(g)] = np.asarray(names, dtype=object)[idx[np.argmax(contrib[:, idx], axis=1)]]
    return best
