"""The commodity catalogue: HS6 lines, their descriptions, unit values, packaging and usual origins (§4.4).

Each base line below expands into several HS6 subheadings (same chapter and heading, neighbouring
subheading codes with their own unit-value level), so the catalogue holds about 400 HS6 lines. The
mode mixes follow the chapter shares of §4.4; the cover goods of every pattern are in the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

VAGUE_DESCRIPTIONS = ("parts", "samples", "gift", "goods", "spare parts", "general merchandise", "accessories",
                      "clothes", "personal effects", "documents")  # fmt: skip


@dataclass(frozen=True)
class Line:
    hs6: str
    group: str  # chapter group used by the mode mixes
    descs: tuple[str, ...]
    usd_per_kg: float  # median unit value
    package: str  # UN/ECE Rec. 21 code
    reefer: bool = False
    origins: str = ""  # origin profile name ("" = mode's trade weights)


# (hs6, group, descriptions, usd/kg, package, reefer, origin profile)
_BASE: list[tuple] = [
    ("847130", "machinery", ("laptop computers", "portable computers", "notebook pc"), 120, "CT"),
    ("847150", "machinery", ("computer processing units", "server units"), 90, "CT"),
    ("848180", "machinery", ("industrial valves", "ball valves", "stainless valves"), 25, "CT"),
    ("843149", "machinery", ("excavator parts", "machinery parts for construction"), 8, "PX"),
    ("842139", "machinery", ("air filters industrial", "filtering machinery"), 18, "CT"),
    ("850440", "electrical", ("power supplies", "static converters", "battery chargers"), 35, "CT"),
    ("851762", "electrical", ("network switches", "routers", "wireless access points"), 110, "CT"),
    ("851830", "electrical", ("headphones", "earphones bluetooth", "earbuds"), 60, "CT"),
    ("851822", "electrical", ("loudspeakers", "speaker cabinets", "multimedia speakers"), 12, "CT"),
    ("854231", "electrical", ("integrated circuits", "processors ic", "microcontrollers"), 900, "CT"),
    ("853400", "electrical", ("printed circuit boards", "pcb assemblies"), 70, "CT"),
    ("850760", "electrical", ("lithium ion batteries", "battery packs"), 30, "CT"),
    ("290110", "chemicals", ("hexane", "saturated hydrocarbons"), 1.2, "DR", False, "chem"),
    ("291521", "chemicals", ("acetic acid", "glacial acetic acid"), 0.9, "DR", False, "chem"),
    (
        "291590",
        "chemicals",
        ("carboxylic acids", "organic acid esters", "chemical raw material"),
        3.5,
        "DR",
        False,
        "chem",
    ),
    (
        "291639",
        "chemicals",
        ("aromatic monocarboxylic acids", "phenylacetic derivatives"),
        6,
        "DR",
        False,
        "chem",
    ),
    ("293299", "chemicals", ("heterocyclic compounds", "organic intermediates"), 15, "DR", False, "chem"),
    (
        "293359",
        "chemicals",
        ("pyrimidine derivatives", "pharmaceutical intermediates"),
        40,
        "DR",
        False,
        "chem",
    ),
    ("292249", "chemicals", ("amino acids", "amino compounds"), 12, "BG", False, "chem"),
    (
        "382499",
        "chemicals",
        ("chemical preparations", "industrial chemical mixture", "reagent"),
        4,
        "DR",
        False,
        "chem",
    ),
    ("380899", "chemicals", ("disinfectants", "cleaning preparations"), 2.5, "DR", False, "chem"),
    ("320820", "chemicals", ("acrylic resin paint", "coating resin"), 3.2, "DR"),
    ("321410", "chemicals", ("glazing putty", "plaster filler", "sealing compound"), 1.5, "DR"),
    ("252020", "stone", ("plaster", "gypsum plaster", "building plaster"), 0.3, "BG"),
    ("390110", "plastics", ("polyethylene granules", "ldpe resin"), 1.3, "BG"),
    ("392690", "plastics", ("plastic articles", "plastic household articles", "silicone sets"), 4.5, "CT"),
    ("392410", "plastics", ("plastic tableware", "kitchenware plastic", "cups"), 3.8, "CT"),
    ("721049", "steel", ("galvanised steel sheet", "zinc coated coils"), 0.8, "PX"),
    ("730630", "steel", ("steel tubes", "welded pipes", "metal tubing"), 1.1, "PX"),
    ("731815", "steel", ("bolts", "screws steel", "fasteners"), 2.4, "CT"),
    ("870899", "vehicles", ("auto parts", "vehicle parts", "car accessories"), 7, "CT"),
    ("870830", "vehicles", ("brake pads", "brake parts"), 6, "CT"),
    ("871200", "vehicles", ("bicycles", "bicycle frames"), 9, "CT"),
    ("610910", "apparel", ("cotton t-shirts", "t-shirts", "knitted tops"), 18, "CT"),
    ("620342", "apparel", ("cotton trousers", "jeans", "denim pants"), 20, "CT"),
    ("640399", "apparel", ("leather shoes", "footwear", "sneakers"), 30, "CT"),
    ("611030", "apparel", ("sweaters synthetic", "pullovers"), 22, "CT"),
    ("020230", "meat", ("frozen boneless beef", "beef cuts frozen"), 6, "CT", True),
    ("030389", "meat", ("frozen fish", "frozen mackerel"), 3, "CT", True),
    ("030617", "meat", ("frozen shrimp", "frozen prawns"), 9, "CT", True),
    ("940360", "furniture", ("wooden furniture", "tables and chairs"), 4, "PK"),
    ("940161", "furniture", ("upholstered seats", "sofas"), 5, "PK"),
    (
        "080390",
        "fruit",
        ("fresh bananas", "bananas cavendish", "green bananas"),
        0.7,
        "CT",
        True,
        "latam_fruit",
    ),
    ("080430", "fruit", ("fresh pineapples", "pineapples golden"), 0.8, "CT", True, "latam_fruit"),
    ("080440", "fruit", ("fresh avocados", "hass avocados"), 2.2, "CT", True, "latam_fruit"),
    ("081320", "fruit", ("dried prunes", "dried fruit", "dried fruit snacks"), 4, "CT", False, "asia_food"),
    ("080610", "fruit", ("fresh grapes", "table grapes"), 2.5, "CT", True, "latam_fruit"),
    ("071410", "fruit", ("cassava", "frozen cassava"), 0.6, "CT", True, "latam_fruit"),
    ("440799", "wood", ("sawn timber", "hardwood lumber"), 0.6, "PX"),
    ("441400", "wood", ("wooden picture frames", "photo frames", "mirror frames"), 6, "CT"),
    ("690722", "stone", ("ceramic tiles", "floor tiles", "porcelain tiles"), 0.5, "PX"),
    ("680221", "stone", ("marble slabs", "stone tiles", "granite slabs"), 0.4, "PX"),
    ("950300", "toys", ("toys", "plastic toys", "educational toys"), 10, "CT"),
    ("950450", "toys", ("video game consoles", "game controllers"), 80, "CT"),
    ("090240", "tea", ("black tea", "oolong tea", "tea leaves"), 8, "CT", False, "asia_tea"),
    ("090210", "tea", ("green tea", "green tea leaves", "chinese tea"), 12, "CT", False, "asia_tea"),
    (
        "090111",
        "tea",
        ("green coffee beans", "coffee beans unroasted", "arabica coffee"),
        4,
        "BG",
        False,
        "coffee",
    ),
    ("210120", "tea", ("tea extracts", "instant tea", "tea concentrate"), 9, "CT", False, "asia_tea"),
    ("170199", "sugar", ("refined sugar", "cane sugar", "white sugar"), 0.5, "BG", False, "coffee"),
    ("300490", "pharma", ("medicines", "pharmaceutical products", "tablets"), 150, "CT"),
    ("300450", "pharma", ("vitamin preparations", "multivitamin tablets"), 60, "CT"),
    ("330499", "cosmetics", ("skin care", "face cream", "cosmetic creams", "skin care products"), 45, "CT"),
    ("330300", "cosmetics", ("perfume", "eau de toilette"), 80, "CT"),
    ("330741", "cosmetics", ("incense", "aromatic preparations"), 15, "CT"),
    ("330790", "cosmetics", ("bath salts", "bath preparations", "toiletries"), 12, "CT"),
    ("210690", "food", ("health supplement", "food supplements", "protein powder", "vitamins"), 25, "CT"),
    ("170490", "food", ("candy", "sugar confectionery", "gummies"), 6, "CT"),
    ("180690", "food", ("chocolate", "chocolate bars", "cocoa confectionery"), 9, "CT"),
    ("190590", "food", ("biscuits", "snacks", "crackers"), 5, "CT"),
    ("200899", "food", ("preserved fruit", "fruit snacks"), 4, "CT", False, "asia_food"),
    ("220210", "food", ("iced tea drinks", "soft drinks", "flavoured water"), 1.0, "CT", False, "asia_food"),
    ("240412", "food", ("e-liquid", "vape liquid", "nicotine pouches"), 40, "CT"),
    ("854370", "electrical", ("electronic cigarette devices", "vape pens", "vaporizers"), 60, "CT"),
    ("420222", "bags", ("handbags", "shoulder bags", "tote bags"), 35, "CT"),
    ("420292", "bags", ("travel bags", "backpacks", "sports bags"), 20, "CT"),
    ("490199", "books", ("books", "printed books", "novels"), 12, "CT"),
    ("852349", "books", ("dvd", "recorded media", "music cds"), 25, "CT"),
    ("711719", "jewellery", ("imitation jewellery", "fashion jewellery", "bracelets"), 80, "CT"),
    ("711319", "jewellery", ("gold jewellery", "precious metal jewellery"), 9000, "CT"),
    ("960190", "misc", ("ornaments", "decorative articles", "figurines"), 12, "CT"),
    ("961900", "misc", ("sanitary towels", "diapers"), 3, "CT"),
    ("970190", "misc", ("paintings", "handicrafts", "artwork"), 50, "CT"),
    ("841451", "misc", ("electric fans", "desk fans", "table fans"), 6, "CT"),
    ("830241", "misc", ("door stops", "door fittings", "hardware fittings"), 5, "CT"),
    ("570500", "misc", ("mats", "floor mats", "carpets"), 4, "BL"),
    ("901890", "instruments", ("medical instruments", "surgical instruments"), 200, "CT"),
    ("902780", "instruments", ("laboratory instruments", "analysers"), 300, "CT"),
    ("901380", "instruments", ("optical devices", "lcd modules"), 150, "CT"),
    ("847989", "machinery", ("pill making machine", "tablet press", "industrial machines"), 30, "CS"),
]

#: origin profiles: country weights for lines with typical origins (legitimate look-alikes)
ORIGIN_PROFILES: dict[str, dict[str, float]] = {
    "latam_fruit": {
        "EC": 0.35,
        "CO": 0.15,
        "CR": 0.15,
        "PA": 0.05,
        "PE": 0.1,
        "CL": 0.1,
        "GT": 0.05,
        "MX": 0.05,
    },
    "asia_tea": {"CN": 0.5, "TW": 0.15, "TH": 0.1, "JP": 0.1, "VN": 0.08, "IN": 0.07},
    "asia_food": {"CN": 0.3, "TH": 0.2, "VN": 0.15, "MY": 0.1, "PH": 0.1, "ID": 0.1, "US": 0.05},
    "chem": {"CN": 0.55, "IN": 0.2, "DE": 0.08, "JP": 0.07, "US": 0.05, "TH": 0.05},
    "coffee": {"BR": 0.3, "CO": 0.2, "VN": 0.2, "ET": 0.0, "GT": 0.1, "PE": 0.1, "MX": 0.1},
}

#: chapter-group shares by mode (§4.4 table), for legitimate consignments
MODE_MIX: dict[str, dict[str, float]] = {
    "SEA": {"machinery": 0.12, "electrical": 0.08, "chemicals": 0.08, "plastics": 0.08, "steel": 0.08, "vehicles": 0.06,
            "apparel": 0.06, "meat": 0.04, "furniture": 0.04, "fruit": 0.03, "wood": 0.03, "stone": 0.03, "toys": 0.02,
            "tea": 0.01, "sugar": 0.01, "misc": 0.08, "food": 0.05, "bags": 0.02, "instruments": 0.02, "cosmetics": 0.02,
            "pharma": 0.01, "books": 0.01, "jewellery": 0.02},
    "AIR": {"electrical": 0.30, "machinery": 0.15, "instruments": 0.08, "pharma": 0.06, "apparel": 0.06,
            "cosmetics": 0.05, "meat": 0.02, "fruit": 0.02, "chemicals": 0.03, "jewellery": 0.03, "toys": 0.02,
            "tea": 0.01, "misc": 0.07, "food": 0.04, "bags": 0.03, "books": 0.02, "plastics": 0.01},
    "EXPRESS": {"apparel": 0.20, "cosmetics": 0.12, "electrical": 0.12, "food": 0.10, "plastics": 0.08, "toys": 0.06,
                "bags": 0.05, "books": 0.04, "jewellery": 0.04, "misc": 0.05, "pharma": 0.02, "documents": 0.04,
                "instruments": 0.02, "tea": 0.02, "machinery": 0.02, "vehicles": 0.02, "chemicals": 0.01},
    "POST": {"apparel": 0.20, "cosmetics": 0.12, "electrical": 0.12, "food": 0.10, "plastics": 0.08, "toys": 0.06,
             "bags": 0.05, "books": 0.04, "jewellery": 0.04, "misc": 0.05, "pharma": 0.02, "documents": 0.04,
             "instruments": 0.02, "tea": 0.02, "machinery": 0.02, "vehicles": 0.02, "chemicals": 0.01},
}  # fmt: skip

SUB_SPREAD = 4  # HS6 subheadings generated per base line


def _expand() -> list[Line]:
    lines: list[Line] = []
    for entry in _BASE:
        hs6, group, descs, usd, pkg = entry[:5]
        reefer = entry[5] if len(entry) > 5 else False
        origins = entry[6] if len(entry) > 6 else ""
        lines.append(Line(hs6, group, descs, usd, pkg, reefer, origins))
        # neighbouring subheadings of the same heading: same goods family, own price level
        for k in range(1, SUB_SPREAD):
            sub = f"{hs6[:4]}{(int(hs6[4:]) + 10 * k) % 100:02d}"
            factor = float(np.exp(0.35 * ((k % 3) - 1)))
            lines.append(Line(sub, group, tuple(f"{d}" for d in descs[::-1]) if k % 2 else descs, usd * factor,
                              pkg, reefer, origins))  # fmt: skip
    seen: dict[str, Line] = {}
    for line in lines:
        seen.setdefault(line.hs6, line)
    return list(seen.values())


LINES: list[Line] = _expand()
DOCUMENTS_GROUP = "documents"


def catalogue_frame() -> pd.DataFrame:
    """The catalogue as a table (one row per HS6 line)."""
    return pd.DataFrame(
        {
            "hs6": [ln.hs6 for ln in LINES],
            "group": [ln.group for ln in LINES],
            "usd_per_kg": [ln.usd_per_kg for ln in LINES],
            "package": [ln.package for ln in LINES],
            "reefer": [ln.reefer for ln in LINES],
            "origins": [ln.origins for ln in LINES],
        }
    )


_LINE_INDEX: dict[str, int] = {}
for _i, _ln in enumerate(LINES):
    _LINE_INDEX.setdefault(_ln.hs6, _i)


def line_index(hs6: str) -> int:
    """Position of the (first) catalogue line with this HS6 code; KeyError if there is none."""
    return _LINE_INDEX[hs6]
