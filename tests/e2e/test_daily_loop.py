"""The daily loop by commands alone, on a tiny world: backfill a history, index it, train on it, score day N,
record the world's inspections of that selection, add day N, score day N+1; and a running server that
answers with the day just added, without a restart."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from targeting.serving.requests import request_rows
from tests.helpers import make_champion, scratch_project

pytestmark = pytest.mark.slow


def _ok(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """A tiny world, and a history of all its days but the last two (the loop's days N and N+1)."""
    with scratch_project(tmp_path_factory.mktemp("loop")) as folder:
        world = make_champion(folder)
        days = sorted((world / "declarations").glob("*.parquet"))
        history = folder / "history"
        _ok("history", "add", str(history), "--declarations", str(world / "declarations.parquet"),
            "--outcomes", str(world / "inspections.parquet"), "--before", days[-2].stem)  # fmt: skip
        yield folder, world, history, days[-2], days[-1]


def test_the_daily_loop_runs_by_commands_alone(loop) -> None:
    folder, world, history, day_n, day_next = loop
    _ok("history", "index", str(history))
    _ok("train", "--history", str(history), "--train-end", "2023-01-09", "--test-days", "0", "--register")
    _ok("promote", "--force")
    out_n = folder / "out-n"
    _ok("score", str(day_n), "--history", str(history), "--budget", "SEA=10%,AIR=10%,POST=10%,EXPRESS=10%",
        "--out", str(out_n), "--no-report")  # fmt: skip
    scores = pd.read_parquet(out_n / "scores.parquet")
    selected = scores[scores["decision"] != "RELEASE"]
    exams = folder / "exams-n.parquet"
    _ok("examine", str(world), "--scores", str(out_n / "scores.parquet"), "--out", str(exams))
    examined = pd.read_parquet(exams)
    assert set(examined["declaration_id"]) <= set(selected["declaration_id"]) and len(examined)
    added = _ok("history", "add", str(history), "--declarations", str(day_n), "--outcomes", str(exams),
                "--scores", str(out_n / "scores.parquet"))  # fmt: skip
    assert "rows rejected" in added
    recorded = pd.concat(pd.read_parquet(history / f) for f in json.loads((history / "history.json").read_text())["files"]["outcomes"])
    mine = recorded[recorded["declaration_id"].isin(selected["declaration_id"])]
    assert set(mine["selection_reason"]) <= {"MODEL", "RANDOM"} and len(mine) == len(examined)
    out_next = folder / "out-next"
    result = _ok("score", str(day_next), "--history", str(history), "--out", str(out_next), "--no-report")
    assert "committed after it" in result  # the day just added, answered as the saved index's delta
    assert len(pd.read_parquet(out_next / "scores.parquet")) == len(pd.read_parquet(day_next))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _score(port: int, row: dict[str, object]) -> float:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     data=json.dumps({"dataframe_records": [row]}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"][0]["risk_score"]


def test_a_running_server_answers_with_the_day_just_added(loop, tmp_path) -> None:
    """Add a day with a seizure: the next request about a declaration of the same consignee scores higher,
    with no restart."""
    folder, world, history, _, _ = loop
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("targeting")), "serve", "--port", str(port),
                               "--history", str(history)], env={**os.environ}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5)
                break
            except (urllib.error.URLError, OSError):
                assert server.poll() is None and time.time() < deadline
                time.sleep(0.5)
        base = pd.read_parquet(world / "declarations.parquet").iloc[[0]].copy()
        later = pd.Timestamp("2023-03-01", tz="UTC")
        base["consignee_id"] = "NEW-CONSIGNEE"
        query = request_rows(base.assign(declaration_id="Q-1", filed_at=later)).iloc[0].to_dict()
        before = _score(port, query)
        seized = base.assign(declaration_id="SEIZED-1", filed_at=later - pd.Timedelta(days=3))
        exam = pd.DataFrame({"declaration_id": ["SEIZED-1"], "selection_reason": ["INTEL_TIP"], "exam_type": ["PHYSICAL_FULL"],
                             "exam_at": [later - pd.Timedelta(days=2)], "result": ["DRUG"], "drug_class": ["COCAINE"]})  # fmt: skip
        seized.to_parquet(tmp_path / "seized.parquet")
        exam.to_parquet(tmp_path / "exam.parquet")
        _ok("history", "add", str(history), "--declarations", str(tmp_path / "seized.parquet"),
            "--outcomes", str(tmp_path / "exam.parquet"))  # fmt: skip
        deadline, after = time.time() + 60, before
        while after <= before and time.time() < deadline:  # the server reads the new commit beside its answers
            time.sleep(0.5)
            after = _score(port, query)
        assert after > before, (before, after)
    finally:
        server.terminate()
        server.wait(timeout=30)
