"""Protocol C, the closed loop (`targeting backtest`): `loop.py` runs it, `metrics.py` counts what it caught
against ground truth, `plots.py` draws it, `record.py` writes and logs it."""
