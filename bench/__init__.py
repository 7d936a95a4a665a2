"""Benchmark scripts: each prints a table; results and the machine go into docs/."""
