"""Model engines. ``backend="transformers"`` is the default; any :class:`Engine` object works.

Engines are found by kind name in one registry, :data:`ENGINES`, and imported only when used:
the Hugging Face engine (:mod:`llm_classifier.engines.hf`), the pure-numpy reference engine
(:mod:`llm_classifier.engines.reference`, for tests and as a worked example), and the vLLM
engine for prediction and serving (:mod:`llm_classifier.engines.vllm`, an optional extra).
Each engine class declares its kind name as ``name``; a third-party engine joins with
:func:`register_engine`. Nothing outside this package imports a particular engine: the
estimator, persistence and the command line ask the registry.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sklearn.utils._param_validation import InvalidParameterError

from .base import Backend, Capabilities, Decision, Engine, EngineState, Tokenizer, TrainExample, TrainRequest

#: ``backend=`` kind names and the engine class each one names, as ``"module:Class"`` (imported on use).
ENGINES: dict[str, str] = {
    "transformers": "llm_classifier.engines.hf.engine:TransformersBackend",
    "reference": "llm_classifier.engines.reference:ReferenceEngine",
    "vllm": "llm_classifier.engines.vllm.engine:VLLMEngine",  # inference only; an optional extra
}
#: The built-in kind names (:func:`register_engine` adds to :data:`ENGINES`, not to these).
BACKENDS = tuple(ENGINES)
_REQUIRED = ("load", "fit", "score", "generate", "state", "load_state")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def register_engine(name: str, target: str | type) -> None:
    """Register the engine class ``target`` under the kind name ``name``.

    The name is then a ``backend=`` value, and a classifier whose ``backend`` parameter is
    such an engine object is saved by that name and rebuilt from it at load. The class must
    declare the same name as its ``name`` attribute. Registering a name again with the same
    target does nothing; with another target it raises.

    Parameters
    ----------
    name : str
        The kind name (e.g. ``"my-engine"``).
    target : str or type
        ``"package.module:ClassName"`` (imported when first used) or the class itself.

    Raises
    ------
    ValueError
        If ``name`` is empty or taken by another engine, if ``target`` is not ``"module:Class"``,
        or if the class declares another ``name``.

    Examples
    --------
    >>> from llm_classifier.engines import ENGINES, register_engine
    >>> register_engine("reference", "llm_classifier.engines.reference:ReferenceEngine")  # already there
    >>> ENGINES["reference"]
    'llm_classifier.engines.reference:ReferenceEngine'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"The 'name' parameter of register_engine must be a non-empty str. Got {name!r} instead.")
    if isinstance(target, type):
        _check_declared_name(name, target)
        target = f"{target.__module__}:{target.__qualname__}"
    if not isinstance(target, str) or not _TARGET.match(target):
        raise ValueError(f"The 'target' parameter of register_engine must be a class or a 'module:Class' string. "
                         f"Got {target!r} instead.")
    if ENGINES.get(name, target) != target:
        raise ValueError(f"The engine name {name!r} is already registered to {ENGINES[name]!r}; choose another name.")
    ENGINES[name] = target


def _check_declared_name(name: str, cls: type) -> None:
    declared = getattr(cls, "name", None)
    if declared != name:
        raise ValueError(f"The engine class {cls.__module__}.{cls.__qualname__} declares the name {declared!r}, "
                         f"but is registered as {name!r}; set `name = {name!r}` on the class.")


def engine_class(name: str) -> type:
    """The engine class registered as ``name`` (a key of :data:`ENGINES`), imported now."""
    if name not in ENGINES:
        raise KeyError(f"No engine is registered as {name!r}; the registered engines are {sorted(ENGINES)}.")
    module, _, attribute = ENGINES[name].partition(":")
    cls = importlib.import_module(module)
    for part in attribute.split("."):
        cls = getattr(cls, part)
    _check_declared_name(name, cls)
    return cls


def registered_name(engine: Any) -> str | None:
    """The kind name ``engine`` (an engine object) is registered under, or None when its class is not the registered one.

    Compares class paths without importing any engine other than ``engine``'s own.
    """
    cls = type(engine)
    name = getattr(cls, "name", None)
    if isinstance(name, str) and ENGINES.get(name) == f"{cls.__module__}:{cls.__qualname__}":
        return name
    return None


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


def check_options(engine: Engine, options: dict[str, Any], owner: str = "LLMClassifier") -> None:
    """Check ``options`` against the engine's declared constraints (before it loads anything)."""
    from sklearn.utils._param_validation import validate_parameter_constraints

    constraints = engine.capabilities.option_constraints
    validate_parameter_constraints(constraints, {name: options[name] for name in constraints if name in options},
                                   caller_name=owner)


def restore_engine(state: EngineState, backend: Any, options: Callable[[Engine], dict[str, Any]], *,
                   model: str | None = None, trust_remote_code: bool = False) -> Engine:
    """A fresh engine for ``backend`` holding the fitted ``state`` (saved by this or any other engine).

    ``options(engine)`` gives the estimator's parameters the engine declares; ``trust_remote_code``
    comes from the caller only, never from a file: an engine that can run a model folder's code
    declares a ``trust_remote_code`` attribute, which is set to exactly this value.
    """
    engine = resolve_backend(backend)
    if hasattr(engine, "trust_remote_code"):
        engine.trust_remote_code = trust_remote_code
    elif trust_remote_code:
        raise TypeError(f"trust_remote_code=True: the engine {type(engine).__name__} never runs a model's own code.")
    engine_options = options(engine)
    check_options(engine, engine_options)
    engine.load_state(replace(state, engine=engine.name), model=model, **engine_options)
    return engine


__all__ = ["BACKENDS", "Backend", "Capabilities", "Decision", "ENGINES", "Engine", "EngineState", "Tokenizer",
           "TrainExample", "TrainRequest",
           "check_options", "engine_class", "register_engine", "registered_name", "resolve_backend", "restore_engine"]
