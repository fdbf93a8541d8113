"""The REST server under load: latency of 1-row and 100-row requests, and throughput with 8 clients.

Set-up (cached in data/interim/bench-serve, about a minute the first time): the `small` world and a
champion trained on it, in a private MLflow store. The server is `targeting serve` (the project's ASGI
app under uvicorn) on a free loopback port with the world as its history store; clients are threads posting
pre-serialised `dataframe_split` payloads of the world's last day.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._measure import run_child

CACHE = Path("data/interim/bench-serve")
CLIENTS, SECONDS, SEQUENTIAL = 8, 60, 100

_SETUP = """
import os
from pathlib import Path
cache = Path({cache!r}).resolve()
os.chdir(cache)
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(cache / "mlflow.db")
from targeting.contract.io import read_parquet
from targeting.config import TrainConfig
from targeting.simulate.config import preset
from targeting.simulate.run import simulate
from targeting.training.splits import time_split
from targeting.training.train import TrainingData, train
from targeting.training.registry import log_run, promote
world = simulate(preset("small", seed=7), cache / "world", daily=True)
data = TrainingData(read_parquet(world / "declarations.parquet"), read_parquet(world / "inspections.parquet"))
result = train(data, time_split("2023-05-01", "2023-06-30"), TrainConfig())
log_run(result, data, {{"declarations": str(world / "declarations.parquet"),
                        "inspections": str(world / "inspections.parquet")}}, str(world), register=True)
promote(force=True)
(cache / "ready").write_text("ok")
"""


def _post(port: int, body: bytes) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _payloads(world: Path) -> dict[int, bytes]:
    import pandas as pd

    from targeting.serving.requests import request_rows

    day = pd.read_parquet(sorted((world / "declarations").glob("*.parquet"))[-1])
    return {n: json.dumps({"dataframe_split": json.loads(request_rows(day.head(n)).to_json(orient="split", index=False))}).encode()
            for n in (1, 100)}  # fmt: skip


def _start(cache: Path, world: Path, workers: int) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cache.resolve() / 'mlflow.db'}"}
    targeting = Path(sys.executable).with_name("targeting")
    process = subprocess.Popen([str(targeting), "serve", "--port", str(port), "--history", str(world),
                                "--workers", str(workers)], cwd=cache, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                return process, port
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not start within 3 minutes")


def _throughput(port: int, body: bytes) -> dict[str, float]:
    stop = time.perf_counter() + SECONDS
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()

    def client() -> None:
        while time.perf_counter() < stop:
            ok = _post(port, body) == 200
            with lock:
                counts["ok" if ok else "errors"] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**counts, "seconds": time.perf_counter() - start}


def main(workers: int = int(os.environ.get("BENCH_SERVE_WORKERS", "1"))) -> None:
    if not (CACHE / "ready").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        Console(stderr=True).print(f"setting up in {CACHE}: the small world and a champion")
        run_child(_SETUP.format(cache=str(CACHE)))
    world = (CACHE / "world").resolve()
    payloads = _payloads(world)
    process, port = _start(CACHE, world, workers)
    try:
        _post(port, payloads[1])  # warm-up: the first request loads the history store
        table = Table(title=f"targeting serve ({workers} worker(s), history: small world, 151 k declarations)",
                      header_style="bold")  # fmt: skip
        for col in ("load", "requests", "errors", "p50 ms", "p99 ms", "rows/s"):
            table.add_column(col, justify="right")
        for n, body in payloads.items():
            times, errors = [], 0
            for _ in range(SEQUENTIAL):
                t = time.perf_counter()
                errors += _post(port, body) != 200
                times.append(time.perf_counter() - t)
            ms = np.array(times) * 1000
            table.add_row(f"{n}-row requests, one client", str(SEQUENTIAL), str(errors), f"{np.percentile(ms, 50):.0f}",
                          f"{np.percentile(ms, 99):.0f}", f"{n * SEQUENTIAL / sum(times):,.0f}")  # fmt: skip
        r = _throughput(port, payloads[1])
        table.add_row(f"1-row requests, {CLIENTS} clients, {SECONDS} s", f"{r['ok'] + r['errors']:,}", str(r["errors"]),
                      "", "", f"{r['ok'] / r['seconds']:,.1f}")  # fmt: skip
        Console().print(table)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
