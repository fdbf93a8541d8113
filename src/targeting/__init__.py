"""targeting: machine-learning shipment targeting for customs (drugs, NPS, precursors)."""

__version__ = "0.1.0"
