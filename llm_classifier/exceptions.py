"""Exceptions raised by llm_classifier."""

from __future__ import annotations


class ModelNotFoundError(ValueError):
    """A ``model=`` value resolves to nothing usable (the message says how to fix it)."""


class MissingDependencyError(ImportError):
    """An optional package is needed for the requested feature (the message names it)."""


class IncompatibleArtifactError(ValueError):
    """A saved classifier is truncated, corrupt, or from an incompatible version."""


class UnparseableAnswerError(ValueError):
    """A generated answer could not be mapped to a class and the policy is ``"raise"``."""
