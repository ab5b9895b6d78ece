"""Benchmarks and retrieval-quality evaluation: `make bench` (run.py) and `make eval` (eval.py)."""
