"""The indexed history store answers exactly as the reference sort-merge (`HistoryStore.as_of`): the
features a model was trained on and the features it is served cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from targeting.history.index import HistoryIndex
from targeting.history.store import HistoryStore
from targeting.simulate.config import preset
from targeting.simulate.run import simulate


def _random_tables(seed: int, n: int = 600) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Few entities, many collisions, missing values, outcomes known after filing, ties in time."""
    rng = np.random.default_rng(seed)
    pick = lambda pool, p_missing=0.1: pd.Series(  # noqa: E731
        np.where(rng.random(n) < p_missing, None, rng.choice(pool, n)), dtype="str"
    )
    filed = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 60 * 24, n) * 3600, unit="s"
    )
    decl = pd.DataFrame({
        "declaration_id": [f"D{i:05d}" for i in range(n)], "filed_at": filed.astype("datetime64[us, UTC]"),
        "consignee_id": pick([f"C{i}" for i in range(25)]), "consignor_id": pick([f"S{i}" for i in range(40)]),
        "forwarder_id": pick(["F1", "F2", "F3"], 0.5), "declarant_id": pick(["A1", "A2"]),
        "consignee_phone_hash": pick([f"p{i}" for i in range(15)]),
        "consignee_email_hash": pick([f"e{i}" for i in range(15)], 0.4),
        "consignee_addr_hash": pick([f"a{i}" for i in range(12)]),
        "origin_country": pick(["CN", "NL", "MX", "TH"], 0.0), "load_loc": pick(["X", "Y", "Z"]),
        "transit_locs": pick(["T1", "T1;T2"], 0.7), "discharge_loc": pick(["KRPUS", "KRINC"], 0.0),
    })  # fmt: skip
    inspected = rng.choice(n, n // 4, replace=False)
    insp = pd.DataFrame({
        "declaration_id": decl["declaration_id"].iloc[inspected].to_numpy(),
        "selection_reason": "RULE", "selection_propensity": 1.0, "exam_type": "NII_XRAY",
        "exam_at": (decl["filed_at"].iloc[inspected] + pd.to_timedelta(rng.integers(1, 96, len(inspected)), unit="h")).to_numpy(),
        "result": np.where(rng.random(len(inspected)) < 0.3, "DRUG", "NO_FINDING"),
    })  # fmt: skip
    return decl, insp


@pytest.mark.parametrize("seed", range(6))
def test_index_equals_the_reference_on_random_histories_and_queries(seed: int) -> None:
    decl, insp = _random_tables(seed)
    order = decl.sort_values("filed_at", kind="stable").index
    cut = order[len(order) * 2 // 3]
    past = decl.loc[order[: len(order) * 2 // 3]]
    store = HistoryStore.from_tables(past, insp, "hit")  # includes outcomes of rows not stored yet
    index = HistoryIndex(store)
    rng = np.random.default_rng(seed)
    later = decl.loc[order[len(order) * 2 // 3 :]]
    queries = {
        "a later batch": later,
        "stored rows": past.sample(80, random_state=seed),
        "both, with duplicates": pd.concat([past.tail(40), later.head(40), later.head(5)]),
        "one row": later.iloc[[int(rng.integers(len(later)))]],
        "a row without keys": later.head(3).assign(consignee_id=None, consignee_addr_hash=None),
    }
    assert cut in decl.index
    for name, query in queries.items():
        expected = store.as_of(query)
        pd.testing.assert_frame_equal(index.as_of(query)[expected.columns], expected, obj=name)


def test_index_equals_the_reference_on_a_simulated_world(tmp_path) -> None:
    world = simulate(preset("tiny", seed=11), tmp_path / "w")
    decl, insp = (
        pd.read_parquet(world / "declarations.parquet"),
        pd.read_parquet(world / "inspections.parquet"),
    )
    decl = decl.sort_values("filed_at", kind="stable").reset_index(drop=True)
    store = HistoryStore.from_tables(decl.iloc[: len(decl) // 2], insp, "hit")
    index = HistoryIndex(store)
    for query in (decl.iloc[len(decl) // 2 :], decl.sample(500, random_state=1)):
        expected = store.as_of(query)
        pd.testing.assert_frame_equal(index.as_of(query)[expected.columns], expected)


def test_index_of_an_empty_store_answers_as_the_reference() -> None:
    from targeting.contract.schema import DECLARATIONS, INSPECTIONS

    store = HistoryStore.from_tables(DECLARATIONS.empty_frame(), INSPECTIONS.empty_frame(), "hit")
    decl, _ = _random_tables(0, n=50)
    expected = store.as_of(decl)
    pd.testing.assert_frame_equal(HistoryIndex(store).as_of(decl)[expected.columns], expected)


def test_saved_index_batch_paths_and_threads_answer_as_the_reference(tmp_path, monkeypatch) -> None:
    """The index saved beside a history folder and read back, answering through the large-batch lookups
    (Arrow set lookups, the stored-id table, per-value counts by code), in and out of time order and on
    two threads, still equals the reference."""
    import targeting.history.index as hi
    from targeting.history import _compiled as kernels
    from targeting.history.folder import build_index, index_folder, load_fresh

    decl, insp = _random_tables(3)
    decl = decl.sort_values("filed_at", kind="stable").reset_index(drop=True)
    history = tmp_path / "history"
    history.mkdir()
    decl.iloc[:400].to_parquet(history / "declarations.parquet")
    insp.to_parquet(history / "inspections.parquet")  # outcomes of rows not stored yet, too
    folder, counts = build_index(history, "hit")
    assert counts["declarations"] == 400 and folder == index_folder(history, "hit")
    saved = load_fresh(history, "hit")
    assert saved is not None and not len(saved.delta)
    loaded = saved.index
    store = HistoryStore.from_tables(decl.iloc[:400], insp, "hit")
    query = pd.concat([decl.iloc[350:], decl.iloc[[420, 10]]])  # stored, new and a duplicate id
    expected = store.as_of(query)
    monkeypatch.setattr(hi, "SET_LOOKUP_ROWS", 0)

    monkeypatch.setitem(kernels.load(), "build", lambda *a: pytest.fail("id table built again"))
    for dense_below in (10**9, 0):  # per-value counts by dense numbers (small batches) and by codes
        monkeypatch.setattr(kernels, "DENSE_BELOW", dense_below)
        for threads in (1, 2):
            pd.testing.assert_frame_equal(loaded.as_of(query, threads)[expected.columns], expected)
        perm = np.random.default_rng(dense_below % 7).permutation(len(query))
        pd.testing.assert_frame_equal(
            loaded.as_of(query.iloc[perm], 2)[expected.columns], expected.iloc[perm]
        )


def test_codes_looked_up_before_validation_give_the_same_answers(monkeypatch) -> None:
    """The daily job looks a manifest's key values up while it validates (`PrefetchedCodes`, for the rows
    as read); answering the validated rows with them, with some lookups done and the rest cancelled by
    `as_of` and done by it, equals answering without them."""
    import targeting.history.index as hi

    decl, insp = _random_tables(5)
    decl = decl.sort_values("filed_at", kind="stable").reset_index(drop=True)
    index = HistoryIndex(HistoryStore.from_tables(decl.iloc[:400], insp, "hit"))
    monkeypatch.setattr(hi, "SET_LOOKUP_ROWS", 0)
    as_read = decl.iloc[330:].reset_index(drop=True)
    kept = np.flatnonzero(np.arange(len(as_read)) % 9 != 4)  # rows that passed validation
    query = as_read.iloc[kept].reset_index(drop=True)
    expected = index.as_of(query, 2)
    columns = [hi.IDS, *[key.column for key in index.keys.values()]]  # which ids are stored, then codes
    for done in (0, 1, 4, len(columns)):
        prefetched = hi.PrefetchedCodes(columns)
        prefetched.ids_unique = done % 2 == 0  # the ids are unique: vouched for, or looked at
        for future in list(prefetched.futures.values())[done:]:
            future.cancel()  # as if `as_of` had claimed them before they started
        prefetched.run(index, as_read)
        prefetched.rows = kept
        assert sum(prefetched.codes(c) is not None for c in columns) == done
        for threads in (1, 2):
            pd.testing.assert_frame_equal(index.as_of(query, threads, prefetched), expected)
    with monkeypatch.context() as m:  # all looked up beforehand: `as_of` looks nothing up again
        m.setattr(index, "stored_codes", lambda *a: pytest.fail("looked up again"))
        m.setattr(index, "stored_ids", lambda *a: pytest.fail("looked up again"))
        pd.testing.assert_frame_equal(index.as_of(query, 2, prefetched), expected)
    # an index with nothing to look up (no saved index) leaves every column to `as_of`
    nothing = hi.PrefetchedCodes(columns)
    nothing.run(None, as_read)
    nothing.rows = kept
    assert all(nothing.codes(c) is None for c in columns)
    pd.testing.assert_frame_equal(index.as_of(query, 2, nothing), expected)


def _indexed_history(tmp_path: Path, seed: int) -> tuple[Path, pd.DataFrame]:
    """A history folder of random tables, indexed for the target "hit"; the folder and its inspections."""
    from targeting.history.folder import build_index

    decl, insp = _random_tables(seed, n=100)
    history = tmp_path / "history"
    history.mkdir()
    decl.to_parquet(history / "declarations.parquet")
    insp.to_parquet(history / "inspections.parquet")
    build_index(history, "hit")
    return history, insp


def test_a_saved_index_is_ignored_once_the_history_changes(tmp_path) -> None:
    import os

    from targeting.history.folder import load_fresh

    history, insp = _indexed_history(tmp_path, seed=4)
    assert load_fresh(history, "hit") is not None
    assert load_fresh(history, "violation") is None  # another target needs its own index
    insp.head(10).to_parquet(history / "inspections.parquet")  # today's outcomes replaced the file
    os.utime(history / "inspections.parquet", ns=(1, 1))
    assert load_fresh(history, "hit") is None


def test_a_save_that_fails_leaves_the_old_index_and_no_half_written_folder(tmp_path, monkeypatch) -> None:
    """A full disk while the index is saved: `targeting history-index` says so in one line (exit 1), the
    index saved before still loads and no temporary folder is left behind."""
    import errno

    from typer.testing import CliRunner

    from targeting.cli import app
    from targeting.history.folder import INDEX_FOLDER, load_fresh

    history, _ = _indexed_history(tmp_path, seed=5)
    saved = load_fresh(history, "hit")
    assert saved is not None
    calls = []

    def full_disk(path, *args, **kwargs):  # the third array no longer fits
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, *args, **kwargs)

    real_save = np.save
    monkeypatch.setattr(np, "save", full_disk)
    result = CliRunner().invoke(app, ["history-index", str(history)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]  # after the progress lines, the error in one line
    assert last.startswith("error:") and last.endswith("No space left on device")
    assert sorted(p.name for p in (history / INDEX_FOLDER).iterdir()) == ["hit"]  # no .index-* folder
    monkeypatch.setattr(np, "save", real_save)
    again = load_fresh(history, "hit")
    assert again is not None and len(again.index.ids) == len(saved.index.ids)


def test_string_table_finds_what_arrow_index_in_finds() -> None:
    """Positions of first stored occurrences, for text that differs in one byte, length, case or Unicode
    form; missing and empty query values; sliced and chunked arrays."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from targeting.history._compiled import StringTable

    rng = np.random.default_rng(7)
    words = ["", "a", "A", "ab", "ba", "é", "e\u0301", "consignee 1", "consignee 10", "x" * 300, "日本"]
    words += [f"C{v}" for v in rng.integers(0, 5000, 3000)]  # repeats: the first position counts
    stored = pa.array(words, pa.large_string())
    query = pa.array([*rng.choice(words, 4000).tolist(), None, "C5001", "consignee", "日", "x" * 299],
                     pa.string())  # fmt: skip
    table = StringTable(stored)
    expected = pc.index_in(query, value_set=stored).fill_null(-1).to_numpy(zero_copy_only=False)
    assert (table.positions(query) == expected).all() and (expected >= 0).sum() == 4000
    part = query.slice(1000, 2000)
    assert (table.positions(part) == expected[1000:3000]).all()
    chunked = pa.chunked_array([query.slice(0, 10), query.slice(10)])
    assert (table.positions(chunked) == expected).all()
    assert (StringTable(stored.slice(3)).positions(query) ==
            pc.index_in(query, value_set=stored.slice(3)).fill_null(-1).to_numpy(zero_copy_only=False)).all()  # fmt: skip
    assert (StringTable(pa.array([], pa.string())).positions(query) == -1).all()
    # a table saved for these values is used as it is; one that does not fit them is built again
    assert StringTable(stored, table.table).table is table.table
    unfit = StringTable(stored, table.table[:-2])
    assert unfit.table.shape == table.table.shape and (unfit.positions(query) == table.positions(query)).all()


def test_galloping_lower_bounds_equal_numpys_searchsorted() -> None:
    """The new-senders count searches a batch's queries (ascending, except where the address is missing)
    with a compiled gallop: it must answer as `np.searchsorted` for any queries, in order or not."""
    from targeting.history._compiled import lower_bounds

    rng = np.random.default_rng(0)
    for trial in range(400):
        events = np.sort(rng.integers(0, 30, int(rng.integers(0, 60))))
        queries = rng.integers(-5, 35, int(rng.integers(0, 60)))
        if trial % 3 == 0:
            queries = np.sort(queries)
        elif trial % 3 == 1:  # ascending runs that restart, as the batch's missing addresses make them
            queries = np.concatenate(
                [np.sort(queries[: len(queries) // 2]), np.sort(queries[len(queries) // 2 :])]
            )
        np.testing.assert_array_equal(lower_bounds(events, queries), np.searchsorted(events, queries))


def test_hashed_first_row_per_key_equals_the_lexsort() -> None:
    """The new-senders count finds each (address, sender) pair's first row through a hash table: the same
    rows, in the same order, as `history.first_per_key`, with keys that collide in the table, negative and
    very large keys, and ties in time (the first listed wins)."""
    from targeting.history._compiled import first_per_key as hashed
    from targeting.history.store import first_per_key

    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(0, 500))
        keys = rng.integers(-20, 150, n) * (10**12 if trial % 3 == 0 else 1)
        seconds = rng.integers(0, 10, n) if trial % 2 else np.sort(rng.integers(0, 10, n))
        np.testing.assert_array_equal(hashed(keys, seconds), first_per_key(keys, seconds))
