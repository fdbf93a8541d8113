"""Performance benchmarks: each prints a table (`python -m benchmarks [NAME ...]`)."""
