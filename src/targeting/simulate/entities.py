"""The entity registry (§4.3): importers, private addressees, exporters, forwarders, declarants, vessels.

Entities are rows of numpy arrays (vectorised sampling); their ids and hashed contact tokens are
formatted to strings only when a day's declarations are written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from targeting.simulate.catalogue import MODE_MIX
from targeting.simulate.config import SimConfig
from targeting.simulate.geography import COUNTRY_CODES, TRADE_WEIGHTS

GROUPS = sorted({g for mix in MODE_MIX.values() for g in mix})
GROUP_INDEX = {g: i for i, g in enumerate(GROUPS)}

# token spaces (ints) kept apart so that hashes never collide across kinds
IMPORTER_TOKENS = 1_000_000_000
PERSON_TOKENS = 2_000_000_000
NETWORK_TOKENS = 3_000_000_000


def zipf_weights(rng: np.random.Generator, n: int, a: float = 1.1) -> np.ndarray:
    ranks = rng.permutation(n) + 1
    w = 1.0 / ranks**a
    return w / w.sum()


@dataclass
class Registry:
    # importers (ORG consignees)
    imp_group: np.ndarray
    imp_weight: np.ndarray
    imp_start: np.ndarray  # first active day (negative: existed before the simulation)
    imp_end: np.ndarray
    imp_addr_type: np.ndarray  # index into ADDR_TYPES_ORG
    imp_taxid: np.ndarray
    # private addressees
    per_weight: np.ndarray
    per_cdf: np.ndarray  # cumulative weights: inverse-CDF draws are 7x faster than choice(p=...)
    per_addr: np.ndarray  # household address token
    per_taxid: np.ndarray
    per_email: np.ndarray  # 1 = has an e-mail on file
    # exporters
    exp_country: np.ndarray
    exp_group: np.ndarray
    exp_weight: np.ndarray
    exp_by_country_start: np.ndarray
    exp_by_country_count: np.ndarray
    exp_order: np.ndarray
    # intermediaries
    fwd_weight: np.ndarray
    dcl_weight: np.ndarray
    n_vessels: int

    @property
    def n_importers(self) -> int:
        return len(self.imp_group)

    @property
    def n_persons(self) -> int:
        return len(self.per_weight)


ADDR_TYPES_ORG = np.array(["COMMERCIAL", "FORWARDER_WAREHOUSE", "C_O", "UNKNOWN"])


def draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """`n` indices drawn with the weights whose cumulative sum is `cdf`."""
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(cdf) - 1)


def build_registry(cfg: SimConfig, rng: np.random.Generator) -> Registry:
    s = cfg.entity_scale
    n_imp = max(200, int(cfg.n_importers * s))
    n_per = max(2_000, int(cfg.n_persons * s))
    n_exp = max(300, int(cfg.n_exporters * s))
    n_fwd = max(40, int(cfg.n_forwarders * s))
    n_dcl = max(60, int(cfg.n_declarants * s))

    # importers: most exist before day 0; churn brings new ones in at the monthly rate
    n_new = int(n_imp * cfg.importer_churn_per_month * cfg.days / 30)
    start = np.concatenate([-rng.integers(30, 3000, n_imp - n_new), rng.integers(0, cfg.days, n_new)])
    life = rng.exponential(1 / (cfg.importer_churn_per_month / 30), n_imp)
    end = np.where(start < 0, rng.integers(0, cfg.days * 3 + 1, n_imp), start + life).astype(np.int64)
    group = rng.choice(len(GROUPS), n_imp, p=_group_prior())
    weight = zipf_weights(rng, n_imp, 1.05)

    exp_country = rng.choice(len(COUNTRY_CODES), n_exp, p=TRADE_WEIGHTS / TRADE_WEIGHTS.sum())
    order = np.argsort(exp_country, kind="stable")
    counts = np.bincount(exp_country, minlength=len(COUNTRY_CODES))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    per_households = max(1, int(n_per / 2.2))
    per_weight = _lognormal_weights(rng, n_per)
    return Registry(
        imp_group=group,
        imp_weight=weight,
        imp_start=start.astype(np.int64),
        imp_end=end,
        imp_addr_type=rng.choice(len(ADDR_TYPES_ORG), n_imp, p=[0.93, 0.03, 0.02, 0.02]),
        imp_taxid=rng.random(n_imp) < 0.97,
        per_weight=per_weight,
        per_cdf=np.cumsum(per_weight),
        per_addr=rng.integers(0, per_households, n_per),
        per_taxid=rng.random(n_per) < 0.92,
        per_email=rng.random(n_per) < 0.8,
        exp_country=exp_country,
        exp_group=rng.choice(len(GROUPS), n_exp, p=_group_prior()),
        exp_weight=zipf_weights(rng, n_exp, 0.9),
        exp_by_country_start=starts,
        exp_by_country_count=counts,
        exp_order=order,
        fwd_weight=zipf_weights(rng, n_fwd, 1.0),
        dcl_weight=zipf_weights(rng, n_dcl, 1.0),
        n_vessels=max(40, int(cfg.n_vessels * min(1.0, s * 2))),
    )


def _lognormal_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    w = rng.lognormal(0.0, 1.2, n)
    return w / w.sum()


def _group_prior() -> np.ndarray:
    w = np.zeros(len(GROUPS))
    for mix in MODE_MIX.values():
        for g, share in mix.items():
            w[GROUP_INDEX[g]] += share
    return w / w.sum()
