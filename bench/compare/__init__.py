"""Comparison harness: Fedra against NVIDIA FLARE and Flower on the same FedAvg workload.

Run with ``make bench-compare`` (or ``.venv/bin/python -m bench.compare --help``); see
:mod:`bench.compare.harness` and docs/benchmarks.md.
"""
