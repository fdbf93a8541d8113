"""`targeting score` killed at any point (kill -9) leaves its output folder as the previous run left it, or
as the new run wrote it, whole; its report workers die with it; a second run into the same folder waits
for nobody and mixes nothing (it refuses); nothing of an earlier run is logged as this run's."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import make_champion, scratch_project

pytestmark = pytest.mark.slow
OUTPUTS = {"scores.parquet", "scores.csv", "rejects.parquet", "rejects.csv", "explanations.parquet",
           "drift.csv", "selected.parquet", "summary.json", "report.html"}  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny world and a champion in a scratch store, and a manifest whose budget selects enough rows for
    the report to draw its cards with worker processes."""
    with scratch_project(tmp_path_factory.mktemp("interrupted")) as folder:
        world = make_champion(folder)
        manifest = folder / "manifest.parquet"
        pd.read_parquet(world / "declarations.parquet").tail(3000).to_parquet(manifest)
        yield folder, manifest


def _command(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "targeting", "score", str(manifest), "--out", str(out),
            "--budget", "SEA=15,AIR=15,POST=15,EXPRESS=15", *extra]  # fmt: skip


def _descendants(pid: int) -> set[int]:
    """The live processes below `pid` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _whole_run(folder: Path) -> str:
    """The run id of a folder that holds exactly one run's outputs, all consistent with each other."""
    assert {p.name for p in folder.iterdir()} == OUTPUTS
    summary = json.loads((folder / "summary.json").read_text())
    scores = pd.read_parquet(folder / "scores.parquet")
    assert len(scores) == summary["declarations"] == len(pd.read_csv(folder / "scores.csv"))
    assert scores["scored_at"].iloc[0].isoformat() == summary["scored_at"]
    assert summary["run_id"] in (folder / "report.html").read_text()
    return summary["run_id"]


def test_a_run_killed_at_any_point_leaves_the_previous_run_or_the_new_one_whole(project) -> None:
    folder, manifest = project
    out = folder / "out"
    started = time.perf_counter()
    done = subprocess.run(_command(manifest, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    duration = time.perf_counter() - started
    previous, before = _whole_run(out), _snapshot(out)
    seen_new = 0
    for fraction in (0.15, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97):
        run = subprocess.Popen(_command(manifest, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers: set[int] = set()
        deadline = time.perf_counter() + fraction * duration
        while time.perf_counter() < deadline and run.poll() is None:
            workers |= _descendants(run.pid)
            time.sleep(0.05)
        workers |= _descendants(run.pid)
        run.send_signal(signal.SIGKILL)
        run.wait()
        run_id = _whole_run(out)
        if run_id == previous:
            assert _snapshot(out) == before, f"killed at {fraction:.0%}: the previous run's files changed"
        else:  # the kill came after the new run was in place: it is whole (checked above) and now the previous
            seen_new += 1
            previous, before = run_id, _snapshot(out)
        end = time.perf_counter() + 15
        while any(_alive(p) for p in workers) and time.perf_counter() < end:
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], f"killed at {fraction:.0%}: its processes outlived it"
    assert seen_new < 7, "no kill landed before the run finished: the test checked nothing"
    # the next run removes what the killed ones left (their temporary folders) and replaces the folder whole
    done = subprocess.run(_command(manifest, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _whole_run(out) != previous
    assert not list(folder.glob(".out.tmp-*"))


def test_a_second_run_into_the_same_folder_refuses_while_the_first_writes(project) -> None:
    folder, manifest = project
    out = folder / "out-busy"
    first = subprocess.Popen(_command(manifest, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.perf_counter() + 120
        while not list(folder.glob(".out-busy.tmp-*")) and time.perf_counter() < deadline:
            time.sleep(0.05)
        second = subprocess.run(_command(manifest, out), capture_output=True, text=True, timeout=600)
    finally:
        assert first.wait(timeout=600) == 0
    lines = [ln for ln in second.stderr.splitlines() + second.stdout.splitlines() if ln.startswith("error")]
    assert second.returncode == 1 and len(lines) == 1 and "another scoring run is writing" in lines[0]
    _whole_run(out)


def test_no_report_into_a_used_folder_leaves_and_logs_no_earlier_report(project) -> None:
    import mlflow

    folder, manifest = project
    out = folder / "out-reuse"
    for extra in ((), ("--no-report",)):
        done = subprocess.run(_command(manifest, out, *extra), capture_output=True, text=True, timeout=600,
                              env={**os.environ})  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / "report.html").exists()
    summary = json.loads((out / "summary.json").read_text())
    run = mlflow.search_runs(experiment_names=["targeting"], filter_string="tags.job = 'scoring'",
                             order_by=["attributes.start_time DESC"]).iloc[0]  # fmt: skip
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"])]
    assert "report.html" not in artifacts and "summary.json" in artifacts
    assert run["params.out"] == str(out.resolve()) and summary["declarations"] == run["metrics.declarations"]


def test_an_output_folder_that_is_not_a_run_folder_is_never_replaced(project) -> None:
    folder, manifest = project
    precious = folder / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    done = subprocess.run(_command(manifest, precious), capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "not a scoring run's folder" in done.stderr + done.stdout
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
