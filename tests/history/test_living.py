"""The living history: days added one at a time (`history add`), an index saved part way and the later days
answered as its delta, give exactly the answers of the reference (`HistoryStore.as_of` over everything):
late outcomes, outcomes arriving out of order, an outcome amended by a later inspection, ties in time,
keys never seen, rows stored and rows new. Adds are atomic and idempotent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from targeting.contract.io import write_tables
from targeting.history.add import add
from targeting.history.folder import build_index, load_fresh
from targeting.history.layout import committed_files, read_manifest
from targeting.history.source import HistorySource
from targeting.history.store import HistoryStore

LOCODES = ["CNSHA", "NLRTM", "MXZLO", "THBKK"]


def _world(seed: int, n: int = 700, days: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contract-valid declarations over `days` days (few entities: many collisions; missing values; ties in
    time) and inspections: late, out of order, some declarations inspected twice on different days."""
    rng = np.random.default_rng(seed)

    def pick(pool: list[str], p_missing: float = 0.1) -> pd.Series:
        return pd.Series(np.where(rng.random(n) < p_missing, None, rng.choice(pool, n)), dtype="str")

    filed = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, days * 24, n) * 3600, unit="s")
    decl = pd.DataFrame({
        "declaration_id": [f"D{i:05d}" for i in range(n)], "mode": "SEA", "filed_at": filed.astype("datetime64[us, UTC]"),
        "origin_country": pick(["CN", "NL", "MX", "TH"], 0.0), "consignor_id": pick([f"S{i}" for i in range(40)], 0.0),
        "consignee_id": pick([f"C{i}" for i in range(25)], 0.0), "goods_desc": "goods", "gross_weight_kg": 1.5,
        "forwarder_id": pick(["F1", "F2", "F3"], 0.5), "declarant_id": pick(["A1", "A2"]),
        "consignee_phone_hash": pick([f"p{i}" for i in range(15)]),
        "consignee_email_hash": pick([f"e{i}" for i in range(15)], 0.4),
        "consignee_addr_hash": pick([f"a{i}" for i in range(12)]), "load_loc": pick(LOCODES),
        "transit_locs": pick(["PABLB", "PABLB;MXZLO"], 0.7), "discharge_loc": pick(["KRPUS", "KRINC"], 0.0),
    })  # fmt: skip
    inspected = rng.choice(n, n // 4, replace=False)
    first = decl["filed_at"].iloc[inspected].to_numpy() + pd.to_timedelta(rng.integers(1, 96, len(inspected)), unit="h")
    again = inspected[: len(inspected) // 5]  # a second exam days later (a lab result after a scan)
    insp = pd.DataFrame({
        "declaration_id": decl["declaration_id"].to_numpy()[np.r_[inspected, again]],
        "selection_reason": "RULE", "selection_propensity": 1.0,
        "exam_type": ["NII_XRAY"] * len(inspected) + ["LAB"] * len(again),
        "exam_at": np.r_[first, first[: len(again)] + pd.to_timedelta(rng.integers(24, 240, len(again)), unit="h")],
        "result": np.where(rng.random(len(inspected) + len(again)) < 0.3, "DRUG", "NO_FINDING"),
    })  # fmt: skip
    insp["exam_at"] = pd.to_datetime(insp["exam_at"], utc=True).astype("datetime64[us, UTC]")
    return decl, insp


def _add_days(folder: Path, decl: pd.DataFrame, insp: pd.DataFrame, days: list[pd.Timestamp], tmp: Path,
              index_after: int | None = None) -> None:  # fmt: skip
    """Each day: its declarations and the outcomes that became known that day, as the daily loop adds them."""
    for k, day in enumerate(days):
        end = day + pd.Timedelta(days=1)
        d = decl[(decl["filed_at"] >= day) & (decl["filed_at"] < end)]
        o = insp[(insp["exam_at"] >= day) & (insp["exam_at"] < end)]
        files = {}
        if len(d):
            files["decl"] = tmp / f"decl-{k}.parquet"
        if len(o):
            files["out"] = tmp / f"out-{k}.parquet"
        write_tables({files["decl"]: d} if "decl" in files else {})
        write_tables({files["out"]: o} if "out" in files else {})
        result = add(folder, [files["decl"]] if "decl" in files else [], [files["out"]] if "out" in files else [])
        assert len(result.rejects) == 0, result.rejects["reject_reason"].tolist()[:3]
        if index_after is not None and k == index_after:
            build_index(folder, "hit")


def _days(decl: pd.DataFrame, insp: pd.DataFrame) -> list[pd.Timestamp]:
    start = decl["filed_at"].min().floor("D")
    end = max(decl["filed_at"].max(), insp["exam_at"].max()).floor("D")
    return list(pd.date_range(start, end, freq="D"))


def _queries(decl: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Stored rows (scored again), new rows at new and at old times, a repeated id, values never seen."""
    stored = decl.sample(80, random_state=int(rng.integers(1 << 30)))
    new = decl.sample(60, random_state=int(rng.integers(1 << 30))).copy()
    new["declaration_id"] = [f"N{i}" for i in range(len(new))]
    new["filed_at"] = new["filed_at"] + pd.to_timedelta(rng.integers(-200, 400, len(new)), unit="h")
    new.loc[new.index[:5], "consignee_id"] = "NEVER-SEEN"
    return pd.concat([stored, new, new.iloc[[3]]])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_days_added_one_at_a_time_and_answered_with_a_delta_equal_the_reference(tmp_path, seed) -> None:
    decl, insp = _world(seed)
    days = _days(decl, insp)
    reference = HistoryStore.from_tables(decl, insp, "hit")
    queries = _queries(decl, np.random.default_rng(seed))
    expected = reference.as_of(queries)
    for label, index_after in (("no index", None), ("index part way", len(days) // 2), ("index at the end", len(days) - 1)):
        folder = tmp_path / label.replace(" ", "-")
        _add_days(folder, decl, insp, days, tmp_path, index_after)
        source = HistorySource(folder, "hit")
        saved = source.saved_index()
        assert (saved is not None) == (index_after is not None)
        if label == "index part way":
            assert len(saved.delta.declarations) and len(saved.delta.outcomes)  # the days after the index
        for threads in (1, 2):
            got = source.annotate(queries, threads)[expected.columns]
            pd.testing.assert_frame_equal(got, expected, check_names=False, obj=f"{label}, {threads} thread(s)")


def test_days_added_one_at_a_time_hold_what_one_add_of_everything_holds(tmp_path) -> None:
    decl, insp = _world(4)
    _add_days(tmp_path / "daily", decl, insp, _days(decl, insp), tmp_path)
    write_tables({tmp_path / "all-decl.parquet": decl, tmp_path / "all-out.parquet": insp})
    add(tmp_path / "once", [tmp_path / "all-decl.parquet"], [tmp_path / "all-out.parquet"])
    for table, key in (("declarations", ["declaration_id"]), ("outcomes", ["declaration_id", "exam_at"])):
        daily, once = (pd.concat([pd.read_parquet(f) for f in committed_files(tmp_path / name, table)])
                       .sort_values(key).reset_index(drop=True) for name in ("daily", "once"))  # fmt: skip
        pd.testing.assert_frame_equal(daily, once)
    assert read_manifest(tmp_path / "once").version == 1 and read_manifest(tmp_path / "daily").version > 20


def test_an_indexed_hit_moved_by_a_later_outcome_is_answered_from_the_store(tmp_path) -> None:
    """The rare amendment the index cannot answer around (an earlier hit recorded after a later one was
    indexed) falls back to the store, with the reference's answers."""
    decl, insp = _world(5, n=120, days=6)
    hit = insp[insp["result"] == "DRUG"].iloc[0]
    insp = insp[insp["declaration_id"] != hit["declaration_id"]]
    late = pd.DataFrame([hit, hit]).reset_index(drop=True)
    late.loc[1, "exam_at"] = hit["exam_at"] - pd.Timedelta(hours=1)  # an earlier hit, recorded later
    late.loc[1, "exam_type"] = "LAB"
    folder = tmp_path / "h"
    write_tables({tmp_path / "d.parquet": decl, tmp_path / "o.parquet": pd.concat([insp, late.iloc[[0]]])})
    add(folder, [tmp_path / "d.parquet"], [tmp_path / "o.parquet"])
    build_index(folder, "hit")
    write_tables({tmp_path / "o2.parquet": late.iloc[[1]]})
    add(folder, [], [tmp_path / "o2.parquet"])
    queries = _queries(decl, np.random.default_rng(5))
    expected = HistoryStore.from_tables(decl, pd.concat([insp, late]), "hit").as_of(queries)
    pd.testing.assert_frame_equal(HistorySource(folder, "hit").annotate(queries)[expected.columns], expected,
                                  check_names=False)  # fmt: skip


def test_the_history_refuses_duplicates_unknown_and_premature_outcomes_and_adds_nothing_twice(tmp_path) -> None:
    decl, insp = _world(6, n=100, days=5)
    write_tables({tmp_path / "d.parquet": decl.iloc[:80], tmp_path / "o.parquet": insp})
    folder = tmp_path / "h"
    first = add(folder, [tmp_path / "d.parquet"], [tmp_path / "o.parquet"])
    reasons = first.rejects["reject_reason"].tolist()
    assert first.declarations_added == 80 and all("references no known declaration" in r for r in reasons)
    assert first.outcomes_added + len(reasons) == len(insp)
    again = add(folder, [tmp_path / "d.parquet"], [tmp_path / "o.parquet"])
    assert again.declarations_added == 0 and again.outcomes_added == 0 and again.version == first.version
    assert again.outcomes_skipped == first.outcomes_added
    assert set(again.rejects.query("table == 'declarations'")["reject_reason"]) == {
        "declaration_id: already in the history (ids are unique across it)"}
    early = insp.iloc[[0]].assign(exam_at=decl.set_index("declaration_id").loc[insp.iloc[0]["declaration_id"], "filed_at"]
                                  - pd.Timedelta(hours=1), exam_type="LAB")  # fmt: skip
    write_tables({tmp_path / "early.parquet": early})
    refused = add(folder, [], [tmp_path / "early.parquet"])
    assert refused.outcomes_added == 0 and refused.rejects["reject_reason"].str.contains(
        "exam_at: earlier than the declaration's filed_at").all()


def test_outcomes_take_their_selection_from_the_scoring_run(tmp_path) -> None:
    decl, _ = _world(7, n=50, days=2)
    write_tables({tmp_path / "d.parquet": decl})
    folder = tmp_path / "h"
    add(folder, [tmp_path / "d.parquet"], [])
    scores = pd.DataFrame({"declaration_id": decl["declaration_id"].iloc[:3], "decision": ["INSPECT", "EXPLORE", "RELEASE"],
                           "selection_propensity": [1.0, 0.04, 0.02]})  # fmt: skip
    exams = pd.DataFrame({"declaration_id": decl["declaration_id"].iloc[:3], "exam_type": "NII_XRAY",
                          "exam_at": decl["filed_at"].iloc[:3] + pd.Timedelta(days=2), "result": "NO_FINDING"})  # fmt: skip
    write_tables({tmp_path / "scores.parquet": scores, tmp_path / "exams.csv": exams})
    result = add(folder, [], [tmp_path / "exams.csv"], [tmp_path / "scores.parquet"])
    recorded = pd.concat([pd.read_parquet(f) for f in committed_files(folder, "outcomes")]).set_index("declaration_id")
    assert result.outcomes_added == 2 and list(recorded["selection_reason"]) == ["MODEL", "RANDOM"]
    assert list(recorded["selection_propensity"]) == [1.0, 0.04]
    assert result.rejects["reject_reason"].tolist() == ["selection_reason: must not be empty"]  # released: no selection


_ADD = """
import sys, time
from pathlib import Path
import targeting.history.layout as layout
from targeting.history.add import add
pause = float(sys.argv[2])
real = layout.write_partitions
def slow(*args, **kwargs):  # a slow disk: the kill lands while files are written, or before the commit
    time.sleep(pause)
    out = real(*args, **kwargs)
    time.sleep(pause)
    return out
layout.write_partitions = slow
add(Path(sys.argv[1]), [Path(sys.argv[3])], [Path(sys.argv[4])])
"""


def test_an_add_killed_at_any_point_leaves_the_history_as_it_was(tmp_path) -> None:
    decl, insp = _world(8, n=300, days=10)
    folder = tmp_path / "h"
    first_days = decl["filed_at"] < decl["filed_at"].min() + pd.Timedelta(days=5)
    write_tables({tmp_path / "d1.parquet": decl[first_days], tmp_path / "o1.parquet": insp.iloc[:0],
                  tmp_path / "d2.parquet": decl[~first_days], tmp_path / "o2.parquet": insp})  # fmt: skip
    add(folder, [tmp_path / "d1.parquet"], [])
    build_index(folder, "hit")
    queries = _queries(decl, np.random.default_rng(8))
    before = HistorySource(folder, "hit").annotate(queries)
    manifest = (folder / "history.json").read_text()
    for delay in (0.2, 0.6, 1.0, 1.4, 1.8, 2.4, 3.0, 4.0, 6.0, 9.0):  # until one kill comes after the commit
        run = subprocess.Popen([sys.executable, "-c", _ADD, str(folder), "0.4", str(tmp_path / "d2.parquet"),
                                str(tmp_path / "o2.parquet")], env={**os.environ})  # fmt: skip
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        if (folder / "history.json").read_text() != manifest:  # the add committed before the kill
            break
        pd.testing.assert_frame_equal(HistorySource(folder, "hit").annotate(queries), before)
    else:
        pytest.fail("no add committed: the test never saw a kill after the commit")
    add(folder, [tmp_path / "d2.parquet"], [tmp_path / "o2.parquet"])  # removes what the killed ones left
    listed = {f for fs in read_manifest(folder).files.values() for f in fs}
    on_disk = {str(p.relative_to(folder)) for t in ("declarations", "outcomes") for p in (folder / t).glob("day=*/*")}
    assert on_disk == listed
    assert load_fresh(folder, "hit") is not None
