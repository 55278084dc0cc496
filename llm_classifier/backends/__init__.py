"""Model engines. ``backend="transformers"`` is the default; any :class:`Backend` object works."""

from __future__ import annotations

from typing import Any

from .base import Backend

BACKENDS = ("transformers",)


def resolve_backend(backend: Any) -> Backend:
    """Return a fresh backend object for a ``backend=`` value (a name or a Backend instance)."""
    import copy

    if isinstance(backend, str):
        if backend == "transformers":
            from .hf.engine import TransformersBackend

            return TransformersBackend()
        raise ValueError(
            f"The 'backend' parameter of LLMClassifier must be one of {list(BACKENDS)} or an object "
            f"implementing llm_classifier.backends.Backend. Got {backend!r} instead."
        )
    missing = [name for name in ("load", "fit", "score", "generate") if not callable(getattr(backend, name, None))]
    if missing:
        raise ValueError(
            f"The 'backend' parameter of LLMClassifier is {backend!r}, which lacks the methods {missing}; "
            "see llm_classifier.backends.Backend."
        )
    # Work on a copy so the estimator's parameter stays an unfitted template (sklearn's clone contract).
    return copy.deepcopy(backend)


def check_backend_takes_weights(backend: Any, sample_weight: Any) -> None:
    """Raise before any model is loaded when ``sample_weight`` is given to a backend whose ``fit`` cannot take it."""
    import inspect

    if sample_weight is None:
        return
    parameters = inspect.signature(backend.fit).parameters
    if "sample_weight" not in parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        raise TypeError(
            f"fit(sample_weight=...) needs a backend whose fit() takes sample_weight; {type(backend).__name__}.fit does not "
            "(see llm_classifier.backends.Backend)."
        )


__all__ = ["Backend", "BACKENDS", "check_backend_takes_weights", "resolve_backend"]
