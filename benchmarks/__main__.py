"""`python -m benchmarks [simulate ...]`: run the named benchmarks (all by default) and print tables."""

from __future__ import annotations

import os
import sys

BENCHMARKS = ("simulate", "threads", "train", "score", "serve", "shapes", "history", "kcs_loop", "spark")


def main(argv: list[str]) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    names = argv or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}"
        )
    for name in names:
        module = __import__(f"benchmarks.{name}", fromlist=["main"])
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
