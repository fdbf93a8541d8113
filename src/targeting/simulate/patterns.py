"""Criminal networks and the twelve planted patterns P01-P12 (§4.5-4.6), with their drift (§4.9).

A network sends attempts at its pattern's rate. Each attempt is a consignment drawn by the trade model
for the network's cover goods and route, then perturbed by the pattern's signal rules. Signals are
planted at rates that keep every single indicator weak (§4.4 "legitimate look-alikes").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from targeting.simulate import trade
from targeting.simulate.catalogue import line_index
from targeting.simulate.config import SimConfig
from targeting.simulate.entities import NETWORK_TOKENS, Registry
from targeting.simulate.geography import COUNTRY_INDEX

BURST = {"P08", "P09", "P10", "P11"}
REUSE_AFTER_SEIZURE = {"P02", "P03", "P05", "P07", "P08", "P09"}


@dataclass(frozen=True)
class Pattern:
    pid: str
    rate: float  # consignments per year (dev, before the prevalence multiplier)
    modes: dict[str, float]
    origins: dict[str, float]
    covers: tuple[str, ...]  # HS6 lines of the cover goods
    drug: dict[str, float]
    concealment: dict[str, float]
    qty: tuple[float, float, float]  # lognormal median, sigma, cap
    n_networks: int


PATTERNS: dict[str, Pattern] = {p.pid: p for p in [
    Pattern("P01", 15, {"SEA": 1}, {"EC": .45, "CO": .25, "CR": .15, "PA": .1, "PE": .05}, ("080390", "080430", "071410"),
            {"COCAINE": 1}, {"RIP_ON_DOOR": .6, "REEFER_MACHINERY": .25, "IN_COVER_LOAD": .15}, (50, .7, 2000), 2),
    Pattern("P02", 8, {"SEA": 1}, {"MX": .7, "EC": .15, "CO": .15}, ("690722", "680221", "870899", "843149", "090111", "170199"),
            {"COCAINE": .85, "METH": .15}, {"IN_COVER_LOAD": .4, "STRUCTURAL": .3, "IN_GOODS_ITEM": .2, "IMPREGNATED": .1},
            (300, 1.0, 2500), 2),
    Pattern("P03", 10, {"SEA": 1}, {"MX": .35, "US": .25, "TH": .25, "MY": .15}, ("252020", "321410", "320820", "851822"),
            {"METH": 1}, {"IN_GOODS_ITEM": .6, "LIQUID_DISSOLVED": .3, "STRUCTURAL": .1}, (60, 1.1, 1600), 2),
    Pattern("P04", 6, {"SEA": .6, "AIR": .4}, {"CN": .5, "IN": .3, "TH": .2}, ("291521", "291639", "293299", "382499", "210690", "220210"),
            {"PRECURSOR": 1}, {"MISDECLARED_CHEMICAL": .7, "LIQUID_DISSOLVED": .3}, (800, 1.0, 4000), 2),
    Pattern("P05", 25, {"AIR": .8, "SEA": .2}, {"TH": .35, "MY": .25, "VN": .2, "LA": .1, "MM": .1}, ("090240", "090210", "210120", "081320", "200899"),
            {"METH": 1}, {"IN_GOODS_ITEM": .9, "IN_COVER_LOAD": .1}, (25, .9, 600), 3),
    Pattern("P06", 12, {"AIR": 1}, {"CO": .3, "PE": .25, "BR": .2, "EC": .15, "MX": .1}, ("330499", "441400", "970190", "730630"),
            {"COCAINE": 1}, {"IN_GOODS_ITEM": .7, "IMPREGNATED": .2, "STRUCTURAL": .1}, (8, .8, 200), 2),
    Pattern("P07", 20, {"AIR": .6, "EXPRESS": .4}, {"CN": .7, "HK": .3}, ("841451", "830241", "392410", "570500", "392690", "960190"),
            {"PRECURSOR": .6, "OTHER": .4}, {"MISDECLARED_CHEMICAL": .7, "IN_GOODS_ITEM": .3}, (30, 1.2, 1000), 2),
    Pattern("P08", 250, {"POST": .6, "EXPRESS": .4}, {"CN": .45, "IN": .25, "NL": .1, "DE": .08, "PL": .07, "ES": .05},
            ("293359", "292249", "382499", "330741", "330790"),
            {"NPS_CATHINONE": .5, "NPS_CANNABINOID": .35, "NPS_OTHER": .15}, {"MISDECLARED_CHEMICAL": .6, "LOOSE_IN_PARCEL": .4},
            (0.15, 1.0, 5), 5),
    Pattern("P09", 350, {"POST": .8, "EXPRESS": .2}, {"NL": .2, "DE": .15, "BE": .1, "ES": .1, "FR": .1, "GB": .1, "US": .1, "CA": .05, "TH": .1},
            ("610910", "490199", "852349", "170490", "330499", "950300"),
            {"MDMA": .35, "METH": .2, "KETAMINE": .2, "COCAINE": .15, "OTHER": .1}, {"LOOSE_IN_PARCEL": .8, "IN_GOODS_ITEM": .2},
            (0.03, 1.0, 2), 6),
    Pattern("P10", 200, {"EXPRESS": .6, "POST": .4}, {"US": .55, "CA": .45}, ("170490", "180690", "210690", "240412", "854370", "330499"),
            {"CANNABIS": 1}, {"IN_GOODS_ITEM": .7, "LIQUID_DISSOLVED": .3}, (0.5, .8, 5), 4),
    Pattern("P11", 120, {"EXPRESS": .6, "POST": .4}, {"JP": .5, "IN": .3, "US": .2}, ("210690", "300490", "300450"),
            {"PSYCHOTROPIC_RX": 1}, {"IN_GOODS_ITEM": .8, "LOOSE_IN_PARCEL": .2}, (0.1, .8, 3), 3),
]}  # fmt: skip

NPS_KEYWORDS = [  # rotated by D3 every 90 days
    ("research chemical", "bath salt", "plant food"),
    ("reagent sample", "not for human consumption", "pigment"),
    ("lab reagent", "cleaning powder", "hookah cleaner"),
    ("incense sample", "glass cleaner", "plant fertilizer"),
    ("chemical standard", "analytical sample", "collector item"),
]
HOUSEHOLD = ("fans", "door stops", "cups", "mats", "silicone sets", "ornaments", "straws")


def lookalike_draw(rng: np.random.Generator, mode: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lines and origins of `n` legitimate look-alikes of `mode`: the cover goods and origins of the
    patterns that use the mode, weighted by how often each pattern does (§4.4 legitimate look-alikes)."""
    pats = [p for p in PATTERNS.values() if mode in p.modes]
    if not pats or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    w = np.array([p.rate * p.modes[mode] for p in pats])
    which = rng.choice(len(pats), n, p=w / w.sum())
    lines = np.empty(n, np.int64)
    origins = np.empty(n, np.int64)
    for k, p in enumerate(pats):
        sel = np.flatnonzero(which == k)
        if sel.size == 0:
            continue
        lines[sel] = [line_index(c) for c in rng.choice(p.covers, sel.size)]
        keys = list(p.origins)
        po = np.array([p.origins[c] for c in keys])
        origins[sel] = np.array([COUNTRY_INDEX[c] for c in keys])[
            rng.choice(len(keys), sel.size, p=po / po.sum())
        ]
    return lines, origins


def _choice(rng: np.random.Generator, d: dict[str, float]) -> str:
    keys = list(d)
    p = np.array([d[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


@dataclass
class Network:
    nid: str
    pattern: Pattern
    start_day: int = 0
    paused_until: int = -1
    mutation: int = 0
    generation: int = 0  # increments each time the network changes its cell (P12)
    linked: bool = False  # the current cell reuses tokens of a seized one
    tips_pending: int = 0  # controlled delivery: next attempts revealed as INTEL_TIP
    cell: dict[str, object] = field(default_factory=dict)
    outcomes: list[tuple[int, bool]] = field(default_factory=list)  # (day, seized)


class Underworld:
    """All networks, their cells, and what they do each day."""

    def __init__(self, cfg: SimConfig, reg: Registry, rng: np.random.Generator) -> None:
        self.cfg, self.reg, self.rng = cfg, reg, rng
        self._token = NETWORK_TOKENS
        self.networks: list[Network] = []
        self.events: list[dict[str, object]] = []
        for p in PATTERNS.values():
            for k in range(p.n_networks):
                start = cfg.drift_day(cfg.d6_day) if p.pid == "P07" else 0
                net = Network(f"N{p.pid[1:]}{k:02d}", p, start_day=start)
                self._new_cell(net, reuse_from=None)
                self.networks.append(net)

    # ---- cells ---------------------------------------------------------------------------------
    def _tok(self) -> int:
        self._token += 1
        return self._token

    def _new_cell(self, net: Network, reuse_from: dict[str, object] | None) -> None:
        rng, reg = self.rng, self.reg
        pid = net.pattern.pid
        cell: dict[str, object] = {"gen": net.generation}
        n_senders = 4 if pid in BURST else 1
        n_addressees = 3 if pid in BURST else 1
        # front company / recruited addressees: new ids the registry has never seen
        cell["consignees"] = [f"X{net.nid}G{net.generation}C{i}" for i in range(n_addressees)]
        if pid == "P01":  # rip-on: legitimate, long-standing fruit importers, unaware
            fruit = np.flatnonzero(reg.imp_start < -365)
            cell["legit_consignees"] = rng.choice(fruit, 3)
        if pid in ("P05", "P09", "P10", "P11") and rng.random() < 0.5:  # recruited real addressees
            cell["person_consignees"] = rng.integers(0, reg.n_persons, n_addressees)
        cell["senders"] = [f"X{net.nid}G{net.generation}S{i}" for i in range(n_senders)]
        for tok in ("phone", "email", "addr"):
            cell[tok] = [self._tok() for _ in range(n_addressees)]
        cell["forwarder"] = int(rng.choice(len(reg.fwd_weight), p=reg.fwd_weight))
        cell["declarant"] = int(rng.choice(len(reg.dcl_weight), p=reg.dcl_weight))
        if reuse_from is not None:  # P12: reuse some tokens of the seized cell
            for key, p in (
                ("phone", 0.5),
                ("email", 0.4),
                ("addr", 0.3),
                ("forwarder", 0.6),
                ("declarant", 0.3),
            ):
                if rng.random() < p:
                    cell[key] = reuse_from[key]
        net.cell = cell

    # ---- daily attempts ----------------------------------------------------------------------
    def rate_per_day(self, net: Network, day: int) -> float:
        cfg = self.cfg
        if day < net.start_day or day < net.paused_until:
            return 0.0
        rate = net.pattern.rate / 365 / net.pattern.n_networks * cfg.prevalence_multiplier
        if net.pattern.pid in BURST:
            rate /= 2.0  # attempts are bursts of 2 parcels on average
        if cfg.d5_enabled and cfg.drift_day(cfg.d5_start) <= day < cfg.drift_day(cfg.d5_end):
            if set(net.pattern.modes) & {"POST", "EXPRESS"}:
                rate *= 1.5
        return rate

    def attempts(self, day: int) -> pd.DataFrame:
        """All smuggling consignments filed on `day` (internal frame, hidden columns set)."""
        frames = []
        for net in self.networks:
            k = self.rng.poisson(self.rate_per_day(net, day))
            for _ in range(k):
                burst = 1 + min(self.rng.poisson(1.0), 9) if net.pattern.pid in BURST else 1
                frames.append(self._attempt(net, day, burst))
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def _mode(self, net: Network, day: int) -> str:
        p = net.pattern
        if p.pid == "P05":  # D2: AIR:SEA from 80:20 to 40:60 over the year
            frac = min(1.0, day / max(1, self.cfg.days - 1)) if self.cfg.days >= 365 else day / 365
            air = 0.8 - 0.4 * frac
            return "AIR" if self.rng.random() < air else "SEA"
        modes = dict(p.modes)
        if net.mutation % 2 == 1 and len(modes) > 1:  # D7 mutation: swap the preferred mode
            keys = list(modes)
            modes = {keys[0]: modes[keys[1]], keys[1]: modes[keys[0]], **{k: modes[k] for k in keys[2:]}}
        return _choice(self.rng, modes)

    def _origin_and_cover(self, net: Network, day: int) -> tuple[str, str, str]:
        rng, cfg, p = self.rng, self.cfg, net.pattern
        origins = dict(p.origins)
        covers = list(p.covers)
        transit = ""
        if p.pid == "P01" and cfg.drift_day(cfg.d1_start) <= day:
            # D1 displacement: origin EC -> PE/CL via PA; 30 % of cover loads leave bananas
            origins = {"PE": 0.35, "CL": 0.25, "EC": 0.15, "CO": 0.15, "CR": 0.1}
            if rng.random() < 0.3:
                covers = ["080430", "080440", "090111"]
            transit = "PABLB" if rng.random() < 0.5 else ""  # half the displaced loads tranship at Balboa
        if p.pid == "P02" and day >= cfg.drift_day(cfg.d4_day):
            origins = {"MX": 0.3, "EC": 0.35, "CO": 0.35}  # D4: direct MX 70 % -> 30 %
            covers = ["870899", "843149", "870830"]
            transit = "PABLB" if rng.random() < 0.5 else "CNSHA"
        if net.mutation >= 1 and p.pid not in ("P01",):  # D7: next route / cover
            keys = list(origins)
            shift = net.mutation % len(keys)
            origins = {k: origins[keys[(i + shift) % len(keys)]] for i, k in enumerate(keys)}
            covers = covers[net.mutation % len(covers) :] + covers[: net.mutation % len(covers)]
        cover = covers[rng.integers(0, len(covers))]
        return _choice(rng, origins), cover, transit

    def _attempt(self, net: Network, day: int, n: int) -> pd.DataFrame:
        rng, cfg, reg, p = self.rng, self.cfg, self.reg, net.pattern
        mode = self._mode(net, day)
        origin, cover, transit = self._origin_and_cover(net, day)
        lines = np.full(n, line_index(cover))
        if p.pid in BURST:
            lines = np.array([line_index(c) for c in rng.choice(p.covers, n)])
        origins = np.full(n, COUNTRY_INDEX[origin])
        f = trade.generate(rng, cfg, reg, day, mode, n, lines=lines, origins=origins)
        cell = net.cell
        idx = rng.integers(0, len(cell["consignees"]), n)
        # parties: the cell's front company / addressees and senders
        f["_consignee_kind"] = "X"
        f["_consignee_x"] = np.asarray(cell["consignees"])[idx]
        f["_consignor_kind"] = "X"
        f["_consignor_x"] = np.asarray(cell["senders"])[rng.integers(0, len(cell["senders"]), n)]
        f["_phone_tok"] = np.asarray(cell["phone"])[idx]
        f["_email_tok"] = np.asarray(cell["email"])[idx]
        f["_addr_tok"] = np.asarray(cell["addr"])[idx]
        if rng.random() < 0.7:
            f["_forwarder"] = cell["forwarder"] if mode in ("SEA", "AIR") else -1
            f["_declarant"] = cell["declarant"]
        self._plant(net, f, mode, day, n)

        drug = [_choice(rng, p.drug) for _ in range(n)]
        conceal = [_choice(rng, p.concealment) for _ in range(n)]
        qty = np.minimum(rng.lognormal(np.log(p.qty[0]), p.qty[1], n), p.qty[2])
        f["_smuggling"] = True
        f["_pattern"] = p.pid
        f["_network"] = net.nid
        f["_cell"] = f"{net.nid}G{net.generation}"
        f["_drug_class"] = drug
        f["_concealment"] = conceal
        f["_true_qty"] = np.round(qty, 4)
        f["_positive_fraction"] = rng.uniform(0.2, 1.0, n) if p.pid == "P04" else 1.0
        f["_linked"] = net.linked
        f["_tipped"] = False
        if net.tips_pending > 0:
            f["_tipped"] = True
            net.tips_pending -= 1
        if transit:
            f["transit_locs"] = transit
        return f

    def _plant(self, net: Network, f: pd.DataFrame, mode: str, day: int, n: int) -> None:
        """The pattern's planted signals, each at its configured rate."""
        rng, p = self.rng, net.pattern.pid
        r = rng.random

        def some(share: float) -> np.ndarray:
            return r(n) < share

        def put(share: float, col: str, choices: tuple | list) -> None:
            mask = some(share)
            f.loc[mask, col] = np.asarray(rng.choice(list(choices), mask.sum()), dtype=object)

        if p == "P01":
            legit = net.cell["legit_consignees"]
            f["_consignee_kind"] = "O"
            f["_consignee"] = np.asarray(legit)[rng.integers(0, len(legit), n)]
            f["_addr_tok"] = 1_000_000_000 + f["_consignee"]
            f["_phone_tok"] = 1_500_000_000 + f["_consignee"]
            f["_email_tok"] = 1_700_000_000 + f["_consignee"]
            f["_consignor_kind"] = "E"
            f["is_reefer"] = True
            f["container_type"] = "45R1"
            f.loc[some(0.4), "seal_discrepancy"] = True
            f.loc[some(0.15), "amend_count"] = 1
            if (
                mode == "SEA"
                and day >= self.cfg.drift_day(self.cfg.d1_start)
                and day < self.cfg.drift_day(self.cfg.d1_end)
            ):
                move = some(0.75)
                f.loc[move, "discharge_loc"] = rng.choice(["KRKAN", "KRINC"], move.sum())
        elif p == "P02":
            f["declared_value_usd"] = (f["declared_value_usd"] * rng.uniform(0.1, 0.3, n)).round(2)
            f.loc[some(0.3), "freight_payment"] = "A"
            f["_lead_days"] = np.where(some(0.3), 1, f["_lead_days"])
            f["_notify_is_forwarder"] = some(0.7)
        elif p == "P03":
            f.loc[some(0.6), "package_type"] = "DR"
            f["gross_weight_kg"] = (f["gross_weight_kg"] * rng.uniform(1.2, 1.8, n)).round(3)
            lcl = some(0.7)
            f.loc[lcl, "fcl_lcl"] = "LCL"
            f.loc[lcl, "gross_weight_kg"] = rng.lognormal(np.log(900), 0.6, lcl.sum()).round(3)
        elif p == "P04":
            generic = some(0.6)
            f.loc[generic, "goods_desc"] = rng.choice(["chemical raw material", "food additive", "iced tea",
                                                       "industrial chemical"], generic.sum())  # fmt: skip
        elif p == "P05":
            person = some(0.4)
            f.loc[person, "_consignee_kind"] = "X"
            put(0.35, "consignee_addr_type", ["RESIDENTIAL", "C_O"])
            f["declared_value_usd"] = (f["declared_value_usd"] * rng.uniform(0.2, 0.5, n)).round(2)
            if mode == "AIR":
                f["gross_weight_kg"] = rng.uniform(10, 60, n).round(2)
                f["n_packages"] = rng.integers(1, 5, n)
            f["_person"] = person
            put(0.6, "goods_desc", ["tea", "dried fruit", "snacks"])
        elif p == "P06":
            if (f["transit_locs"] == "").any():
                f.loc[f["transit_locs"] == "", "transit_locs"] = rng.choice(
                    ["ESMAD", "NLAMS", "DEFRA", "QADOH"]
                )
            f["shipper_account_age_days"] = rng.integers(0, 30, n)
            f.loc[some(0.5), "known_consignor"] = False
            f["declared_value_usd"] = (f["declared_value_usd"] * 0.4).round(2)
        elif p == "P07":
            if mode == "AIR":
                f.loc[some(0.45), "is_transit_cargo"] = True
            else:  # e-commerce transit parcels addressed to private persons
                f["_person"] = some(0.8)
            f["goods_desc"] = np.asarray(rng.choice(list(HOUSEHOLD), n), dtype=object)
            f["gross_weight_kg"] = (f["gross_weight_kg"] * rng.uniform(2.0, 4.0, n)).round(3)
            f.loc[some(0.25), "package_type"] = "JC"  # jerrycans in "household goods"
            f.loc[some(0.6), "_phone_tok"] = -1
            f.loc[some(0.6), "_email_tok"] = -1
        elif p == "P08":
            period = day // max(1, self.cfg.drift_day(self.cfg.d3_period))
            vocab = NPS_KEYWORDS[(period + net.mutation) % len(NPS_KEYWORDS)]
            kw = some(0.5)
            f.loc[kw, "goods_desc"] = rng.choice(vocab, kw.sum())
            f.loc[~kw, "goods_desc"] = rng.choice(["sample", "gift", "samples"], (~kw).sum())
            f.loc[some(0.3), "_hs_missing"] = True
            f["gross_weight_kg"] = rng.uniform(0.02, 1.0, n).round(3)
            f["declared_value_usd"] = rng.uniform(1, 30, n).round(2)
            f["_person"] = True
            # sender companies rotate every ~60 days (D3): encode the period into the sender id
            f["_consignor_x"] = f["_consignor_x"] + f"P{period}"
        elif p == "P09":
            f["_consignor_person"] = some(0.6)
            f.loc[some(0.5), "item_category"] = "GIFT"
            f["declared_value_usd"] = rng.uniform(0, 15, n).round(2)
            put(0.6, "goods_desc", ["clothes", "books", "dvd", "candy", "cosmetics", "toys", "documents"])
            f["_person"] = True
        elif p in ("P10", "P11"):
            f["_person"] = True
            if p == "P10":
                f["gross_weight_kg"] = rng.uniform(0.1, 3.0, n).round(3)
            else:
                put(0.6, "goods_desc", ["vitamins", "health supplement", "medicine"])
                f["declared_value_usd"] = (f["declared_value_usd"] * 1.8).round(2)
        if "_person" in f.columns:
            f["_person"] = f["_person"].fillna(False).astype(bool)

    # ---- feedback ----------------------------------------------------------------------------
    def record(self, day: int, network_ids: pd.Series, seized: pd.Series) -> None:
        """After a day's examinations: seizures burn cells (P12), trigger controlled deliveries, D7."""
        nets = {n.nid: n for n in self.networks}
        for nid in pd.unique(network_ids):
            net = nets[nid]
            hit = bool(seized[network_ids == nid].any())
            net.outcomes.append((day, hit))
            if not hit:
                continue
            if self.rng.random() < self.cfg.controlled_delivery_prob:
                net.tips_pending = 2
            old = dict(net.cell)
            net.generation += 1
            eligible = net.pattern.pid in REUSE_AFTER_SEIZURE
            reuse = eligible and self.rng.random() < self.cfg.reuse_after_seizure_prob
            self._new_cell(net, reuse_from=old if reuse else None)
            net.linked = reuse
            if net.pattern.pid != "P01":
                net.paused_until = day + int(self.rng.integers(14, 57))
            self._adapt(net, day)

    def _adapt(self, net: Network, day: int) -> None:
        window = self.cfg.avoidance_window_days
        recent = [s for d, s in net.outcomes if d > day - window]
        if len(recent) >= 3 and np.mean(recent) > self.cfg.avoidance_threshold:
            net.mutation += 1
            net.outcomes = []
            self.events.append({"event": "D7", "day": day, "network": net.nid, "pattern": net.pattern.pid,
                                "mutation": net.mutation})  # fmt: skip
