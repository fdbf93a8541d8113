"""The review report draws the same pictures in worker processes as in process."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_report_waterfalls_drawn_by_worker_processes_equal_those_drawn_in_process(monkeypatch) -> None:
    """From PARALLEL_CARDS cards on, two spawned processes draw the waterfalls: the same pictures, in card
    order, with None kept for a card without explanations."""
    import targeting.scoring.report as report

    rng = np.random.default_rng(0)
    labels = ["consignee history", "route and origin", "declared value vs peers", "goods description"]
    per_card = [pd.DataFrame({"label": labels, "contribution": rng.normal(size=4)}) for _ in range(17)]
    per_card[3] = None
    parallel = report.waterfalls(per_card, -3.0)
    monkeypatch.setattr(report, "PARALLEL_CARDS", 10**6)
    serial = report.waterfalls(per_card, -3.0)
    assert parallel[3] is None and all(
        p.startswith("data:image/png;base64,") for i, p in enumerate(parallel) if i != 3
    )
    assert parallel == serial
