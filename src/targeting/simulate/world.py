"""The simulated customs world: daily declarations, selective inspections, feedback (§4.7-4.9).

`World.step(day, policy)` generates one day, selects and examines inspections (optionally with a
project model as `policy`: any callable that scores the day's declarations, whose top rows take the
model's share of each mode's budget, or a `Chooser` that makes the selection within that share itself,
e.g. the daily job with its exploration), and updates the state a seizure changes (watch-lists,
networks). `simulate(config, out)` runs every day with the legacy policy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from targeting.contract.schema import DECLARATIONS, GROUND_TRUTH, INSPECTIONS, Table
from targeting.simulate import trade
from targeting.simulate.catalogue import VAGUE_DESCRIPTIONS
from targeting.simulate.config import MODES, SimConfig
from targeting.simulate.entities import build_registry
from targeting.simulate.geography import AIRLINE_CODES, HIGH_RISK_ORIGINS, SEA_HUBS
from targeting.simulate.patterns import Underworld, lookalike_draw


@dataclass
class Choice:
    """A chooser's selection, by row of the day: `reason` MODEL or RANDOM (explored) or None, and each
    row's probability of having been selected by it (1 for its top rows)."""

    reason: np.ndarray
    propensity: np.ndarray


@runtime_checkable
class Chooser(Protocol):
    def choose(self, declarations: pd.DataFrame, capacity: dict[str, int]) -> Choice:
        """Select up to `capacity[mode]` declarations of each mode (the model's share of the budget)."""
        ...


Policy = Callable[[pd.DataFrame], np.ndarray] | Chooser

#: P(detect | concealment, exam) (§4.8)
DETECTION = {
    "RIP_ON_DOOR": (0.55, 0.60, 0.85, 0.95, 0.0),
    "IN_COVER_LOAD": (0.45, 0.50, 0.35, 0.90, 0.0),
    "REEFER_MACHINERY": (0.35, 0.40, 0.15, 0.70, 0.0),
    "STRUCTURAL": (0.35, 0.40, 0.15, 0.70, 0.0),
    "IN_GOODS_ITEM": (0.60, 0.50, 0.60, 0.90, 0.0),
    "LIQUID_DISSOLVED": (0.15, 0.20, 0.20, 0.40, 0.95),
    "IMPREGNATED": (0.05, 0.15, 0.05, 0.25, 0.90),
    "LOOSE_IN_PARCEL": (0.50, 0.60, 0.80, 0.90, 0.0),
    "MISDECLARED_CHEMICAL": (0.20, 0.10, 0.50, 0.60, 0.95),
}
NII, CANINE, PARTIAL, FULL, LAB = range(5)


def examination(rng: np.random.Generator, reason: str, mode: str, det: tuple[float, ...] | None, smuggling: bool,
                violation: bool) -> tuple[list[str], bool, bool]:  # fmt: skip
    """How a selected declaration is examined (the exams, in order) and what they find: drugs (a hit), or
    another violation. `det`: the detection probabilities of its concealment (None for legitimate goods)."""
    if reason == "INTEL_TIP":
        exams = ["PHYSICAL_FULL"]
        p = max(det[FULL], det[LAB]) if det else 0.0
        if det and det[LAB] > 0:
            exams.append("LAB")
    elif reason == "MANDATORY":
        exams = ["NII_XRAY", "PHYSICAL_PARTIAL"]
        p = 0.85 if det else 0.0
    elif mode in ("SEA", "AIR"):
        if rng.random() < 0.8:
            alarm = rng.random() < (det[NII] if det else (0.03 if mode == "SEA" else 0.01))
            exams = ["NII_XRAY"] + (["PHYSICAL_FULL"] if alarm else [])
            p = (det[FULL] if det else 0.0) if alarm else 0.0
        else:
            exams = ["PHYSICAL_PARTIAL"]
            p = det[PARTIAL] if det else 0.0
    else:
        first = "CANINE" if rng.random() < 0.15 else "NII_XRAY"
        exams = [first, "PHYSICAL_PARTIAL"]
        p = max(det[PARTIAL], det[CANINE if first == "CANINE" else NII]) if det else 0.0
    hit = smuggling and rng.random() < p
    physical = any(e.startswith("PHYSICAL") for e in exams)
    other = (not hit) and violation and physical and rng.random() < 0.7
    return exams, hit, other
WATCHLIST_HS_PREFIXES = (
    "0803",
    "0804",
    "0902",
    "2101",
    "2915",
    "2916",
    "2932",
    "3824",
    "2933",
    "3304",
    "2106",
)
_HUBS = {h for hubs in SEA_HUBS.values() for h in hubs} | {"PAPTY", "MXMEX", "QADOH", "AEDXB", "NLAMS"}
_HUB_PATTERN = "|".join(sorted(_HUBS))
#: the legacy rule set's vocabulary, fixed on day 0 (the D3 rotation makes it decay)
RULE_KEYWORDS = ("research chemical", "bath salt", "plant food", "reagent", "powder", "crystal")
RULE_KEYWORD_PATTERN = "|".join(RULE_KEYWORDS)
RULE_VAGUE = (frozenset(VAGUE_DESCRIPTIONS) - {"documents"}) | {
    "sample",
    "chemical raw material",
    "industrial chemical",
}
POSTAL_RISK_ORIGINS = ("NL", "BE", "DE", "PL", "ES", "IN", "CA")
#: parties and contact tokens that go on the watch-list after a seizure (and that the rule checks)
WATCHED_COLUMNS = (
    "consignee_id",
    "consignor_id",
    "consignee_phone_hash",
    "consignee_email_hash",
    "consignee_addr_hash",
)


@dataclass
class DayResult:
    declarations: pd.DataFrame  # contract columns
    inspections: pd.DataFrame
    ground_truth: pd.DataFrame  # hidden columns (+ generator counters, legacy rule score)


class World:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        seq = np.random.SeedSequence(cfg.seed)
        s_reg, s_trade, s_crime, s_insp = seq.spawn(4)
        self.rng_trade = np.random.default_rng(s_trade)
        self.rng_insp = np.random.default_rng(s_insp)
        self.registry = build_registry(cfg, np.random.default_rng(s_reg))
        self.underworld = Underworld(cfg, self.registry, np.random.default_rng(s_crime))
        self.start = pd.Timestamp(cfg.start_date, tz="UTC")
        self.decl_count: dict[str, int] = {}  # consignee id -> declarations filed so far
        self.sender_count: dict[str, int] = {}  # consignor id -> declarations filed so far
        self.watch: dict[str, int] = {}  # party id / token -> day it is on the watch-list from
        self._carry: dict[str, np.ndarray] = {}  # mode -> fractional inspections owed per component
        self._seq = 0

    # ---- one day --------------------------------------------------------------------------------
    def volume(self, mode: str, day: int) -> int:
        cfg = self.cfg
        date = self.start + pd.Timedelta(days=day)
        v = cfg.volumes[mode]
        if date.day_of_week == 6:
            v *= cfg.sunday_factor[mode]
        if mode in ("EXPRESS", "POST"):
            doy = date.day_of_year
            if 311 <= doy <= 318 or 326 <= doy <= 333:  # 11.11 and Black Friday weeks
                v *= cfg.peak_factor
            v *= 1 + cfg.ecommerce_growth * day / 365
        if date.quarter in (2, 4):
            v *= 1.05
        return int(self.rng_trade.poisson(max(v, 0)))

    def step(self, day: int, policy: Policy | None = None) -> DayResult:
        """Generate, select, examine and learn for one day."""
        # internal frames keep Python strings; the contract's string columns are typed once at the end
        # (pandas 3 warns that the option goes away in pandas 4; the pin keeps pandas 3)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*future.infer_string.*")
            with pd.option_context("future.infer_string", False):
                res = self._step(day, policy)
        return DayResult(_strings(res.declarations, DECLARATIONS), _strings(res.inspections, INSPECTIONS),
                         _strings(res.ground_truth, GROUND_TRUTH))  # fmt: skip

    def _step(self, day: int, policy: Policy | None) -> DayResult:
        cfg, rng = self.cfg, self.rng_trade
        date_doy = (self.start + pd.Timedelta(days=day)).day_of_year
        cn_factor = 1 - cfg.lunar_new_year_dip if 0 <= date_doy - cfg.lunar_new_year_day < 7 else 1.0
        parts = []
        for m in MODES:
            n = self.volume(m, day)
            n_alike = int(rng.binomial(n, cfg.lookalike_share[m]))
            parts.append(trade.generate(rng, cfg, self.registry, day, m, n - n_alike, cn_factor=cn_factor))
            lines, origins = lookalike_draw(rng, m, n_alike)
            if len(lines):
                parts.append(
                    trade.generate(rng, cfg, self.registry, day, m, len(lines), lines=lines, origins=origins)
                )
        crime = self.underworld.attempts(day)
        if len(crime):
            parts.append(crime)
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.sort_values("_filed_s", kind="stable").reset_index(drop=True)
        decl = self._finalise(frame, day)
        counters = self._counters(decl, day)
        rule = self._rule_score(decl, frame, counters, day)
        insp, seized = self._inspect(decl, frame, rule, day, policy)
        self._learn(decl, frame, insp, seized, day)
        truth = self._truth(decl, frame, counters, rule)
        return DayResult(decl, insp, truth)

    # ---- internal -> contract -------------------------------------------------------------------
    def _finalise(self, f: pd.DataFrame, day: int) -> pd.DataFrame:
        n = len(f)
        ids = np.arange(self._seq, self._seq + n)
        self._seq += n
        filed = self.start + pd.to_timedelta(f["_filed_s"].to_numpy(), unit="s")
        kind = f["_consignee_kind"].to_numpy()
        cons = f["_consignee"].to_numpy()
        x_cons = f["_consignee_x"].to_numpy() if "_consignee_x" in f else np.full(n, None)
        person_flag = f["_person"].fillna(False).to_numpy(dtype=bool) if "_person" in f else np.zeros(n, bool)
        consignee = np.where(
            kind == "P", _fmt("PER", cons, 7), np.where(kind == "O", _fmt("IMP", cons, 6), x_cons)
        )
        ctype = np.where(
            kind == "P", "PERSON", np.where(kind == "O", "ORG", np.where(person_flag, "PERSON", "ORG"))
        )
        ckind = f["_consignor_kind"].to_numpy()
        consignor = np.where(ckind == "E", _fmt("EXP", f["_consignor"].to_numpy(), 6),
                             np.where(ckind == "S", _fmt("SND", f["_consignor"].to_numpy(), 8),
                                      f["_consignor_x"].to_numpy() if "_consignor_x" in f else None))  # fmt: skip
        cperson = (
            f["_consignor_person"].fillna(False).to_numpy(dtype=bool)
            if "_consignor_person" in f
            else np.zeros(n, bool)
        )
        consignor_type = np.where((ckind == "S") | cperson, "PERSON", "ORG")
        line = f["_line"].to_numpy()
        hs_missing = f["_hs_missing"].fillna(False).to_numpy(dtype=bool)
        hs = np.where((line >= 0) & ~hs_missing, trade.LINE_HS[np.maximum(line, 0)], None)
        mode = f["mode"].to_numpy()
        fwd = f["_forwarder"].to_numpy()
        dcl = f["_declarant"].to_numpy()
        out = pd.DataFrame(
            {
                "declaration_id": _fmt("D", ids, 9),
                "mode": mode,
                "filed_at": filed.astype("datetime64[us, UTC]"),
                "arrival_date": (filed.normalize() + pd.to_timedelta(f["_lead_days"].to_numpy(), unit="D")).date,
                "amend_count": f["amend_count"].to_numpy(),
                "transport_doc_no": _fmt("TD", ids, 10),
                "master_doc_no": np.where(fwd >= 0, _fmt("M", fwd * 1000 + day, 9), None),
                "carrier_id": f["_carrier"].to_numpy(),
                "origin_country": f["origin_country"].to_numpy(),
                "goods_origin_country": f["goods_origin_country"].to_numpy(),
                "load_loc": f["load_loc"].to_numpy(),
                "transit_locs": f["transit_locs"].to_numpy(),
                "discharge_loc": f["discharge_loc"].to_numpy(),
                "consignor_id": consignor,
                "consignor_type": consignor_type,
                "consignor_country": f["origin_country"].to_numpy(),
                "consignee_id": consignee,
                "consignee_type": ctype,
                "consignee_addr_type": f["consignee_addr_type"].to_numpy(),
                "consignee_addr_hash": _hash(f["_addr_tok"].to_numpy()),
                "consignee_phone_hash": _hash(f["_phone_tok"].to_numpy()),
                "consignee_email_hash": _hash(f["_email_tok"].to_numpy()),
                "consignee_taxid_present": f["consignee_taxid_present"].to_numpy(dtype=bool),
                "forwarder_id": np.where(fwd >= 0, _fmt("FWD", fwd, 4), None),
                "declarant_id": np.where(dcl >= 0, _fmt("DCL", dcl, 4), None),
                "notify_party_id": np.where(f["_notify_is_forwarder"].fillna(False).to_numpy(dtype=bool) & (fwd >= 0),
                                            _fmt("FWD", fwd, 4), None) if "_notify_is_forwarder" in f else None,
                "hs_code": hs,
                "goods_desc": f["goods_desc"].to_numpy(),
                "n_packages": f["n_packages"].to_numpy(),
                "package_type": f["package_type"].to_numpy(),
                "gross_weight_kg": f["gross_weight_kg"].to_numpy(dtype=float),
                "declared_value_usd": f["declared_value_usd"].to_numpy(dtype=float),
                "freight_payment": f["freight_payment"].to_numpy(),
                "item_category": f["item_category"].to_numpy(),
                "is_transit_cargo": f["is_transit_cargo"].fillna(False).to_numpy(dtype=bool),
            }
        )  # fmt: skip
        sea, air, post, exp = (mode == m for m in ("SEA", "AIR", "POST", "EXPRESS"))
        out["container_type"] = np.where(sea, f.get("container_type"), None)
        out["is_reefer"] = pd.array(np.where(sea, f.get("is_reefer", False), None), dtype="boolean")
        out["fcl_lcl"] = np.where(sea, f.get("fcl_lcl"), None)
        vessel = f["_vessel"].fillna(0).to_numpy(dtype=np.int64) if "_vessel" in f else np.zeros(n, np.int64)
        out["vessel_imo"] = np.where(sea, _fmt("", 9_100_000 + vessel, 7), None)
        out["seal_discrepancy"] = pd.array(
            np.where(sea, f.get("seal_discrepancy", False), None), dtype="boolean"
        )
        flight = f["_flight"].fillna(0).to_numpy(dtype=np.int64) if "_flight" in f else np.zeros(n, np.int64)
        codes = np.asarray(AIRLINE_CODES)[flight % len(AIRLINE_CODES)]
        out["flight_no"] = np.where(
            air, pd.Series(codes).str.cat(pd.Series(100 + flight).astype(str)).to_numpy(), None
        )
        age = (
            f["shipper_account_age_days"]
            if "shipper_account_age_days" in f
            else pd.Series(np.nan, index=f.index)
        )
        out["shipper_account_age_days"] = pd.array(np.where(air, age, np.nan), dtype="float64").astype(
            "Int64"
        )
        out["known_consignor"] = pd.array(
            np.where(air, f.get("known_consignor", False), None), dtype="boolean"
        )
        out["mail_class"] = np.where(post, f.get("mail_class"), None)
        out["cn_form"] = np.where(post, f.get("cn_form"), None)
        out["express_operator"] = np.where(exp, f.get("express_operator"), None)
        out["simplified_clearance"] = pd.array(
            np.where(exp, f.get("simplified_clearance", False), None), dtype="boolean"
        )
        return _to_contract(out)

    # ---- generator counters and the legacy rule score ------------------------------------------
    def _counters(self, decl: pd.DataFrame, day: int) -> pd.DataFrame:
        """Point-in-time per consignee and consignor: declarations filed before this row (same day included)."""
        return pd.DataFrame({"consignee_prior_decl": self._prior(decl["consignee_id"], self.decl_count),
                             "consignor_prior_decl": self._prior(decl["consignor_id"], self.sender_count)})  # fmt: skip

    @staticmethod
    def _prior(ids: pd.Series, counts: dict[str, int]) -> np.ndarray:
        keys = ids.tolist()
        before = np.fromiter((counts.get(k, 0) for k in keys), dtype=np.int64, count=len(keys))
        prior = before + ids.groupby(ids, sort=False).cumcount().to_numpy()
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        return prior

    def _on_watch(self, decl: pd.DataFrame, day: int) -> np.ndarray:
        """Rows naming a party or token that is on the watch-list by `day`."""
        watch = np.zeros(len(decl), bool)
        active = [key for key, since in self.watch.items() if since <= day]
        if active:
            for col in WATCHED_COLUMNS:
                watch |= decl[col].isin(active).to_numpy(dtype=bool)
        return watch

    def _rule_score(
        self, decl: pd.DataFrame, f: pd.DataFrame, counters: pd.DataFrame, day: int
    ) -> np.ndarray:
        cfg = self.cfg
        hs = decl["hs_code"].fillna("")
        unit = (decl["declared_value_usd"] / decl["gross_weight_kg"]).to_numpy()
        line = np.maximum(f["_line"].to_numpy(), 0)
        p10 = trade.LINE_USD[line] * np.exp(-1.2816 * np.hypot(trade.UNIT_SIGMA, trade.VALUE_SIGMA))
        hub = decl["transit_locs"].str.contains(_HUB_PATTERN, regex=True).fillna(False).to_numpy(dtype=bool)
        watch = self._on_watch(decl, day)
        commercial_qty = (decl["consignee_type"] == "PERSON").to_numpy() & (
            decl["gross_weight_kg"] > 30
        ).to_numpy()
        desc = decl["goods_desc"].str.lower()
        vague = desc.isin(RULE_VAGUE).to_numpy()
        keyword = desc.str.contains(RULE_KEYWORD_PATTERN, regex=True).fillna(False).to_numpy(dtype=bool)
        postal = decl["mode"].isin(["POST", "EXPRESS"]).to_numpy()
        no_hs = decl["hs_code"].isna().to_numpy() & (decl["item_category"] != "DOCUMENTS").to_numpy()
        chemical = hs.str[:2].isin(["28", "29", "38"]).to_numpy()
        gift_c2c = (decl["item_category"] == "GIFT").to_numpy() & (
            decl["consignor_type"] == "PERSON"
        ).to_numpy()
        score = (
            2.0 * decl["origin_country"].isin(HIGH_RISK_ORIGINS).to_numpy()
            + 1.0 * hub
            + 1.5 * (counters["consignee_prior_decl"].to_numpy() == 0)
            + 1.5 * (counters["consignor_prior_decl"].to_numpy() < 3)
            + 1.0 * hs.str[:4].isin(WATCHLIST_HS_PREFIXES).to_numpy()
            + 1.0
            * ((unit < p10) & (f["_line"].to_numpy() >= 0) & (decl["mode"].isin(["SEA", "AIR"]).to_numpy()))
            + 1.0 * vague
            + 1.0 * commercial_qty
            + 3.0 * watch
            # the postal targeting desk's rules (keyword list written before the year starts: D3 decays it)
            + postal
            * (
                2.0 * keyword
                + 1.5 * no_hs
                + 1.5 * chemical
                + 0.5 * gift_c2c
                + 1.0 * decl["origin_country"].isin(POSTAL_RISK_ORIGINS).to_numpy()
                + 2.0 * _postal_profiles(decl, hs)
            )
        )
        if cfg.drift_day(cfg.d1_start) <= day < cfg.drift_day(cfg.d1_end):  # D1 port crackdown
            latam_reefer = (decl["is_reefer"].fillna(False).to_numpy(dtype=bool)
                            & decl["origin_country"].isin(["EC", "CO", "CR", "PA", "PE", "CL", "MX", "GT"]).to_numpy()
                            & (decl["discharge_loc"] == "KRPUS").to_numpy())  # fmt: skip
            score = np.where(latam_reefer, score * 2 + 2, score)
        return score + self.rng_insp.normal(0, cfg.rule_noise_sd, len(decl))

    # ---- selection and examination ------------------------------------------------------------
    def _inspect(self, decl, f, rule, day, policy):
        cfg, rng = self.cfg, self.rng_insp
        n = len(decl)
        smuggling = (
            f["_smuggling"].fillna(False).to_numpy(dtype=bool) if "_smuggling" in f else np.zeros(n, bool)
        )
        reason = np.full(n, None, dtype=object)
        propensity = np.zeros(n)
        mode = decl["mode"].to_numpy()
        # INTEL_TIP (outside the budget): tips on true attempts, linked cells, controlled deliveries
        tip_p = np.array([cfg.intel_tip_prob[m] for m in mode])
        if "_linked" in f:
            tip_p = np.where(
                f["_linked"].fillna(False).to_numpy(dtype=bool),
                np.maximum(tip_p, cfg.intel_tip_linked_prob),
                tip_p,
            )
        tipped = smuggling & (rng.random(n) < tip_p)
        if "_tipped" in f:
            tipped |= f["_tipped"].fillna(False).to_numpy(dtype=bool)
        reason[tipped] = "INTEL_TIP"
        propensity[tipped] = 1.0
        with_model = policy is not None and cfg.share_model > 0
        budgets = {}  # per mode with rows left after the tips, in mode order (the carry-over is kept per mode)
        for m in MODES:
            if ((mode == m) & (reason == None)).any():  # noqa: E711 - elementwise
                budgets[m] = self._budget(m, int((mode == m).sum()), with_model)
        model_scores, choice = None, None
        if with_model and isinstance(policy, Chooser):
            choice = policy.choose(decl, {m: k[3] for m, k in budgets.items()})
        elif with_model:
            model_scores = np.asarray(policy(decl), dtype=float)  # type: ignore[operator]
        for m in MODES:
            idx = np.flatnonzero((mode == m) & (reason == None))  # noqa: E711 - elementwise
            if idx.size == 0:
                continue
            k_rule, k_random, k_officer, k_model = budgets[m]
            p_random = k_random / idx.size
            pick = rng.choice(idx, min(k_random, idx.size), replace=False)
            reason[pick] = "RANDOM"
            rest = idx[reason[idx] == None]  # noqa: E711
            if choice is not None and rest.size:
                chosen = rest[choice.reason[rest] != None]  # noqa: E711
                reason[chosen] = choice.reason[chosen]
                propensity[rest] = np.maximum(propensity[rest], choice.propensity[rest])
                rest = idx[reason[idx] == None]  # noqa: E711
            elif k_model and rest.size:
                top = rest[np.argsort(-model_scores[rest], kind="stable")[:k_model]]
                reason[top] = "MODEL"
                propensity[top] = 1.0
                rest = idx[reason[idx] == None]  # noqa: E711
            top = rest[np.argsort(-rule[rest], kind="stable")[:k_rule]]
            reason[top] = "RULE"
            propensity[top] = 1.0
            rest = idx[reason[idx] == None]  # noqa: E711
            if k_officer and rest.size:
                intuition = np.where(
                    smuggling[rest], rng.normal(1.0, 1.0, rest.size), rng.normal(0, 1.0, rest.size)
                )
                w = np.exp(cfg.officer_temperature * intuition)
                p_off = np.minimum(1.0, k_officer * w / w.sum())
                chosen = rest[rng.choice(rest.size, min(k_officer, rest.size), replace=False, p=w / w.sum())]
                reason[chosen] = "OFFICER"
                propensity[rest] = np.maximum(propensity[rest], p_off)
            sel = idx[(reason[idx] != None)]  # noqa: E711
            propensity[idx] = 1 - (1 - p_random) * (1 - propensity[idx])
            propensity[sel] = np.maximum(propensity[sel], p_random)
        # MANDATORY: X-ray screening of a share of POST (and EXPRESS) items; an alarm opens the item
        screened = (reason == None) & (  # noqa: E711
            ((mode == "POST") & (rng.random(n) < cfg.post_xray_share))
            | ((mode == "EXPRESS") & (rng.random(n) < cfg.express_xray_share))
        )
        conceal = f["_concealment"].to_numpy() if "_concealment" in f else np.full(n, None)
        p_nii = np.array([DETECTION[c][NII] if c is not None and c == c else 0.0 for c in conceal])
        alarm = screened & np.where(smuggling, rng.random(n) < p_nii, rng.random(n) < 0.01)
        reason[alarm] = "MANDATORY"
        propensity[alarm] = 1.0
        return self._examine(decl, f, reason, propensity, smuggling, conceal, day)

    def _budget(self, mode: str, n: int, with_model: bool) -> tuple[int, int, int, int]:
        """Today's inspections per component (RULE, RANDOM, OFFICER, MODEL) for `n` declarations.

        Fractional budgets are carried over to the next day, so a component whose daily share is
        below one inspection (RANDOM in a small world) still gets its share over a week.
        """
        cfg = self.cfg
        shares = np.array(
            [cfg.share_rule, cfg.share_random, cfg.share_officer, cfg.share_model if with_model else 0.0]
        )
        due = cfg.inspection_rate[mode] * n * shares / shares.sum() + self._carry.get(mode, np.zeros(4))
        k = np.floor(due + 1e-9)
        self._carry[mode] = due - k
        return tuple(int(x) for x in k)  # type: ignore[return-value]

    def _examine(self, decl, f, reason, propensity, smuggling, conceal, day):
        cfg, rng = self.cfg, self.rng_insp
        sel = np.flatnonzero(reason != None)  # noqa: E711
        mode = decl["mode"].to_numpy()
        filed = decl["filed_at"]
        lead = f["_lead_days"].to_numpy()
        violation = f["_violation"].to_numpy(dtype=bool)
        rows = []
        found = np.zeros(len(decl), bool)
        for i in sel:
            r, m = reason[i], mode[i]
            det = DETECTION.get(conceal[i]) if smuggling[i] else None
            exam_at = filed.iloc[i] + pd.Timedelta(days=int(lead[i]), hours=int(rng.integers(1, 20)))
            if m == "POST" and r not in ("INTEL_TIP", "MANDATORY") and rng.random() > cfg.post_presented:
                continue  # targeted mail not presented for inspection
            exams, hit, other = examination(rng, r, m, det, bool(smuggling[i]), bool(violation[i]))
            for j, exam in enumerate(exams):
                last = j == len(exams) - 1
                result = "NO_FINDING"
                if last and hit:
                    result = "PRECURSOR" if f["_drug_class"].iloc[i] == "PRECURSOR" else "DRUG"
                elif last and other:
                    result = "OTHER_VIOLATION"
                rows.append((i, r, propensity[i], exam, exam_at + pd.Timedelta(hours=3 * j), result))
            found[i] = hit
        insp = pd.DataFrame(
            rows,
            columns=["_row", "selection_reason", "selection_propensity", "exam_type", "exam_at", "result"],
        )
        insp["declaration_id"] = (
            decl["declaration_id"].to_numpy()[insp["_row"].to_numpy(dtype=np.int64)] if len(insp) else []
        )
        hit_rows = insp["result"].isin(["DRUG", "PRECURSOR"]).to_numpy()
        r_idx = insp["_row"].to_numpy(dtype=np.int64)
        insp["drug_class"] = (
            np.where(hit_rows, f["_drug_class"].to_numpy()[r_idx] if "_drug_class" in f else None, None)
            if len(insp)
            else []
        )
        qty = (f["_true_qty"].to_numpy(dtype=float)[r_idx] * f["_positive_fraction"].to_numpy(dtype=float)[r_idx]
               * rng.uniform(0.9, 1.0, len(insp))) if ("_true_qty" in f and len(insp)) else np.zeros(len(insp))  # fmt: skip
        insp["quantity_kg"] = np.where(hit_rows, np.round(qty, 4), np.nan)
        insp["concealment"] = np.where(hit_rows, conceal[r_idx], None) if len(insp) else []
        insp["exam_at"] = pd.to_datetime(insp["exam_at"], utc=True).astype("datetime64[us, UTC]")
        insp = insp[["declaration_id", *[c for c in INSPECTIONS.names if c != "declaration_id"], "_row"]]
        return insp, found

    # ---- feedback ---------------------------------------------------------------------------------
    def _learn(self, decl, f, insp, found, day):
        if not found.any():
            if "_network" in f:
                nets = f["_network"]
                mask = nets.notna().to_numpy()
                if mask.any():
                    self.underworld.record(day, nets[mask].reset_index(drop=True), pd.Series(found[mask]))
            return
        lag = self.cfg.watchlist_lag_days
        for i in np.flatnonzero(found):
            on = day + int(self.rng_insp.integers(lag[0], lag[1] + 1))
            for col in WATCHED_COLUMNS:
                v = decl[col].iloc[i]
                if isinstance(v, str) and v:
                    self.watch.setdefault(v, on)
        nets = f["_network"]
        mask = nets.notna().to_numpy()
        self.underworld.record(day, nets[mask].reset_index(drop=True), pd.Series(found[mask]))

    def _truth(self, decl, f, counters, rule):
        n = len(decl)
        get = lambda c, default: f[c].to_numpy() if c in f else np.full(n, default)  # noqa: E731
        smuggling = pd.Series(get("_smuggling", False)).fillna(False).to_numpy(dtype=bool)
        truth = pd.DataFrame(
            {
                "declaration_id": decl["declaration_id"].to_numpy(),
                "is_smuggling": smuggling,
                "pattern_id": np.where(smuggling, get("_pattern", None), None),
                "network_id": np.where(smuggling, get("_network", None), None),
                "drug_class": np.where(smuggling, get("_drug_class", None), None),
                "concealment": np.where(smuggling, get("_concealment", None), None),
                "true_qty_kg": np.where(smuggling, pd.Series(get("_true_qty", np.nan)).astype(float), np.nan),
                "cell_id": np.where(smuggling, get("_cell", None), None),
                "positive_fraction": np.where(
                    smuggling, pd.Series(get("_positive_fraction", np.nan)).astype(float), np.nan
                ),
                "non_drug_violation": f["_violation"].to_numpy(dtype=bool),
                "consignee_prior_decl": counters["consignee_prior_decl"].to_numpy(),
                "rule_score": np.round(rule, 6),
            }
        )
        truth["is_smuggling"] = truth["is_smuggling"].astype("boolean")
        truth["non_drug_violation"] = truth["non_drug_violation"].astype("boolean")
        return truth


# ---- helpers -------------------------------------------------------------------------------------


def _postal_profiles(decl: pd.DataFrame, hs: pd.Series) -> np.ndarray:
    """The postal desk's risk profiles (conjunctions written from past cases): how many match a row."""
    origin = decl["origin_country"]
    value = decl["declared_value_usd"].to_numpy()
    weight = decl["gross_weight_kg"].to_numpy()
    to_person = (decl["consignee_type"] == "PERSON").to_numpy()
    darknet = (
        (decl["consignor_type"] == "PERSON").to_numpy()
        & (decl["item_category"] == "GIFT").to_numpy()
        & (value <= 15)
        & origin.isin(["NL", "DE", "BE", "ES", "FR", "GB", "US", "CA", "TH"]).to_numpy()
    )
    cannabis = (
        origin.isin(["US", "CA"]).to_numpy()
        & to_person
        & hs.str[:4].isin(["1704", "1806", "2106", "2404", "8543", "3304"]).to_numpy()
        & (weight >= 0.1)
    )
    nps = (
        to_person
        & (hs.str[:2].isin(["29", "38", "33"]).to_numpy() | decl["hs_code"].isna().to_numpy())
        & (value <= 30)
        & (weight <= 1.0)
        & (decl["consignor_type"] == "ORG").to_numpy()
    )
    rx = to_person & hs.str[:4].isin(["3004", "2106"]).to_numpy() & origin.isin(["JP", "IN"]).to_numpy()
    return darknet.astype(int) + cannabis + nps + rx


def _fmt(prefix: str, ints: np.ndarray, width: int) -> np.ndarray:
    """Integer ids as fixed-width strings with a prefix (vectorised through Arrow)."""
    arr = pa.array(np.asarray(ints, dtype=np.int64))
    s = pc.utf8_lpad(pc.cast(arr, pa.string()), width, "0")
    return np.asarray(pc.binary_join_element_wise(prefix, s, "").to_numpy(zero_copy_only=False), dtype=object)


def _hash(tokens: np.ndarray) -> np.ndarray:
    """Stable 16-hex-digit pseudonymous hashes of integer tokens (splitmix64); -1 means absent."""
    t = np.asarray(tokens, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = t + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    hexes = np.char.mod("%016x", z)
    return np.where(np.asarray(tokens) < 0, None, hexes.astype(object))


def _strings(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Text columns (the contract's, and extras such as `cell_id`) as the `str` dtype; None stays missing."""
    for name in frame.columns:
        if frame[name].dtype == object and (
            name not in table.names or table.column(name).kind in ("string", "category")
        ):
            frame[name] = frame[name].astype("str")
    return frame


def _to_contract(out: pd.DataFrame) -> pd.DataFrame:
    """Order and type the non-string columns exactly as the declarations contract."""
    for col in DECLARATIONS.columns:
        if col.name not in out:
            out[col.name] = None
        if col.kind in ("string", "category"):
            continue  # typed by `_strings` once the day is done
        if col.kind == "date":
            out[col.name] = pd.to_datetime(out[col.name]).astype(col.dtype)
        elif col.kind in ("bool", "int", "float"):
            out[col.name] = out[col.name].astype(col.dtype)
    return out[list(DECLARATIONS.names)]
