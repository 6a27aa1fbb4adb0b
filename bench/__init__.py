"""Benchmarks: the generated stack measured side by side with the alternatives users would pick.

Run `make bench` or `.venv/bin/python -m bench.run [--quick] [--only SECTIONS]`; see bench/README.md.
"""
