"""Legitimate declarations of one day and mode, vectorised (§4.4).

`generate` returns an internal frame: contract columns still partly as integer codes (parties), plus
hidden columns (`_line`, `_c2c`, `_violation`, ...). Smuggling attempts reuse it with fixed lines,
origins and parties, so positives look like real consignments except in the planted ways.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from targeting.simulate.catalogue import DOCUMENTS_GROUP, LINES, MODE_MIX, ORIGIN_PROFILES, VAGUE_DESCRIPTIONS
from targeting.simulate.config import SimConfig
from targeting.simulate.entities import ADDR_TYPES_ORG, GROUP_INDEX, Registry, draw
from targeting.simulate.geography import (
    AIR_DISCHARGE,
    AIR_HUBS,
    AIRPORTS,
    CARRIERS,
    COUNTRIES,
    COUNTRY_CODES,
    COUNTRY_INDEX,
    EXPRESS_DISCHARGE,
    EXPRESS_OPERATORS,
    POST_DISCHARGE,
    SEA_DISCHARGE,
    SEA_HUBS,
    SEAPORTS,
    TRADE_WEIGHTS,
)  # fmt: skip

N_LINES = len(LINES)
LINE_GROUP = np.array([GROUP_INDEX.get(ln.group, 0) for ln in LINES])
LINE_USD = np.array([ln.usd_per_kg for ln in LINES])
LINE_REEFER = np.array([ln.reefer for ln in LINES])
LINE_HS = np.array([ln.hs6 for ln in LINES])
LINE_PKG = np.array([ln.package for ln in LINES])
_DESC_FLAT = np.array([d for ln in LINES for d in ln.descs])
_DESC_COUNT = np.array([len(ln.descs) for ln in LINES])
_DESC_START = np.concatenate([[0], np.cumsum(_DESC_COUNT)[:-1]])
VALUE_SIGMA = 0.25  # value noise around the line's unit value (log scale)
UNIT_SIGMA = 0.35  # spread of unit values between consignments of one line

_REGION = np.array([COUNTRIES[c][0] for c in COUNTRY_CODES])
_PROFILE_NAMES = sorted({ln.origins for ln in LINES})
LINE_PROFILE = np.array([_PROFILE_NAMES.index(ln.origins) for ln in LINES])


def _profile_weights(name: str, mode: str) -> np.ndarray:
    w = TRADE_WEIGHTS.copy()
    if mode in ("EXPRESS", "POST"):  # e-commerce: China, US, Japan dominate
        boost = {"CN": 3.0, "US": 1.5, "JP": 1.3, "HK": 1.5, "DE": 1.2, "GB": 1.2}
        w = w * np.array([boost.get(c, 0.6) for c in COUNTRY_CODES])
    if name:
        w = np.array([ORIGIN_PROFILES[name].get(c, 0.0) for c in COUNTRY_CODES])
    return w / w.sum()


def _lines_of_group(group: str) -> np.ndarray:
    return np.array([i for i, ln in enumerate(LINES) if ln.group == group])


_GROUP_LINES = {g: _lines_of_group(g) for g in {ln.group for ln in LINES}}


def sample_lines(rng: np.random.Generator, mode: str, n: int) -> np.ndarray:
    """HS lines by the mode's chapter mix; -1 marks documents (no HS code)."""
    mix = MODE_MIX[mode]
    groups = list(mix)
    p = np.array([mix[g] for g in groups])
    g_idx = rng.choice(len(groups), n, p=p / p.sum())
    out = np.full(n, -1, dtype=np.int64)
    for gi, g in enumerate(groups):
        sel = g_idx == gi
        if g == DOCUMENTS_GROUP or not sel.any():
            continue
        cand = _GROUP_LINES[g]
        out[sel] = cand[rng.integers(0, len(cand), sel.sum())]
    return out


def sample_origins(
    rng: np.random.Generator, mode: str, lines: np.ndarray, cn_factor: float = 1.0
) -> np.ndarray:
    out = np.empty(len(lines), dtype=np.int64)
    prof = np.where(lines >= 0, LINE_PROFILE[np.maximum(lines, 0)], _PROFILE_NAMES.index(""))
    for pi, name in enumerate(_PROFILE_NAMES):
        sel = prof == pi
        if sel.any():
            w = _profile_weights(name, mode)
            if cn_factor != 1.0:
                w = w.copy()
                w[COUNTRY_INDEX["CN"]] *= cn_factor
                w /= w.sum()
            out[sel] = rng.choice(len(COUNTRY_CODES), sel.sum(), p=w)
    return out


def _pick(rng: np.random.Generator, choices: tuple[list[str], list[float]], n: int) -> np.ndarray:
    vals, p = choices
    return np.asarray(vals)[rng.choice(len(vals), n, p=np.asarray(p) / np.sum(p))]


def _padded(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged lists of codes as a padded 2-D array plus the length of each row."""
    width = max(len(r) for r in rows)
    table = np.array([r + [r[0]] * (width - len(r)) for r in rows], dtype=object)
    return table, np.array([len(r) for r in rows])


_SEA_PORTS, _SEA_PORT_N = _padded([SEAPORTS.get(c, ["SGSIN"]) for c in COUNTRY_CODES])
_SEA_HUB, _SEA_HUB_N = _padded(
    [[h for h in SEA_HUBS[_REGION[i]] if h[:2] != c] for i, c in enumerate(COUNTRY_CODES)]
)
_AIRPORT = np.array([AIRPORTS.get(c, "SGSIN") for c in COUNTRY_CODES], dtype=object)
_AIR_HUB, _AIR_HUB_N = _padded(
    [[h for h in AIR_HUBS[_REGION[i]] if h != _AIRPORT[i]] for i in range(len(COUNTRY_CODES))]
)


def sea_routes(
    rng: np.random.Generator, origins: np.ndarray, hub_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Port of loading (the country's main port 60 %) and 0-2 transhipment hubs of the rotation."""
    n = len(origins)
    other = rng.integers(0, 1 << 30, n) % _SEA_PORT_N[origins]
    load = np.where(rng.random(n) < 0.6, _SEA_PORTS[origins, 0], _SEA_PORTS[origins, other])
    n_hub = _SEA_HUB_N[origins]
    first = rng.integers(0, 1 << 30, n) % n_hub
    second = (first + 1 + rng.integers(0, 1 << 30, n) % np.maximum(n_hub - 1, 1)) % n_hub
    hub1 = _SEA_HUB[origins, first]
    two = (rng.random(n) >= 0.8) & (n_hub > 1)
    both = pd.Series(hub1).str.cat(pd.Series(_SEA_HUB[origins, second]), sep=";").to_numpy(dtype=object)
    via = rng.random(n) < hub_share
    transit = np.where(via, np.where(two, both, hub1), "")
    return load.astype(object), transit.astype(object)


def air_routes(
    rng: np.random.Generator, origins: np.ndarray, hub_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """The origin's cargo airport, and a transit hub of its region for `hub_share` of the items."""
    n = len(origins)
    load = _AIRPORT[origins]
    hub = _AIR_HUB[origins, rng.integers(0, 1 << 30, n) % _AIR_HUB_N[origins]]
    transit = np.where(rng.random(n) < hub_share, hub, "")
    return load.copy(), transit.astype(object)


def generate(
    rng: np.random.Generator,
    cfg: SimConfig,
    reg: Registry,
    day: int,
    mode: str,
    n: int,
    *,
    lines: np.ndarray | None = None,
    origins: np.ndarray | None = None,
    cn_factor: float = 1.0,
) -> pd.DataFrame:
    """`n` legitimate-looking declarations of `mode` filed on `day` (internal frame)."""
    if lines is None:
        lines = sample_lines(rng, mode, n)
    if origins is None:
        origins = sample_origins(rng, mode, lines, cn_factor)
    has_line = lines >= 0
    li = np.maximum(lines, 0)

    # parties --------------------------------------------------------------------------------------
    person = rng.random(n) < cfg.person_consignee_share[mode]
    active = (reg.imp_start <= day) & (reg.imp_end > day)
    w_imp = reg.imp_weight * active
    consignee_org = rng.choice(reg.n_importers, n, p=w_imp / w_imp.sum())
    # importers mostly buy goods of their own sector: re-draw lines for SEA/AIR firms when the
    # sampled line is outside it happens in reverse: keep the line, pick a firm of that sector
    if mode in ("SEA", "AIR"):
        consignee_org = _importer_for_lines(rng, reg, li, active, consignee_org, has_line)
    consignee_per = draw(rng, reg.per_cdf, n)
    # exporters in the country of origin; POST/EXPRESS: some consumer-to-consumer senders (PERSON)
    u = rng.random(n)
    cnt = reg.exp_by_country_count[origins]
    pos = reg.exp_by_country_start[origins] + np.floor((u**2) * np.maximum(cnt, 1)).astype(np.int64)
    exporter = np.where(
        cnt > 0,
        reg.exp_order[np.minimum(pos, len(reg.exp_order) - 1)],
        rng.integers(0, len(reg.exp_order), n),
    )
    c2c = rng.random(n) < cfg.c2c_share[mode]
    sender_person = rng.integers(0, 50 * max(1, reg.n_persons // 100), n)

    fwd_p = {"SEA": 0.55, "AIR": 0.7, "EXPRESS": 0.0, "POST": 0.0}[mode]
    forwarder = np.where(rng.random(n) < fwd_p, rng.choice(len(reg.fwd_weight), n, p=reg.fwd_weight), -1)
    declarant = np.where(rng.random(n) < (0.95 if mode in ("SEA", "AIR") else 0.3),
                         rng.choice(len(reg.dcl_weight), n, p=reg.dcl_weight), -1)  # fmt: skip

    # goods ----------------------------------------------------------------------------------------
    if mode == "SEA":
        fcl = rng.random(n) < 0.55
        n_cont = 1 + rng.binomial(3, 0.2, n)
        per_cont = np.clip(rng.normal(14_000, 5_000, n), 3_000, 28_000)
        per_cont = np.where(LINE_REEFER[li], np.clip(rng.normal(20_000, 2_000, n), 12_000, 26_000), per_cont)
        weight = np.where(fcl, per_cont * n_cont, rng.lognormal(np.log(900), 1.0, n))
    elif mode == "AIR":
        weight = rng.lognormal(np.log(80), 1.3, n)
    elif mode == "EXPRESS":
        weight = rng.lognormal(np.log(1.2), 0.9, n)
    else:
        weight = np.where(rng.random(n) < 0.85, np.minimum(rng.lognormal(np.log(0.4), 0.8, n), 1.99),
                          rng.lognormal(np.log(3.0), 0.7, n))  # fmt: skip
    weight = np.round(np.maximum(weight, 0.01), 3)
    unit = LINE_USD[li] * rng.lognormal(0, UNIT_SIGMA, n)
    value = weight * unit * rng.lognormal(0, VALUE_SIGMA, n)
    if mode == "EXPRESS":
        value = rng.lognormal(np.log(45), 1.0, n)
    elif mode == "POST":
        value = rng.lognormal(np.log(20), 1.1, n)
        value = np.where(rng.random(n) < cfg.post_value_le_1_share, rng.choice([0.0, 1.0], n), value)
    if mode in ("EXPRESS", "POST"):
        value = np.where(c2c, rng.lognormal(np.log(cfg.c2c_value_usd), 1.0, n), value)
    value = np.where(has_line, value, rng.uniform(0, 5, n))

    # vague text is commoner between private persons; the mode's overall share stays as configured
    c2c_share = cfg.c2c_share[mode]
    p_vague_b2c = max(
        0.0, (cfg.vague_share[mode] - c2c_share * cfg.c2c_vague_share) / max(1e-9, 1 - c2c_share)
    )
    vague = rng.random(n) < np.where(c2c, cfg.c2c_vague_share, p_vague_b2c)
    desc = _DESC_FLAT[_DESC_START[li] + rng.integers(0, 1 << 30, n) % _DESC_COUNT[li]]
    desc = np.where(vague, np.asarray(VAGUE_DESCRIPTIONS)[rng.integers(0, len(VAGUE_DESCRIPTIONS), n)], desc)
    desc = np.where(has_line, desc, "documents")
    pieces_per_pkg = {"SEA": 25.0, "AIR": 25.0, "EXPRESS": 5.0, "POST": 5.0}[mode]
    n_packages = 1 + rng.poisson(weight / pieces_per_pkg if mode != "SEA" else np.minimum(weight / 18, 3_000))

    # timing: filed during the day; arrival after the mode's lead time
    filed_s = np.sort(rng.integers(0, 86_400, n))
    lead_days = {"SEA": (3, 21), "AIR": (0, 2), "EXPRESS": (0, 3), "POST": (2, 10)}[mode]
    lead = rng.integers(lead_days[0], lead_days[1] + 1, n)

    frame = pd.DataFrame(
        {
            "mode": mode,
            "_filed_s": day * 86_400 + filed_s,
            "_lead_days": lead,
            "_line": lines,
            "_origin": origins,
            "_consignee_kind": np.where(person, "P", "O"),
            "_consignee": np.where(person, consignee_per, consignee_org),
            "_consignor_kind": np.where(c2c, "S", "E"),
            "_consignor": np.where(c2c, sender_person, exporter),
            "_forwarder": forwarder,
            "_declarant": declarant,
            "goods_desc": desc,
            "gross_weight_kg": weight,
            "declared_value_usd": np.round(value, 2),
            "n_packages": n_packages,
            "package_type": np.where(has_line, LINE_PKG[li], "PK"),
            "_violation": rng.random(n) < cfg.non_drug_violation_rate,
            "_c2c": c2c,
            "_hs_missing": rng.random(n) < cfg.hs_missing_share[mode],
        }
    )
    frame["amend_count"] = np.where(rng.random(n) < (cfg.sea_amendment_share if mode == "SEA" else 0.03),
                                    1 + rng.poisson(0.3, n), 0)  # fmt: skip
    frame["freight_payment"] = np.where(rng.random(n) < cfg.cash_freight_share, "A",
                                        rng.choice(["H", "Y", "Z", "B", "D"], n, p=[0.5, 0.3, 0.1, 0.05, 0.05]))  # fmt: skip
    frame["consignee_addr_type"] = np.where(
        person, rng.choice(["RESIDENTIAL", "C_O", "PO_BOX"], n, p=[0.93, 0.04, 0.03]),
        ADDR_TYPES_ORG[reg.imp_addr_type[consignee_org]],
    )  # fmt: skip
    frame["consignee_taxid_present"] = np.where(
        person, reg.per_taxid[consignee_per], reg.imp_taxid[consignee_org]
    )
    frame["_addr_tok"] = np.where(
        person, 2_000_000_000 + reg.per_addr[consignee_per], 1_000_000_000 + consignee_org
    )
    frame["_phone_tok"] = np.where(person, 2_500_000_000 + consignee_per, 1_500_000_000 + consignee_org)
    frame["_email_tok"] = np.where(person & ~reg.per_email[consignee_per], -1,
                                   np.where(person, 2_700_000_000 + consignee_per, 1_700_000_000 + consignee_org))  # fmt: skip
    _routes(rng, cfg, frame, mode, origins, n)
    _mode_columns(rng, cfg, frame, mode, li, has_line, n)
    return frame


def _importer_for_lines(rng, reg, li, active, current, has_line):
    """Pick, for each line, an active importer of the line's sector (most of the time)."""
    out = current.copy()
    own_sector = rng.random(len(li)) < 0.85
    groups = LINE_GROUP[li]
    for g in np.unique(groups[own_sector & has_line]):
        cand = np.flatnonzero((reg.imp_group == g) & active)
        if cand.size == 0:
            continue
        sel = own_sector & has_line & (groups == g)
        w = reg.imp_weight[cand]
        out[sel] = cand[rng.choice(cand.size, sel.sum(), p=w / w.sum())]
    return out


def _routes(rng, cfg, frame, mode, origins, n):
    if mode == "SEA":
        load, transit = sea_routes(rng, origins, cfg.transhipment_share["SEA"])
        discharge = _pick(rng, SEA_DISCHARGE, n)
    elif mode == "AIR":
        load, transit = air_routes(rng, origins, cfg.transhipment_share["AIR"])
        discharge = _pick(rng, AIR_DISCHARGE, n)
    else:
        load, transit = air_routes(rng, origins, cfg.transhipment_share[mode])
        discharge = _pick(rng, POST_DISCHARGE if mode == "POST" else EXPRESS_DISCHARGE, n)
    frame["load_loc"] = load
    frame["transit_locs"] = transit
    frame["discharge_loc"] = discharge
    frame["origin_country"] = COUNTRY_CODES[origins]
    # consumer goods are often made in China whatever the country they are sent from
    made_in_cn = (rng.random(n) < (0.35 if mode != "SEA" else 0.15)) & (COUNTRY_CODES[origins] != "CN")
    other = COUNTRY_CODES[rng.choice(len(COUNTRY_CODES), n, p=TRADE_WEIGHTS / TRADE_WEIGHTS.sum())]
    goods_origin = np.where(rng.random(n) < 0.95, COUNTRY_CODES[origins], other)
    frame["goods_origin_country"] = np.where(made_in_cn, "CN", goods_origin)
    carriers = CARRIERS[mode]
    frame["_carrier"] = np.asarray(carriers)[rng.integers(0, len(carriers), n)]


def _mode_columns(rng, cfg, frame, mode, li, has_line, n):
    frame["item_category"] = None
    frame["is_transit_cargo"] = False
    if mode == "SEA":
        reefer = LINE_REEFER[li] & (rng.random(n) < 0.95)
        frame["is_reefer"] = reefer
        frame["container_type"] = np.where(reefer, rng.choice(["45R1", "22R1"], n, p=[0.8, 0.2]),
                                           rng.choice(["42G1", "45G1", "22G1"], n, p=[0.45, 0.35, 0.2]))  # fmt: skip
        frame["fcl_lcl"] = np.where(frame["gross_weight_kg"] >= 3_000, "FCL", "LCL")
        frame["_vessel"] = rng.integers(0, 600, n)
        frame["seal_discrepancy"] = rng.random(n) < 0.01
        frame["item_category"] = "SALE_OF_GOODS"
    elif mode == "AIR":
        frame["_flight"] = rng.integers(0, 400, n)
        frame["shipper_account_age_days"] = rng.integers(30, 4_000, n)
        frame["known_consignor"] = rng.random(n) < 0.6
        frame["is_transit_cargo"] = rng.random(n) < cfg.air_transit_cargo_share
        frame["item_category"] = "SALE_OF_GOODS"
    elif mode == "POST":
        small = frame["gross_weight_kg"].to_numpy() < 2
        frame["mail_class"] = np.where(small, rng.choice(["SMALL_PACKET", "LETTER"], n, p=[0.95, 0.05]),
                                       rng.choice(["PARCEL", "EMS"], n, p=[0.7, 0.3]))  # fmt: skip
        frame["cn_form"] = np.where(frame["declared_value_usd"].to_numpy() > 400, "CN23",
                                    rng.choice(["CN22", "CN23"], n, p=[0.7, 0.3]))  # fmt: skip
        frame["item_category"] = _post_categories(rng, cfg, frame["_c2c"].to_numpy(), n)
        frame.loc[~has_line, "item_category"] = "DOCUMENTS"
    else:
        frame["express_operator"] = np.asarray(EXPRESS_OPERATORS)[rng.integers(0, len(EXPRESS_OPERATORS), n)]
        limit = np.where(frame["origin_country"].to_numpy() == "US", 200.0, 150.0)
        frame["simplified_clearance"] = frame["declared_value_usd"].to_numpy() <= limit
        gift = frame["_c2c"].to_numpy() & (rng.random(n) < cfg.c2c_gift_share)
        frame["item_category"] = np.where(has_line, np.where(gift, "GIFT", "SALE_OF_GOODS"), "DOCUMENTS")


POST_CATEGORIES = ["SALE_OF_GOODS", "GIFT", "DOCUMENTS", "COMMERCIAL_SAMPLE", "OTHER"]
POST_CATEGORY_MIX = [0.70, 0.18, 0.04, 0.03, 0.05]


def _post_categories(rng: np.random.Generator, cfg: SimConfig, c2c: np.ndarray, n: int) -> np.ndarray:
    """CN22/23 categories of goods items: private senders mostly send gifts.

    DOCUMENTS comes from the documents share of the chapter mix (items without goods), so goods items
    draw the other categories in proportion; the overall mix stays as configured.
    """
    share = cfg.c2c_share["POST"]
    mix = np.array(POST_CATEGORY_MIX)
    mix[POST_CATEGORIES.index("DOCUMENTS")] = 0.0
    mix /= mix.sum()
    p_c2c = np.array([1 - cfg.c2c_gift_share - 0.05, cfg.c2c_gift_share, 0.0, 0.0, 0.05])
    p_b2c = np.maximum(mix - share * p_c2c, 0) / max(1e-9, 1 - share)
    names = np.asarray(POST_CATEGORIES)
    return np.where(c2c, names[rng.choice(5, n, p=p_c2c)], names[rng.choice(5, n, p=p_b2c / p_b2c.sum())])
