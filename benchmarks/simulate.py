"""Simulator speed and memory: rows/s and peak RSS per preset (issue 4: dev <= 2 min, < 6 GiB)."""

from __future__ import annotations

import tempfile

from rich.console import Console
from rich.table import Table

from benchmarks._measure import run_child

PRESETS = ("small", "dev")


def main(presets: tuple[str, ...] = PRESETS) -> None:
    table = Table(title="targeting simulate (seed 7, whole run incl. writing Parquet)", header_style="bold")
    for col in ("preset", "declarations", "seconds", "rows/s", "peak RSS GiB"):
        table.add_column(col, justify="right")
    for name in presets:
        with tempfile.TemporaryDirectory() as out:
            code = (
                "from targeting.simulate.config import preset\n"
                "from targeting.simulate.run import simulate\n"
                "import json, pathlib\n"
                f"simulate(preset({name!r}, seed=7), {out!r})\n"
                f"RESULT = {{'rows': json.loads((pathlib.Path({out!r}) / 'manifest.json').read_text())"
                "['rows']['declarations']}\n"
            )
            r = run_child(code)
        table.add_row(name, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
                      f"{r['peak_rss_gib']:.2f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
