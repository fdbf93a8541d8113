"""The daily batch: read today's manifests, score, decide within budgets, explain, write, report, record."""
