"""Metrics, baselines, benchmarks and reports."""
