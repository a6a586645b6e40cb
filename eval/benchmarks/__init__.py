"""Benchmark scripts (the application layer: they run critmine end to end and print figures). Run them as
`python eval/benchmarks/NAME.py`; nothing in critmine imports them."""
