"""Benchmarks for lth_tf (run from the repository root, e.g. `python -m benchmarks.throughput --quick`)."""
