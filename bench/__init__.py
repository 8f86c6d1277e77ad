"""Benchmarks of Fedra (run with ``make bench``)."""
