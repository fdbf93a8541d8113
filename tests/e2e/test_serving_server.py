"""The real model server (`targeting serve` = `mlflow models serve`) on a free loopback port: good
payloads get scores and reasons equal to the batch job's, bad ones a 4xx naming the problem, and the
server stays up."""

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

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from targeting.cli import app
from targeting.serving.requests import request_rows
from tests.helpers import make_champion, scratch_project

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, payload: object, timeout: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _alive(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with scratch_project(tmp_path_factory.mktemp("serving")) as folder:
        yield from _serve(folder)


def _serve(folder: Path):
    world = make_champion(folder)
    port = _free_port()
    log = (folder / "server.log").open("w")
    targeting = Path(sys.executable).with_name("targeting")
    process = subprocess.Popen([str(targeting), "serve", "--port", str(port), "--history", str(world)],
                               stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while not _alive(port):
        assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
        assert time.time() < deadline, "the server did not answer /ping within 2 minutes"
        time.sleep(0.5)
    yield port, folder, world
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def _day(world: Path) -> pd.DataFrame:
    return pd.read_parquet(sorted((world / "declarations").glob("*.parquet"))[-1])


def test_good_requests_get_scores_ranks_and_reasons(server) -> None:
    port, _, world = server
    rows = request_rows(_day(world).head(25))
    split = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    records = {"dataframe_records": json.loads(rows.to_json(orient="records"))}
    code_a, a = _post(port, split)
    code_b, b = _post(port, records)
    assert code_a == code_b == 200
    assert a == b
    answer = pd.DataFrame(a["predictions"])
    assert answer["declaration_id"].tolist() == rows["declaration_id"].tolist()
    assert answer["risk_score"].between(0, 1).all() and sorted(answer["risk_rank"]) == list(range(1, 26))
    top = answer.sort_values("risk_rank").iloc[0]
    assert top["risk_score"] == answer["risk_score"].max() and isinstance(top["reason_1"], str)


def test_online_scores_equal_the_batch_scores_for_the_same_rows_and_day(server) -> None:
    port, folder, world = server
    day = _day(world)
    manifest = folder / "today.parquet"
    day.to_parquet(manifest)
    out = folder / "batch"
    result = CliRunner().invoke(
        app, ["score", str(manifest), "--history", str(world), "--out", str(out), "--no-report"]
    )
    assert result.exit_code == 0, result.output
    batch = pd.read_parquet(out / "scores.parquet").set_index("declaration_id")
    code, body = _post(
        port, {"dataframe_split": json.loads(request_rows(day).to_json(orient="split", index=False))}
    )
    assert code == 200
    online = pd.DataFrame(body["predictions"]).set_index("declaration_id").loc[batch.index]
    np.testing.assert_allclose(
        online["risk_score"].to_numpy(), batch["risk_score"].to_numpy(), rtol=0, atol=1e-9
    )
    selected = batch["decision"] != "RELEASE"
    assert (online.loc[selected, "reason_1"] == batch.loc[selected, "reason_1"]).all()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.drop(columns=["mode"]), "mode"),
        (lambda r: r.assign(gross_weight_kg="heavy"), "gross_weight_kg"),
        (lambda r: r.assign(filed_at="yesterday"), "filed_at"),
        (lambda r: r.assign(n_packages="many"), "n_packages"),
        (lambda r: r.iloc[:0], "inputs"),
    ],
    ids=["missing column", "text in a number", "unreadable time", "text in a count", "empty list"],
)
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_lives(server, change, expected) -> None:
    port, _, world = server
    bad = change(request_rows(_day(world).head(3)))
    code, body = _post(port, {"dataframe_records": json.loads(bad.to_json(orient="records"))})
    assert 400 <= code < 500, body
    assert expected in body.get("message", ""), body
    assert _alive(port)


def test_ten_thousand_rows_in_one_request(server) -> None:
    port, _, world = server
    rows = _day(world).sample(10_000, replace=True, random_state=0)
    rows["declaration_id"] = [f"BULK{i:05d}" for i in range(10_000)]
    code, body = _post(
        port, {"dataframe_split": json.loads(request_rows(rows).to_json(orient="split", index=False))}
    )
    assert code == 200 and len(body["predictions"]) == 10_000
    assert _alive(port)


def test_not_json_and_unknown_format_are_4xx(server) -> None:
    port, _, _ = server
    code, body = _post(port, {"columns": ["a"], "data": [[1]]})
    assert 400 <= code < 500 and "dataframe_split" in body.get("message", "")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=b"not json",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert 400 <= err.value.code < 500
    assert _alive(port)
