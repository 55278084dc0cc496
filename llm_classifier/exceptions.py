"""Exceptions raised by llm_classifier."""

from __future__ import annotations

from typing import Any

from sklearn.utils._param_validation import InvalidParameterError


class ModelNotFoundError(ValueError):
    """A ``model=`` value resolves to nothing usable (the message says how to fix it)."""


class IncompatibleArtifactError(ValueError):
    """A saved classifier is truncated, corrupt, or from an incompatible version."""


class UnparseableAnswerError(ValueError):
    """A generated answer could not be mapped to a class and the policy is ``"raise"``."""


class UnparseableAnswerWarning(UserWarning):
    """``predict`` in generate mode met answers it could not map to a class (the message says how many)."""


class LowConfidenceError(ValueError):
    """``predict`` met texts whose top probability is under ``confidence_threshold`` and the policy is ``"raise"``."""


class LowConfidenceWarning(UserWarning):
    """``predict`` met texts under ``confidence_threshold`` (``on_low_confidence="warn"``; the message says how many)."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite: the adapter is unusable (the message gives the step)."""


def invalid(owner: Any, param: str, expected: str, value: Any) -> InvalidParameterError:
    """scikit-learn's error for a bad parameter value, in its wording (``owner``: the estimator or its plan)."""
    name = getattr(owner, "estimator_name", None) or type(owner).__name__
    return InvalidParameterError(f"The {param!r} parameter of {name} must be {expected}. Got {value!r} instead.")
