"""The living history at 1x, 2x and 4x the dev world: what adding a day costs, what scoring a million
declarations costs, and what a server holds, as the history grows.

Set-up (cached in data/interim/bench-history): histories of 1, 2 and 4 copies of the dev world, each copy
re-keyed into its own parties (ids, parties, phones, e-mails and addresses prefixed) and moved a year later,
written in the partitioned layout and indexed; the champion of `benchmarks score` (its store, trained on
dev). Measured, each in a fresh child process:
- `history add` of one dev-sized day (about 8,700 declarations and their outcomes, the parties of the
  history's last copy, a day after its end): time and peak memory;
- `targeting score` of 1,000,000 declarations (the last million of dev, with the last copy's parties, after
  the history's end) against the saved index, with the added day as its delta;
- a `targeting serve` process's resident memory once it answers, against each history.
Target: the 4x time of an add, and of a scoring run, within 1.3x of the 1x time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks._measure import run_child
from benchmarks.score import setup as score_setup

CACHE = Path("data/interim/bench-history")
SIZES = (1, 2, 4)
PARTY_COLUMNS = ("consignee_id", "consignor_id", "forwarder_id", "declarant_id", "notify_party_id",
                 "consignee_phone_hash", "consignee_email_hash", "consignee_addr_hash")  # fmt: skip

_REKEY = """
import pandas as pd
PARTY_COLUMNS = {parties!r}
def rekey(decl, insp, copy, shift_days, ids=""):
    # the rows as the parties of copy `copy`, `shift_days` later; declaration ids also prefixed by `ids`
    decl, insp = decl.copy(), insp.copy()
    prefix = f"K{{copy}}-"
    decl["declaration_id"] = ids + prefix + decl["declaration_id"].astype(str)
    insp["declaration_id"] = ids + prefix + insp["declaration_id"].astype(str)
    for c in PARTY_COLUMNS:
        if c in decl:
            decl[c] = (prefix + decl[c].astype("str")).where(decl[c].notna())
    shift = pd.Timedelta(days=shift_days)
    decl["filed_at"] = decl["filed_at"] + shift
    if "arrival_date" in decl:
        decl["arrival_date"] = (pd.to_datetime(decl["arrival_date"]) + shift).dt.date
    insp["exam_at"] = insp["exam_at"] + shift
    return decl, insp
"""

_BUILD = _REKEY + """
from pathlib import Path
from targeting.contract.io import read_parquet
from targeting.history import layout
from targeting.history.folder import build_index
world, folder, copies = Path({world!r}), Path({folder!r}), {copies}
decl, insp = read_parquet(world / "declarations.parquet"), read_parquet(world / "inspections.parquet")
manifest = layout.Manifest()
for copy in range(copies):
    d, i = rekey(decl, insp, copy, 365 * copy)
    manifest.files["declarations"] += layout.write_partitions(folder, "declarations", d, copy + 1)
    manifest.files["outcomes"] += layout.write_partitions(folder, "outcomes", i, copy + 1)
    del d, i
manifest.version = copies
layout.write_manifest(folder, manifest)
build_index(folder, "hit")
(folder.parent / f"{{folder.name}}.built.json").write_bytes((folder / layout.MANIFEST).read_bytes())
last = copies - 1
day = decl[decl["filed_at"].dt.floor("D") == decl["filed_at"].dt.floor("D").iloc[-1]]
day_out = insp[insp["declaration_id"].isin(day["declaration_id"])]
d, i = rekey(day, day_out, last, 365 * last + 1, ids="day-")
i["exam_at"] = d.set_index("declaration_id").loc[i["declaration_id"], "filed_at"].to_numpy() + pd.Timedelta(hours=6)
d.to_parquet(folder.parent / f"day-{{copies}}.parquet")
i.to_parquet(folder.parent / f"day-{{copies}}-outcomes.parquet")
m = decl.sort_values(["filed_at", "declaration_id"]).iloc[-1_000_000:]
m, _ = rekey(m, insp.iloc[:0], last, 365 * last + 2 + (decl["filed_at"].max() - m["filed_at"].min()).days,
         ids="new-")
m.to_parquet(folder.parent / f"manifest-{{copies}}.parquet")
(folder.parent / f"ready-{{copies}}").write_text("ok")
"""

_ADD = """
from pathlib import Path
from targeting.history.add import add
folder = Path({folder!r})
t0 = time.perf_counter()
result = add(folder, [folder.parent / "day-{copies}.parquet"], [folder.parent / "day-{copies}-outcomes.parquet"])
RESULT = {{"add_s": time.perf_counter() - t0, "declarations": result.declarations_added, "outcomes": result.outcomes_added, "rejects": len(result.rejects)}}
"""

_SCORE = """
import os
from pathlib import Path
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + str(Path({store!r}).resolve() / "mlflow.db")
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
import lightgbm, mlflow.pyfunc, mlflow.store.tracking.sqlalchemy_store, sklearn.linear_model  # untimed, as in
import targeting.model.drift, targeting.model.explain, targeting.history.index, targeting.serving.pyfunc  # score
import targeting.contract.validate, targeting.history._compiled, targeting.model._compiled
from targeting.config import DEFAULT_BUDGETS
from targeting.scoring.decisions import parse_budgets
from targeting.scoring.job import score_files
folder = Path({folder!r})
t0 = time.perf_counter()
run = score_files([folder.parent / "manifest-{copies}.parquet"], "models:/targeting@champion", folder,
                  folder.parent / "out-{copies}", parse_budgets(DEFAULT_BUDGETS), 0.1)
RESULT = {{"score_s": time.perf_counter() - t0, "rows": len(run.result.scores)}}
"""


def _history(copies: int, world: Path) -> Path:
    folder = CACHE / f"history-{copies}x"
    if not (CACHE / f"ready-{copies}").exists():
        Console(stderr=True).print(f"building the {copies}x history in {folder}")
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        run_child(_BUILD.format(parties=PARTY_COLUMNS, world=str(world), folder=str(folder), copies=copies))
    return folder


def _fresh(folder: Path) -> None:
    """The history as built: the manifest saved at build time put back, so a day added by an earlier
    measurement is no longer listed, and its files removed."""
    from targeting.history import layout

    (folder / layout.MANIFEST).write_bytes((folder.parent / f"{folder.name}.built.json").read_bytes())
    layout.remove_uncommitted(folder, layout.read_manifest(folder))


def _server_rss(folder: Path, store: Path) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store.resolve() / 'mlflow.db'}",
           "XDG_CACHE_HOME": str((CACHE / "cache").resolve())}  # fmt: skip
    server = subprocess.Popen([str(Path(sys.executable).with_name("targeting")), "serve", "--port", str(port),
                               "--history", str(folder)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5)
                break
            except OSError:
                time.sleep(1)
        status = Path(f"/proc/{server.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 2**20
    finally:
        server.terminate()
        server.wait(timeout=60)


def _floor(store: Path) -> float:
    """The floor of `benchmarks score` on its 1,000,000 rows (the same rows as the manifest here): Parquet
    read + `Booster.predict` + `pred_contrib` on the rows its run selected."""
    from benchmarks.score import _FLOOR, _RUN

    if not (store / "out" / "selected.parquet").exists():
        run_child(_RUN.format(cache=str(store), recorder="say = print", report=False))
    floor = run_child(_FLOOR.format(cache=str(store), model_uri="models:/targeting@champion"))
    return floor["read_s"] + floor["predict_s"] + floor["contrib_s"]


def main() -> None:
    from benchmarks.train import dev_world

    store = score_setup()
    world = dev_world()
    rows = []
    for copies in SIZES:
        folder = _history(copies, world)
        _fresh(folder)
        added = run_child(_ADD.format(folder=str(folder), copies=copies))
        scored = run_child(_SCORE.format(store=str(store), folder=str(folder), copies=copies))
        rows.append((copies, added, scored, _floor(store), _server_rss(folder, store)))
        _fresh(folder)
    table = Table(title="The living history at 1x / 2x / 4x the dev world", header_style="bold")
    for col in ("history", "declarations", "add a day s", "add GiB", "score 1 M s", "floor s", "score / floor",
                "score GiB", "server GiB"):  # fmt: skip
        table.add_column(col, justify="right")
    import pyarrow.parquet as pq

    per_copy = pq.ParquetFile(world / "declarations.parquet").metadata.num_rows
    for copies, added, scored, floor, rss in rows:
        table.add_row(f"{copies}x", f"{per_copy * copies:,}", f"{added['add_s']:.2f}", f"{added['peak_rss_gib']:.2f}",
                      f"{scored['score_s']:.2f}", f"{floor:.2f}", f"{scored['score_s'] / floor:.2f}x",
                      f"{scored['peak_rss_gib']:.2f}", f"{rss:.2f}")  # fmt: skip
    console = Console(width=120)
    console.print(table)
    first, last = rows[0], rows[-1]
    console.print(f"4x / 1x: add {last[1]['add_s'] / first[1]['add_s']:.2f}x, score "
                  f"{last[2]['score_s'] / first[2]['score_s']:.2f}x (target <= 1.3x); add and score timed without "
                  "imports, GiB = peak resident memory of the process")  # fmt: skip


if __name__ == "__main__":
    main()
