"""Configuration of the simulated customs world (domain-research.md §4); every number is a value here.

Presets: `tiny` (14 days, unit tests), `small` (180 days at one tenth of `dev`), `dev` (365 days,
about 3.1 M declarations), `full` (730 days, twice the `dev` volumes). Drift days are given for the
365-day year and scaled to the preset's length, so a short world still sees every event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from targeting.errors import ConfigError

MODES = ("SEA", "AIR", "EXPRESS", "POST")


@dataclass(frozen=True)
class SimConfig:
    preset: str = "dev"
    seed: int = 7
    days: int = 365
    start_date: str = "2023-01-01"
    #: declarations per day by mode (before seasonality and growth)
    volumes: dict[str, float] = field(
        default_factory=lambda: {"SEA": 400, "AIR": 1200, "EXPRESS": 4000, "POST": 3000}
    )
    #: scales the entity registry with the volumes (1 = dev)
    entity_scale: float = 1.0
    prevalence_multiplier: float = 1.0

    # --- calendar (§4.1)
    sunday_factor: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.5, "AIR": 0.7, "EXPRESS": 0.8, "POST": 0.0}
    )
    peak_factor: float = 1.6  # EXPRESS/POST around 11 Nov and Black Friday
    lunar_new_year_dip: float = 0.4  # CN-origin volume -40 % for 7 days
    lunar_new_year_day: int = 21  # day of year (2023-01-22)

    # --- entities (§4.3, dev counts; multiplied by entity_scale)
    n_importers: int = 25_000
    n_persons: int = 1_500_000
    n_exporters: int = 20_000
    n_forwarders: int = 800
    n_declarants: int = 1_500
    n_vessels: int = 600
    importer_churn_per_month: float = 0.03

    # --- legitimate goods (§4.4)
    vague_share: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.06, "AIR": 0.06, "EXPRESS": 0.10, "POST": 0.12}
    )
    person_consignee_share: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.0, "AIR": 0.05, "EXPRESS": 0.85, "POST": 0.85}
    )
    transhipment_share: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.45, "AIR": 0.30, "EXPRESS": 0.2, "POST": 0.1}
    )
    cash_freight_share: float = 0.01
    #: consumer-to-consumer parcels (PERSON sender) and how they differ: gifts, vague text, low value
    c2c_share: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.0, "AIR": 0.0, "EXPRESS": 0.25, "POST": 0.25}
    )
    c2c_gift_share: float = 0.55
    c2c_vague_share: float = 0.30
    c2c_value_usd: float = 12.0
    #: items declared without a tariff number (CN22 forms often carry none)
    hs_missing_share: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.0, "AIR": 0.0, "EXPRESS": 0.03, "POST": 0.15}
    )
    sea_amendment_share: float = 0.10
    air_transit_cargo_share: float = 0.10
    post_value_le_1_share: float = 0.08
    non_drug_violation_rate: float = 0.02
    #: share of each mode's legitimate traffic drawn with a pattern's cover goods and origins
    lookalike_share: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.08, "AIR": 0.08, "EXPRESS": 0.15, "POST": 0.15}
    )

    # --- inspections (§4.7): budget per mode as a share of the day's declarations
    inspection_rate: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.036, "AIR": 0.038, "EXPRESS": 0.015, "POST": 0.010}
    )
    #: shares of the budget; RULE takes whatever MODEL does not use
    share_rule: float = 0.65
    share_officer: float = 0.10
    share_random: float = 0.10
    share_model: float = 0.0
    rule_noise_sd: float = 1.0
    officer_temperature: float = 0.7
    intel_tip_prob: dict[str, float] = field(
        default_factory=lambda: {"SEA": 0.15, "AIR": 0.08, "EXPRESS": 0.02, "POST": 0.02}
    )
    intel_tip_linked_prob: float = 0.30
    post_xray_share: float = 0.30
    express_xray_share: float = 0.0
    post_presented: float = 0.9
    controlled_delivery_prob: float = 0.3
    watchlist_lag_days: tuple[int, int] = (1, 7)

    # --- networks (§4.5-4.6)
    reuse_after_seizure_prob: float = 0.6
    avoidance_threshold: float = 0.25
    avoidance_window_days: int = 60

    # --- drift (§4.9), days of a 365-day year
    d1_start: int = 120
    d1_end: int = 210
    d3_period: int = 90
    d4_day: int = 200
    d5_enabled: bool = False
    d5_start: int = 150
    d5_end: int = 240
    d6_day: int = 270
    busan_mx_growth: float = 0.33
    ecommerce_growth: float = 0.10

    def drift_day(self, day365: int) -> int:
        """A drift day of the 365-day calendar, scaled to this world's length."""
        return int(round(day365 * self.days / 365))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DEV_VOLUMES = {"SEA": 400, "AIR": 1200, "EXPRESS": 4000, "POST": 3000}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"days": 14, "volumes": {"SEA": 50, "AIR": 150, "EXPRESS": 400, "POST": 400}, "entity_scale": 0.1,
             "prevalence_multiplier": 5.0},
    "small": {"days": 180, "volumes": {m: v / 10 for m, v in _DEV_VOLUMES.items()}, "entity_scale": 0.1,
              "prevalence_multiplier": 3.0},
    "dev": {"days": 365, "volumes": dict(_DEV_VOLUMES), "entity_scale": 1.0},
    "full": {"days": 730, "volumes": {"SEA": 800, "AIR": 2500, "EXPRESS": 8000, "POST": 6000}, "entity_scale": 2.0},
}  # fmt: skip


def preset(name: str, **overrides: Any) -> SimConfig:
    """The named preset with any field overridden (`seed=3`, `prevalence_multiplier=5`, ...)."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: must be one of {', '.join(PRESETS)}, got {name!r}")
    base = SimConfig(preset=name, **PRESETS[name])
    fields = set(SimConfig.__dataclass_fields__)
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown simulator setting(s): {', '.join(sorted(unknown))}")
    cfg = replace(base, **overrides)
    if cfg.days < 1:
        raise ConfigError("days: must be >= 1")
    if cfg.prevalence_multiplier < 0:
        raise ConfigError("prevalence_multiplier: must be >= 0")
    return cfg
