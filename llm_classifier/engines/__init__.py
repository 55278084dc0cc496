"""Model engines. ``backend="transformers"`` is the default; any :class:`Engine` object works.

Engines are named here and imported only when used: the Hugging Face engine
(:mod:`llm_classifier.engines.hf`) and the pure-numpy reference engine
(:mod:`llm_classifier.engines.reference`, for tests and as a worked example), and the vLLM
engine for prediction and serving (:mod:`llm_classifier.engines.vllm`, an optional extra).
"""

from __future__ import annotations

import copy
from typing import Any

from sklearn.utils._param_validation import InvalidParameterError

from .base import Backend, Capabilities, Decision, Engine, EngineState, Tokenizer, TrainExample, TrainRequest

#: ``backend=`` names and the engine each one makes (module, class), imported on use.
ENGINES = {
    "transformers": ("llm_classifier.engines.hf.engine", "TransformersBackend"),
    "reference": ("llm_classifier.engines.reference", "ReferenceEngine"),
    "vllm": ("llm_classifier.engines.vllm.engine", "VLLMEngine"),  # inference only; pip install "llm_classifier[vllm]"
}
BACKENDS = tuple(ENGINES)
_REQUIRED = ("load", "fit", "score", "generate", "state", "load_state")


def engine_class(name: str) -> type:
    """The engine class registered as ``name`` (a key of :data:`ENGINES`)."""
    import importlib

    module, attribute = ENGINES[name]
    return getattr(importlib.import_module(module), attribute)


def resolve_backend(backend: Any) -> Engine:
    """A fresh engine for a ``backend=`` value (a registered name or an :class:`Engine` object)."""
    if isinstance(backend, str):
        if backend not in ENGINES:
            raise InvalidParameterError(
                f"The 'backend' parameter of LLMClassifier must be one of {list(ENGINES)} or an object "
                f"implementing llm_classifier.engines.Engine. Got {backend!r} instead."
            )
        return engine_class(backend)()
    missing = [name for name in _REQUIRED if not callable(getattr(backend, name, None))]
    if missing or not isinstance(getattr(backend, "capabilities", None), Capabilities):
        lacks = f"the methods {missing}" if missing else "a Capabilities object as `capabilities`"
        raise InvalidParameterError(
            f"The 'backend' parameter of LLMClassifier must implement llm_classifier.engines.Engine; "
            f"{backend!r} lacks {lacks}."
        )
    # Work on a copy so the estimator's parameter stays an unfitted template (sklearn's clone contract).
    return copy.deepcopy(backend)


__all__ = ["BACKENDS", "Backend", "Capabilities", "Decision", "ENGINES", "Engine", "EngineState", "Tokenizer",
           "TrainExample", "TrainRequest",
           "engine_class", "resolve_backend"]
