"""Benchmark suite of ``llm_classifier``: offline tasks, baselines and LLM methods.

Run ``python -m benchmarks --help``. Tasks live in :mod:`benchmarks.tasks`,
methods in :mod:`benchmarks.methods`, reports in :mod:`benchmarks.report`.
"""

__all__: list[str] = []
