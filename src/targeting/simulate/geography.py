"""Countries, ports, airports, hubs and routes of the simulated world (§4.2).

UN/LOCODEs are real codes where known (e.g. ECGYE Guayaquil, PABLB Balboa, KRPUS Busan); every code
has an ISO country prefix and passes the contract's LOCODE rule.
"""

from __future__ import annotations

import numpy as np

# country -> (region, trade weight, drug-source roles)
COUNTRIES: dict[str, tuple[str, float, str]] = {
    "CN": ("asia", 0.35, "nps precursor"), "JP": ("asia", 0.08, "rx"), "VN": ("asia", 0.05, "meth"),
    "TW": ("asia", 0.04, ""), "HK": ("asia", 0.03, "nps"), "TH": ("asia", 0.025, "meth"),
    "MY": ("asia", 0.02, "meth"), "SG": ("asia", 0.02, ""), "ID": ("asia", 0.015, ""),
    "PH": ("asia", 0.01, ""), "IN": ("asia", 0.02, "nps precursor rx"), "MM": ("asia", 0.003, "meth"),
    "LA": ("asia", 0.002, "meth"), "KH": ("asia", 0.002, ""),
    "MX": ("latam", 0.012, "cocaine meth"), "PA": ("latam", 0.004, "cocaine"), "CO": ("latam", 0.004, "cocaine"),
    "EC": ("latam", 0.005, "cocaine"), "PE": ("latam", 0.003, "cocaine"), "BR": ("latam", 0.006, "cocaine"),
    "CL": ("latam", 0.005, ""), "CR": ("latam", 0.002, "cocaine"), "GT": ("latam", 0.001, ""),
    "PY": ("latam", 0.001, "cocaine"),
    "DE": ("europe", 0.03, "nps"), "NL": ("europe", 0.01, "nps mdma"), "BE": ("europe", 0.005, "mdma"),
    "FR": ("europe", 0.012, ""), "ES": ("europe", 0.006, ""), "IT": ("europe", 0.01, ""),
    "PL": ("europe", 0.004, "nps"), "GB": ("europe", 0.01, ""),
    "US": ("namerica", 0.10, "cannabis meth"), "CA": ("namerica", 0.015, "cannabis"),
    "AE": ("other", 0.006, ""), "SA": ("other", 0.006, ""), "AU": ("other", 0.015, ""),
    "NZ": ("other", 0.003, ""), "ZA": ("other", 0.002, ""), "TR": ("other", 0.003, ""),
    "IL": ("other", 0.002, ""), "EG": ("other", 0.001, ""), "NG": ("other", 0.001, ""),
    "KE": ("other", 0.001, ""), "RU": ("other", 0.004, ""),
}  # fmt: skip

COUNTRY_CODES = np.array(list(COUNTRIES))
COUNTRY_INDEX = {c: i for i, c in enumerate(COUNTRY_CODES)}
TRADE_WEIGHTS = np.array([v[1] for v in COUNTRIES.values()])
LATAM = [c for c, v in COUNTRIES.items() if v[0] == "latam"]
HIGH_RISK_ORIGINS = ("EC", "CO", "PA", "PE", "BR", "CR", "PY", "MX", "TH", "MY", "MM", "LA", "VN", "NL")

# seaports of loading per country (first is the main one)
SEAPORTS: dict[str, list[str]] = {
    "CN": ["CNSHA", "CNNGB", "CNSZX", "CNTAO", "CNTXG", "CNXMN", "CNDLC"], "JP": ["JPTYO", "JPYOK", "JPOSA", "JPNGO"],
    "VN": ["VNSGN", "VNHPH"], "TW": ["TWKHH", "TWKEL"], "HK": ["HKHKG"], "TH": ["THLCH", "THBKK"],
    "MY": ["MYPKG", "MYTPP"], "SG": ["SGSIN"], "ID": ["IDJKT", "IDSUB"], "PH": ["PHMNL"], "IN": ["INNSA", "INMUN"],
    "MM": ["MMRGN"], "LA": ["THLCH"], "KH": ["KHPNH"], "MX": ["MXZLO", "MXLZC"], "PA": ["PABLB", "PAMIT"],
    "CO": ["COBUN", "COCTG"], "EC": ["ECGYE", "ECPSJ"], "PE": ["PECLL"], "BR": ["BRSSZ", "BRPNG"],
    "CL": ["CLSAI", "CLVAP"], "CR": ["CRLIO", "CRCAL"], "GT": ["GTPRQ"], "PY": ["PYASU"],
    "DE": ["DEHAM", "DEBRV"], "NL": ["NLRTM"], "BE": ["BEANR"], "FR": ["FRLEH"], "ES": ["ESVLC", "ESALG"],
    "IT": ["ITGOA"], "PL": ["PLGDN"], "GB": ["GBFXT"], "US": ["USLAX", "USLGB", "USOAK", "USSEA"],
    "CA": ["CAVAN"], "AE": ["AEJEA"], "SA": ["SAJED"], "AU": ["AUSYD", "AUMEL"], "NZ": ["NZAKL"],
    "ZA": ["ZADUR"], "TR": ["TRMER"], "IL": ["ILHFA"], "EG": ["EGPSD"], "NG": ["NGAPP"], "KE": ["KEMBA"],
    "RU": ["RUVVO"],
}  # fmt: skip
# sea transhipment hubs by the region of origin (the service rotations' calling points)
SEA_HUBS: dict[str, list[str]] = {
    "latam": ["PABLB", "PAMIT", "MXZLO", "MXLZC", "CNSHA"],
    "asia": ["SGSIN", "MYPKG", "HKHKG", "CNSHA", "CNNGB"],
    "europe": ["SGSIN", "NLRTM", "AEJEA", "CNSHA"],
    "namerica": ["USLAX", "CNSHA", "JPTYO"],
    "other": ["SGSIN", "AEJEA", "MYPKG"],
}
SEA_DISCHARGE = (["KRPUS", "KRINC", "KRPTK", "KRKAN"], [0.70, 0.15, 0.10, 0.05])

# airports: main cargo airport per country (UN/LOCODE)
AIRPORTS: dict[str, str] = {
    "CN": "CNPVG", "JP": "JPNRT", "VN": "VNSGN", "TW": "TWTPE", "HK": "HKHKG", "TH": "THBKK", "MY": "MYKUL",
    "SG": "SGSIN", "ID": "IDCGK", "PH": "PHMNL", "IN": "INBOM", "MM": "MMRGN", "LA": "LAVTE", "KH": "KHPNH",
    "MX": "MXMEX", "PA": "PAPTY", "CO": "COBOG", "EC": "ECUIO", "PE": "PELIM", "BR": "BRGRU", "CL": "CLSCL",
    "CR": "CRSJO", "GT": "GTGUA", "PY": "PYASU", "DE": "DEFRA", "NL": "NLAMS", "BE": "BEBRU", "FR": "FRCDG",
    "ES": "ESMAD", "IT": "ITMIL", "PL": "PLWAW", "GB": "GBLHR", "US": "USLAX", "CA": "CAYVR", "AE": "AEDXB",
    "SA": "SARUH", "AU": "AUSYD", "NZ": "NZAKL", "ZA": "ZAJNB", "TR": "TRIST", "IL": "ILTLV", "EG": "EGCAI",
    "NG": "NGLOS", "KE": "KENBO", "RU": "RUMOW",
}  # fmt: skip
AIR_HUBS: dict[str, list[str]] = {
    "latam": ["ESMAD", "NLAMS", "DEFRA", "QADOH", "USLAX"],
    "asia": ["CNPVG", "HKHKG", "THBKK", "SGSIN"],
    "europe": ["QADOH", "AEDXB", "DEFRA", "NLAMS"],
    "namerica": ["USLAX", "JPNRT", "USANC"],
    "other": ["AEDXB", "QADOH", "SGSIN"],
}
AIR_DISCHARGE = (["KRINC", "KRPUS"], [0.9, 0.1])  # Incheon airport, Gimhae (Busan)
POST_DISCHARGE = (["KRINC", "KRPTK"], [0.85, 0.15])  # Incheon mail centre, Pyeongtaek sea express
EXPRESS_DISCHARGE = (["KRINC", "KRPTK"], [0.80, 0.20])

# carriers: ids by mode
CARRIERS = {
    "SEA": [f"SL{i:02d}" for i in range(40)],
    "AIR": [f"AL{i:02d}" for i in range(60)],
    "POST": [f"PO{i:02d}" for i in range(30)],
    "EXPRESS": [f"EX{i:02d}" for i in range(8)],
}
EXPRESS_OPERATORS = ["DHL", "FEDEX", "UPS", "EMSKR", "CAINIAO", "SFEXPRESS", "YUNEXPRESS", "CJLOGISTICS"]
AIRLINE_CODES = ["KE", "OZ", "CX", "SQ", "LH", "AF", "EK", "QR", "CA", "MU", "NH", "JL", "TG", "VN", "5X", "FX",
                 "PO", "CV", "LD", "AM"]  # fmt: skip


def region(country: str) -> str:
    return COUNTRIES[country][0] if country in COUNTRIES else "other"
