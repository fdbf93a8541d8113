"""The history store is point-in-time: no outcome known after a row's filing time reaches its features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from targeting.history.store import HistoryStore


def test_prior_declarations_match_the_generators_counter(world) -> None:
    decl, insp, truth = world
    h = HistoryStore.from_tables(decl, insp).as_of(decl)
    # the store counts strictly earlier filings; the generator also counts an earlier row filed in the
    # same second, so rows sharing (consignee, second) are left out of the comparison
    tied = decl.duplicated(["consignee_id", "filed_at"], keep=False).to_numpy()
    assert tied.sum() < 0.01 * len(decl)
    assert (h["h_consignee_decl"].to_numpy()[~tied] == truth["consignee_prior_decl"].to_numpy()[~tied]).all()


def test_flipping_outcomes_after_a_cutoff_changes_no_earlier_feature(world) -> None:
    decl, insp, _ = world
    cutoff = decl["filed_at"].min() + pd.Timedelta(days=7)
    flipped = insp.copy()
    later = flipped["exam_at"] >= cutoff
    flipped.loc[later, "result"] = np.where(
        flipped.loc[later, "result"] == "NO_FINDING", "DRUG", "NO_FINDING"
    )
    before = decl[decl["filed_at"] < cutoff]
    a = HistoryStore.from_tables(decl, insp).as_of(before)
    b = HistoryStore.from_tables(decl, flipped).as_of(before)
    pd.testing.assert_frame_equal(a, b)
    after = decl[decl["filed_at"] >= cutoff + pd.Timedelta(days=3)]
    assert (
        not HistoryStore.from_tables(decl, insp)
        .as_of(after)
        .equals(HistoryStore.from_tables(decl, flipped).as_of(after))
    )


def test_a_seizure_today_counts_for_tomorrows_linked_rows(world) -> None:
    decl, insp, _ = world
    hit = insp[insp["result"].isin(["DRUG", "PRECURSOR"])].iloc[0]
    row = decl[decl["declaration_id"] == hit["declaration_id"]].iloc[0]
    later = row.copy()
    later["declaration_id"] = "NEW-1"
    later["consignee_id"] = "NEW-CONSIGNEE"  # a new name, the same phone
    later["filed_at"] = hit["exam_at"] + pd.Timedelta(hours=1)
    h = HistoryStore.from_tables(decl, insp).as_of(pd.DataFrame([later]))
    assert h["h_phone_hits"].iloc[0] >= 1
    assert h["h_consignee_decl"].iloc[0] == 0
