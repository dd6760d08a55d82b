"""Benchmarks: each script prints or writes JSON that records its provenance (bench/common.py)."""
