"""The evaluation protocols of evaluation.md: A (public KCS declarations) and B (the simulated world)."""
