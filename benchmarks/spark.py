"""Scale-out on Spark (`local[2]`): does memory stay flat as the history grows?

Histories of 1x, 4x and 10x the dev world (3.2 M declarations each copy): copy i is the dev world with
every id and party key suffixed `~i` (disjoint parties) and its times shifted i years earlier (the
contract refuses filing times more than a year ahead); the copies are written once
(data/interim/bench-spark/copies) and each history's manifest commits the copies it holds. The batch, the
same at every size: the dev world's last 7 days as new declarations (new ids) of its own parties, filed
after the history's last event (63,471 rows). The model: the dev champion of `python -m benchmarks score`.

Per size, in a fresh child process (its own Spark):
- `targeting history state` (the state built by Spark from the history's files, saved beside it);
- `targeting score --engine spark` of the batch (join to the state, score, decide, explain, write).
Printed per step: wall time; peak resident memory of the driver (the Python process), of the JVM, and of
the largest Python worker; and the rows Spark shuffled (from its event log).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks._measure import run_child

CACHE = Path("data/interim/bench-spark")
SIZES = tuple(int(s) for s in os.environ.get("BENCH_SPARK_SIZES", "1,4,10").split(","))
BATCH_DAYS = 7
KEYS = ("declaration_id", "consignee_id", "consignor_id", "forwarder_id", "declarant_id", "consignee_phone_hash",
        "consignee_email_hash", "consignee_addr_hash")  # fmt: skip


def _copies(n: int) -> list[Path]:
    """The first `n` re-keyed copies of the dev world (written when missing)."""
    from benchmarks.train import dev_world
    from targeting.history.store import HISTORY_COLUMNS

    world = dev_world()
    wanted = [CACHE / "copies" / f"copy-{i}" for i in range(n)]
    if all((w / "ready").exists() for w in wanted):
        return wanted
    decl = pd.read_parquet(world / "declarations.parquet", columns=[*HISTORY_COLUMNS, "mode"])
    insp = pd.read_parquet(world / "inspections.parquet")
    for i, folder in enumerate(wanted):
        if (folder / "ready").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        Console(stderr=True).print(f"writing {folder} ({len(decl):,} declarations re-keyed)")
        _rekeyed(decl, i, "filed_at").to_parquet(folder / "declarations.parquet")
        _rekeyed(insp, i, "exam_at").to_parquet(folder / "inspections.parquet")
        (folder / "ready").write_text("ok")
    return wanted


def _rekeyed(frame: pd.DataFrame, i: int, time_column: str) -> pd.DataFrame:
    """`frame` as copy `i`: keys suffixed `~i`, times shifted `i` years (366 days) earlier."""
    out = frame.copy()
    if i:
        for c in KEYS:
            if c in out:
                out[c] = out[c].astype("str") + f"~{i}"
    out[time_column] = out[time_column] - pd.Timedelta(days=366 * i)
    return out


def setup() -> tuple[Path, dict[int, tuple[Path, Path]]]:
    """The dev champion's cache folder and, per size, its history folder and batch."""
    from benchmarks import score
    from benchmarks.train import dev_world
    from targeting.history.layout import Manifest, write_manifest

    cache = score.setup()
    _copies(max(SIZES))
    manifest = CACHE / "batch.parquet"
    if not manifest.exists():  # the newest copy's (copy 0's) parties, new ids, after the history's last event
        decl = pd.read_parquet(dev_world() / "declarations.parquet")
        last = decl["filed_at"].max().normalize()
        batch = decl[decl["filed_at"] >= last - pd.Timedelta(days=BATCH_DAYS - 1)]
        # the day after the copy's last event (outcomes are known up to weeks after the last filing)
        end = max(decl["filed_at"].max(), pd.read_parquet(dev_world() / "inspections.parquet")["exam_at"].max())
        shift = (end - batch["filed_at"].min()).ceil("D") + pd.Timedelta(days=1)
        rows = batch.assign(declaration_id="new-" + batch["declaration_id"].astype("str"),
                            filed_at=batch["filed_at"] + shift)  # fmt: skip
        rows.to_parquet(manifest)
    out = {}
    for k in SIZES:
        history = CACHE / f"history-{k}x"
        history.mkdir(parents=True, exist_ok=True)
        files = {"declarations": [f"../copies/copy-{i}/declarations.parquet" for i in range(k)],
                 "outcomes": [f"../copies/copy-{i}/inspections.parquet" for i in range(k)]}  # fmt: skip
        write_manifest(history, Manifest(version=1, files=files))
        out[k] = (history, manifest)
    return cache, out


_CHILD = """
import os, threading, time, json, glob
import psutil
os.chdir({cache!r})
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + os.path.join({cache!r}, "mlflow.db")
from pathlib import Path

peaks = {{}}
def sample():
    me = psutil.Process()
    while True:
        try:
            procs = [("driver", me)] + [("jvm" if "java" in p.name() else "worker", p) for p in me.children(recursive=True)]
            for kind, p in procs:
                if kind == "worker" and p.parent().name() == "java":
                    continue  # the daemon that forks the workers
                peaks[kind] = max(peaks.get(kind, 0), p.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
threading.Thread(target=sample, daemon=True).start()

from targeting.scoring.spark import session
from targeting.history.spark import save_state
from targeting.scoring.job import score_files
from targeting.scoring.decisions import parse_budgets

spark = session("local[2]", "bench-spark", {{"spark.eventLog.enabled": "true",
                                            "spark.eventLog.dir": "file://" + {events!r},
                                            "spark.eventLog.compress": "false"}})
marks = []
steps = {{}}
t = time.time(); peaks.clear()
folder, sizes = save_state(spark, Path({history!r}), "hit")
steps["history state"] = {{"seconds": time.time() - t, **{{k: v / 2**30 for k, v in peaks.items()}}}}
marks.append(("history state", t * 1000, time.time() * 1000))
t = time.time(); peaks.clear()
run = score_files([Path({manifest!r})], "models:/targeting@champion", Path({history!r}), Path({out!r}),
                  parse_budgets("SEA=2%,AIR=1%,POST=0.5%,EXPRESS=0.5%"), 0.1, engine="spark", spark_master="local[2]")
steps["score --engine spark"] = {{"seconds": time.time() - t, **{{k: v / 2**30 for k, v in peaks.items()}},
                                 "rows": len(run.result.scores)}}
marks.append(("score --engine spark", t * 1000, time.time() * 1000))
spark.stop()
shuffled = {{name: 0 for name, _, _ in marks}}
for path in glob.glob(os.path.join({events!r}, "**", "events_*"), recursive=True):
    for line in open(path):
        if '"SparkListenerTaskEnd"' not in line:
            continue
        event = json.loads(line)
        launched = event["Task Info"]["Launch Time"]
        records = event.get("Task Metrics", {{}}).get("Shuffle Write Metrics", {{}}).get("Shuffle Records Written", 0)
        for name, start, end in marks:
            if start <= launched <= end:
                shuffled[name] += records
for name in steps:
    steps[name]["shuffled"] = shuffled[name]
steps["history state"]["key values"] = sizes["key values"]
RESULT = steps
"""


def main() -> None:
    import shutil

    cache, runs = setup()
    table = Table(title="Spark local[2]: the history's state and a batch scored against it, by history size")
    for col in ("history", "step", "wall s", "driver GiB", "JVM GiB", "Python worker GiB", "rows shuffled", "notes"):
        table.add_column(col, justify="left" if col in ("history", "step", "notes") else "right")
    for k, (history, manifest) in runs.items():
        events = (CACHE / f"events-{k}x").resolve()
        shutil.rmtree(events, ignore_errors=True)
        events.mkdir(parents=True)
        out = (CACHE / f"out-{k}x").resolve()
        Console(stderr=True).print(f"{k}x: state and scoring ...")
        steps = run_child(_CHILD.format(cache=str(cache.resolve()), events=str(events), history=str(history.resolve()),
                                        manifest=str(manifest.resolve()), out=str(out)))  # fmt: skip
        steps.pop("seconds", None)
        steps.pop("peak_rss_gib", None)
        for name, s in steps.items():
            note = f"{s['key values']:,} key values" if "key values" in s else f"{s.get('rows', 0):,} rows scored"
            table.add_row(f"{k}x dev ({k * 3.2:.1f} M)", name, f"{s['seconds']:.1f}", f"{s.get('driver', 0):.2f}",
                          f"{s.get('jvm', 0):.2f}", f"{s.get('worker', 0):.2f}", f"{s['shuffled']:,}", note)  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    sys.exit(main())
