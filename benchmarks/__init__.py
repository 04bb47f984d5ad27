"""Reproducible performance measurements; `python -m benchmarks.run` writes RESULTS.md."""
