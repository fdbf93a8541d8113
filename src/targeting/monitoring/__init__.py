"""`targeting monitor`: real performance over time from the outcomes a history recorded (`performance.py`),
as a self-contained HTML page and CSV tables (`page.py`)."""
