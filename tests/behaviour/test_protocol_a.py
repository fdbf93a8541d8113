"""Protocol A on the public KCS declarations: the targets of issue 5 on the 2021 Q1 quarter."""

from __future__ import annotations

import pytest

from targeting.evaluation.kcs import TARGETS, protocol_a
from tests.helpers import KCS_DIR

pytestmark = pytest.mark.slow


def test_protocol_a_reaches_the_precision_targets() -> None:
    result = protocol_a(KCS_DIR / "df_syn_train_eng.csv", KCS_DIR / "df_syn_valid_eng.csv")
    assert result.n_test > 8000
    for metric, target in TARGETS.items():
        assert result.headline[metric] >= target, (metric, result.headline)
