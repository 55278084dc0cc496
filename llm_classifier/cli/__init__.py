"""The ``llm-classifier`` command line (fit, predict, evaluate, info), over the public API only."""

from .main import main

__all__ = ["main"]
