"""`targeting backtest` (Protocol C) end to end on the small world, and `targeting monitor` on what it
recorded, in a real browser."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from tests.helpers import scratch_project

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    with scratch_project(tmp_path_factory.mktemp("backtest")) as folder:
        out = folder / "backtest"
        result = CliRunner().invoke(app, ["backtest", "--preset", "small", "--seed", "7", "--epsilons", "0,0.1",
                                          "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        yield folder, out, result.output


def test_the_loop_runs_end_to_end_and_the_oracle_bounds_every_policy(backtest) -> None:
    _, out, output = backtest
    assert "Protocol C" in output and "MLflow run" in output
    summary = pd.read_csv(out / "summary.csv").set_index("policy")
    assert list(summary.index) == ["RULE-only", "eps=0", "eps=0.1", "ORACLE-loop"]
    assert (summary["attempts"] > 100).all()
    oracle = summary.loc["ORACLE-loop", "recall"]
    for policy, row in summary.iterrows():
        # within noise: two standard errors of the difference of two proportions of ~this many attempts
        noise = 2 * (2 * row["recall"] * (1 - row["recall"]) / row["attempts"]) ** 0.5
        assert oracle >= row["recall"] - noise, policy
    for name in ("recall_by_week.png", "cumulative_recall.png", "weekly.csv", "drift.csv", "exploration.csv",
                 "promotions.csv", "summary.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    promotions = pd.read_csv(out / "promotions.csv")
    assert set(promotions["policy"]) == {"eps=0", "eps=0.1", "ORACLE-loop"}
    exploration = pd.read_csv(out / "exploration.csv").set_index("policy")
    assert exploration.loc["eps=0", "explored"] == 0
    assert exploration.loc["eps=0.1", "explored_share"] == pytest.approx(0.1, abs=0.03)


def test_rule_only_is_the_legacy_worlds_own_selection(backtest) -> None:
    """RULE-only lives on a copy of the world taken after the warm-up, with no model: the world's days,
    inspections and catches are exactly those `targeting simulate` writes for the same preset and seed."""
    from targeting.contract.labels import positive
    from targeting.simulate.config import preset
    from targeting.simulate.run import simulate

    folder, out, _ = backtest
    world = simulate(preset("small", seed=7), folder / "legacy")
    truth = pd.read_parquet(world / "ground_truth.parquet")
    insp = pd.read_parquet(world / "inspections.parquet")
    caught = set(insp.loc[positive(insp["result"], "hit"), "declaration_id"])
    attempts = pd.read_csv(out / "attempts.csv")
    rule = attempts[attempts["policy"] == "RULE-only"].set_index("declaration_id")
    legacy = truth[truth["is_smuggling"] & truth["declaration_id"].isin(rule.index)]
    assert len(legacy) == len(rule) and len(rule) > 100
    assert (rule.loc[legacy["declaration_id"], "caught"].to_numpy() == legacy["declaration_id"].isin(caught).to_numpy()).all()
    decl = pd.read_parquet(world / "declarations.parquet")
    first_loop_day = pd.read_json(out / "summary.json", typ="series")["warmup_days"]
    days = (decl["filed_at"] - decl["filed_at"].min().floor("D")).dt.days
    in_loop = truth.set_index("declaration_id").loc[decl.loc[days >= first_loop_day, "declaration_id"], "is_smuggling"]
    assert int(in_loop.sum()) == len(rule)  # every attempt of the loop's days, and only those


def test_monitor_shows_inspect_and_explore_hit_rates_in_a_browser(backtest) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is installed by `make test` (make browser)"
    folder, out, _ = backtest
    policy = out / "policies" / "eps-01"
    page = folder / "monitor"
    result = CliRunner().invoke(app, ["monitor", str(policy / "history"), "--scores", str(policy / "scores"),
                                      "--promotions", str(policy / "promotions.csv"), "--out", str(page)])  # fmt: skip
    assert result.exit_code == 0, result.output
    weekly = pd.read_csv(page / "weekly.csv")
    assert {"MODEL", "RANDOM", "OTHER"} <= set(weekly["channel"])
    html = (page / "monitor.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             f"--user-data-dir={folder / 'chromium-profile'}"]  # fmt: skip
    dom = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", (page / "monitor.html").as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout  # fmt: skip
    assert "Targeting performance monitor" in dom and 'id="hit-rates"' in dom and 'id="calibration"' in dom
    assert "MODEL inspected" in dom and "RANDOM hit rate" in dom
    champions = pd.read_csv(page / "champions.csv")  # every retraining's decision, the first model's included
    assert len(champions) == len(pd.read_csv(policy / "promotions.csv")) > 1 and 'id="champions"' in dom
    assert champions.loc[champions["promoted"] & champions["overlap"].notna(), "overlap"].between(0, 1).all()
    assert dom.count("data:image/png;base64,") == 3
