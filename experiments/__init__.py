"""Runnable experiments: `python -m experiments.run --config hybrid.py`."""
