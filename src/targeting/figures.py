"""Matplotlib figures as data URIs, for the self-contained HTML pages (the review report, the monitor)."""

from __future__ import annotations

import base64
import io
from typing import Any


def png_data_uri(fig: Any) -> str:
    """The figure as an embedded PNG (`data:image/png;base64,...`); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
