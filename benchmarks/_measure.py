"""Run a stage in a fresh child process and report its wall time and peak resident memory."""

from __future__ import annotations

import json
import subprocess
import sys


def run_child(code: str) -> dict[str, float]:
    """Run `code` in a new interpreter; it may print one JSON line of extra figures last."""
    wrapper = (
        "import json, resource, time\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "extra = globals().get('RESULT', {})\n"
        "extra['seconds'] = time.perf_counter() - t0\n"
        "extra['peak_rss_gib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20\n"
        "print(json.dumps(extra))\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


#: child code recording wall time and peak memory at each `say(stage)` into STAGES (FIRST: the opening stage)
STAGE_RECORDER = """
STAGES = []
_last = [time.perf_counter(), {first!r}]
def say(stage):
    now = time.perf_counter()
    STAGES.append([_last[1], now - _last[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20])
    _last[0], _last[1] = now, stage
"""
