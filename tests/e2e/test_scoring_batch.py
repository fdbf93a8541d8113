"""`targeting score` end to end on a tiny world with a registered champion: every row accounted for,
decisions within budget, reasons for the selected rows, the MLflow run, the report in a real browser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from tests.helpers import make_champion, scratch_project

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A tiny world, a model trained on its first 10 days, registered and promoted, in a scratch store."""
    with scratch_project(tmp_path_factory.mktemp("scoring")) as folder:
        yield folder, make_champion(folder)


def _manifests(folder: Path, world: Path) -> tuple[Path, Path, int]:
    """The last day split in two files: a Parquet file, and a CSV with 3 bad rows and 1 duplicate id."""
    day = pd.read_parquet(sorted((world / "declarations").glob("*.parquet"))[-1])
    a, b = day.iloc[: len(day) // 2], day.iloc[len(day) // 2 :].copy()
    a.to_parquet(folder / "part-a.parquet")
    b = b.astype({"filed_at": "str"})
    b.iloc[0, b.columns.get_loc("gross_weight_kg")] = -1.0  # rule: > 0
    b.iloc[1, b.columns.get_loc("filed_at")] = "2023-01-14 10:00:00"  # no time zone
    b.iloc[2, b.columns.get_loc("mode")] = "RAIL"  # not an allowed mode
    b = pd.concat([b, a.head(1).astype({"filed_at": "str"})])  # the same declaration in both files
    b.to_csv(folder / "part-b.csv", index=False)
    return folder / "part-a.parquet", folder / "part-b.csv", len(a) + len(b)


def test_score_accounts_for_every_row_and_decides_within_budget(champion) -> None:
    import mlflow

    folder, world = champion
    part_a, part_b, n_rows = _manifests(folder, world)
    out = folder / "out"
    result = CliRunner().invoke(app, ["score", str(part_a), str(part_b), "--budget", "SEA=10%,AIR=5%,POST=5%,EXPRESS=20",
                                      "--explore", "20%", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores, rejects = pd.read_parquet(out / "scores.parquet"), pd.read_parquet(out / "rejects.parquet")
    assert len(scores) + len(rejects) == n_rows
    assert len(rejects) == 4 and scores["declaration_id"].is_unique
    reasons = " | ".join(rejects["reject_reason"])
    assert (
        "gross_weight_kg" in reasons
        and "filed_at" in reasons
        and "mode" in reasons
        and "duplicate" in reasons
    )
    assert (
        pd.read_csv(out / "scores.csv").shape[0] == len(scores)
        and pd.read_csv(out / "rejects.csv").shape[0] == 4
    )

    # ranking order, calibrated scores, per-mode capacity used exactly
    assert scores["risk_rank"].tolist() == list(range(1, len(scores) + 1))
    assert scores["risk_score"].is_monotonic_decreasing and scores["risk_score"].between(0, 1).all()
    capacity = {"SEA": lambda n: max(1, int(0.10 * n)), "AIR": lambda n: max(1, int(0.05 * n)),
                "POST": lambda n: max(1, int(0.05 * n)), "EXPRESS": lambda n: min(20, n)}  # fmt: skip
    for mode, part in scores.groupby("mode"):
        chosen = part["decision"].isin(["INSPECT", "EXPLORE"]).sum()
        assert chosen == capacity[mode](len(part)), mode
        inspected = part[part["decision"] == "INSPECT"]
        released = part[part["decision"] != "INSPECT"]
        assert inspected["risk_score"].min() >= released["risk_score"].max()
        assert (inspected["selection_propensity"] == 1).all()
        assert (part.loc[part["decision"] != "INSPECT", "selection_propensity"] < 1).all()

    # reasons exactly for the selected rows, positive contributions, plain language
    selected = scores["decision"] != "RELEASE"
    assert scores.loc[selected, "reason_1"].notna().all() and scores.loc[~selected, "reason_1"].isna().all()
    assert (scores.loc[selected, "reason_1_contribution"] > 0).all()
    assert not scores.loc[selected, "reason_1"].str.contains("_").any(), (
        "reasons are sentences, not feature names"
    )
    assert scores["model_uri"].str.fullmatch(r"models:/targeting/\d+").all()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == n_rows and summary["rejected"] == 4
    run = mlflow.search_runs(filter_string="tags.job = 'scoring'").iloc[0]
    assert run["metrics.declarations"] == len(scores) and run["metrics.rejected"] == 4
    assert "metrics.psi_max" in run and np.isfinite(run["metrics.psi_max"])


def test_batch_scores_equal_the_served_pyfunc(champion) -> None:
    import mlflow

    from targeting.serving.requests import request_rows

    folder, world = champion
    part_a, _, _ = _manifests(folder, world)
    out = folder / "out-a"
    assert CliRunner().invoke(app, ["score", str(part_a), "--out", str(out), "--no-report"]).exit_code == 0
    batch = pd.read_parquet(out / "scores.parquet").set_index("declaration_id")["risk_score"]
    served = mlflow.pyfunc.load_model("models:/targeting@champion").predict(
        request_rows(pd.read_parquet(part_a))
    )
    online = served.set_index("declaration_id")["risk_score"]
    np.testing.assert_allclose(online.loc[batch.index].to_numpy(), batch.to_numpy(), rtol=0, atol=1e-12)


def test_scores_from_the_saved_history_index_equal_those_from_the_store(champion, monkeypatch) -> None:
    """...also when the manifest counts as a large batch, whose ids and key values the job looks up in the
    index while it validates (PrefetchedCodes)."""
    import shutil

    import targeting.history.index as hi

    folder, world = champion
    part_a, _, _ = _manifests(folder, world)
    history = folder / "history-copy"
    history.mkdir()
    for name in ("declarations.parquet", "inspections.parquet"):
        shutil.copy(world / name, history / name)
    runs = {}
    # as if validation took long enough for every lookup to finish first (a small manifest validates
    # before the loading thread even starts them, and `as_of` would claim them all)
    monkeypatch.setattr(hi.PrefetchedCodes, "claim", lambda self: [f.result() for f in self.futures.values()])
    for label in ("store", "index", "index, large batch"):
        monkeypatch.setattr(hi, "SET_LOOKUP_ROWS", 0 if label == "index, large batch" else 100_000)
        if label == "index":
            built = CliRunner().invoke(app, ["history-index", str(history)])
            assert built.exit_code == 0 and (history / "as_of_index" / "hit" / "index.json").exists(), (
                built.output
            )
        out = folder / f"out-{label}"
        result = CliRunner().invoke(app, ["score", str(part_a), "--history", str(history), "--out", str(out),
                                          "--no-report"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert ("saved history index" in result.output) == (label != "store")
        runs[label] = pd.read_parquet(out / "scores.parquet").drop(columns=["scored_at"])  # the clock differs
    pd.testing.assert_frame_equal(runs["index"], runs["store"])
    pd.testing.assert_frame_equal(runs["index, large batch"], runs["store"])


def test_a_bad_file_writes_nothing(champion) -> None:
    folder, world = champion
    bad = folder / "no-mode.csv"
    pd.read_parquet(world / "declarations.parquet").head(5).drop(columns=["mode"]).to_csv(bad, index=False)
    out = folder / "out-bad"
    part_a, _, _ = _manifests(folder, world)
    result = CliRunner().invoke(app, ["score", str(part_a), str(bad), "--out", str(out)])
    assert result.exit_code == 1
    assert "missing required column(s) mode" in result.output
    assert not out.exists()
    missing_model = CliRunner().invoke(
        app, ["score", str(part_a), "--model", "models:/nope@champion", "--out", str(out)]
    )
    assert missing_model.exit_code == 1 and "models:/nope@champion" in missing_model.output


def test_the_report_opens_in_headless_chromium_and_shows_the_selected_shipments(champion) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is installed by `make test` (make browser)"
    folder, world = champion
    part_a, part_b, _ = _manifests(folder, world)
    out = folder / "out-report"
    result = CliRunner().invoke(app, ["score", str(part_a), str(part_b), "--budget", "SEA=10%,AIR=5%,POST=5%,EXPRESS=3%",
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    flagged = pd.read_parquet(out / "scores.parquet").query("decision != 'RELEASE'")["declaration_id"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={folder / 'chromium-profile'}"]  # fmt: skip
    dom = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", (out / "report.html").as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout  # fmt: skip
    assert "Targeting review report" in dom
    for declaration_id in flagged:
        assert f'id="card-{declaration_id}"' in dom
    assert dom.count("data:image/png;base64,") == len(flagged) + 1  # one waterfall per card + the histogram
    shot = folder / "report.png"
    subprocess.run([str(CHROMIUM), *flags, "--window-size=1200,1600", f"--screenshot={shot}",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_a_missing_history_folder_is_an_error_unless_no_history_is_asked_for(champion, tmp_path) -> None:
    """The model records the world folder as its history; gone, scoring used to run on an empty history
    and exit 0. Now: one line and exit 1, nothing written; `--no-history` scores without it, explicitly."""
    import shutil

    folder, world = champion
    part_a, _, _ = _manifests(folder, world)
    moved = tmp_path / "moved-world"
    shutil.move(str(world), moved)
    try:
        out = folder / "out-no-history"
        result = CliRunner().invoke(app, ["score", str(part_a), "--out", str(out), "--no-report"])
        lines = [ln for ln in result.output.splitlines() if ln.startswith("error")]
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert "history folder" in lines[0] and "does not exist" in lines[0] and "--no-history" in lines[0]
        assert not out.exists()
        result = CliRunner().invoke(app, ["score", str(part_a), "--out", str(out), "--no-report", "--no-history"])
        assert result.exit_code == 0, result.output
        assert len(pd.read_parquet(out / "scores.parquet")) == len(pd.read_parquet(part_a))
        both = CliRunner().invoke(app, ["score", str(part_a), "--history", str(moved), "--no-history"])
        assert both.exit_code == 1 and "exclude each other" in both.output
    finally:
        shutil.move(str(moved), world)


def test_a_row_with_an_impossible_date_is_a_reject_and_the_rest_is_scored(champion) -> None:
    folder, world = champion
    day = pd.read_parquet(sorted((world / "declarations").glob("*.parquet"))[-1]).astype({"filed_at": "str"})
    for i, year in enumerate(("9999", "2263", "0001", "1677")):
        day.iloc[i, day.columns.get_loc("filed_at")] = f"{year}-01-01T00:00:00Z"
    day.to_csv(folder / "dates.csv", index=False)
    out = folder / "out-dates"
    result = CliRunner().invoke(app, ["score", str(folder / "dates.csv"), "--out", str(out), "--no-report"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    scores, rejects = pd.read_parquet(out / "scores.parquet"), pd.read_parquet(out / "rejects.parquet")
    assert len(rejects) == 4 and len(scores) == len(day) - 4
    assert rejects["reject_reason"].str.startswith("filed_at: outside 1990-01-01 ..").all()


def test_an_id_already_in_the_history_with_other_content_is_a_reject(champion) -> None:
    """Ids are unique across the history: a stored id arriving with other content would be scored with the
    stored declaration's past. Arriving with the same content (a day scored again) it is scored as before."""
    folder, world = champion
    day = pd.read_parquet(sorted((world / "declarations").glob("*.parquet"))[-1])  # stored in the history
    changed = day.copy()
    changed.iloc[0, changed.columns.get_loc("consignee_id")] = "SOMEONE-ELSE"
    changed.iloc[1, changed.columns.get_loc("filed_at")] += pd.Timedelta(hours=1)
    changed.iloc[2, changed.columns.get_loc("gross_weight_kg")] = 123.0  # not what as-of answers depend on
    changed.to_parquet(folder / "changed.parquet")
    out = folder / "out-conflict"
    result = CliRunner().invoke(app, ["score", str(folder / "changed.parquet"), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert list(rejects["reject_reason"]) == [
        "declaration_id: already in the history with other content (consignee_id)",
        "declaration_id: already in the history with other content (filed_at)",
    ]
    assert list(rejects["source_row"]) == [1, 2] and rejects["consignee_id"].iloc[0] == "SOMEONE-ELSE"
    assert len(pd.read_parquet(out / "scores.parquet")) == len(day) - 2
