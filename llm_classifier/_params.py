"""LLMClassifier's parameters: their constraints and the rules between them, checked once, in ``fit``
(and on the parameters read from a saved classifier, by the same function, :func:`check_param_values`).

The per-parameter constraints use scikit-learn's declarative validation (``_fit_context``
checks them before ``fit`` runs, with scikit-learn's messages). :func:`check_params`
adds what a constraint cannot express (bools given as numbers, empty names, rules that
depend on the direction), before any model loads. Prediction does not check parameters
again: like every scikit-learn estimator, a parameter changed with ``set_params`` after
``fit`` takes effect at the next ``fit``, except the prediction settings (:data:`PREDICTION_SETTINGS`), which
are used as they are and so checked at every prediction (:func:`check_prediction_params`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import (Interval, InvalidParameterError, StrOptions,
                                            validate_parameter_constraints)

from .encoding import TRUNCATIONS
from .exceptions import invalid
from .formulations.registry import DIRECTIONS, get_direction
from .formulations.windows import LONG_TEXT
from .plugins.base import check_plugin

#: The training objectives every engine understands (see :class:`~llm_classifier.engines.base.TrainRequest`).
OBJECTIVES = ("answer", "class", "answer+class")
PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "model": [str, os.PathLike],
    "prompt": [object],
    "direction": [StrOptions(set(DIRECTIONS))],
    "few_shot": [Interval(Integral, 0, None, closed="left")],
    "verbalizer": [object, None],
    "label_parser": [object, None],
    "backend": [object],
    "inference": [StrOptions({"score", "generate"})],
    "on_unparseable": [object],
    "quantization": [StrOptions({"4bit", "8bit"}), None],
    "lora_r": [Interval(Integral, 1, None, closed="left")],
    "lora_alpha": [Interval(Real, 0, None, closed="neither")],
    "lora_dropout": [Interval(Real, 0, 1, closed="left")],
    "target_modules": [list, tuple, str, None],
    "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "max_steps": [Interval(Integral, 0, None, closed="left"), None],
    "num_train_epochs": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "gradient_accumulation_steps": [Interval(Integral, 1, None, closed="left")],
    "warmup_steps": [Interval(Integral, 0, None, closed="left")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "optimizer": [str],  # the engine declares the names it knows (Capabilities.option_constraints)
    "lr_scheduler": [str],
    "ema_decay": [Interval(Real, 0, 1, closed="left"), None],
    "objective": [StrOptions(set(OBJECTIVES))],
    "calibration": [StrOptions({"auto", "prior", "affine"}), None],
    "class_weight": [StrOptions({"balanced"}), dict, None],
    "gradient_checkpointing": ["boolean"],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 0.5, closed="right")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
    "max_length": [Interval(Integral, 8, None, closed="left")],
    "truncation": [StrOptions(set(TRUNCATIONS))],
    "long_text": [StrOptions(set(LONG_TEXT))],
    "window_overlap": [Interval(Real, 0, 1, closed="left")],
    "max_windows": [Interval(Integral, 1, None, closed="left"), None],
    "eval_batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_new_tokens": [Interval(Integral, 1, None, closed="left"), None],
    "confidence_threshold": [Interval(Real, 0, 1, closed="right"), None],
    "on_low_confidence": [None, str, Real, "boolean"],  # one reject value: a list would be spread over the rows
    "dtype": [StrOptions({"auto", "bfloat16", "float16", "float32"})],
    "device": [str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "multilabel_threshold": [Interval(Real, 0, 1, closed="neither"), StrOptions({"auto"})],
    "positive_weight": [Interval(Real, 0, None, closed="neither"), StrOptions({"balanced"}), None],
}

_INT_PARAMS = ("lora_r", "max_steps", "batch_size", "gradient_accumulation_steps", "warmup_steps", "max_length",
               "eval_batch_size", "max_new_tokens", "max_windows")
_REAL_PARAMS = ("lora_alpha", "lora_dropout", "learning_rate", "num_train_epochs", "weight_decay", "window_overlap",
                "positive_weight")
#: The parameters that may hold one of llm_classifier's plugins, whose own parameters are checked too.
PLUGIN_PARAMS = ("prompt", "verbalizer", "label_parser")


class ParamValues:
    """A dict of parameter values seen as attributes, as the rules read an estimator's (``owner`` names it)."""

    def __init__(self, params: Mapping[str, Any], owner: str = "LLMClassifier"):
        self.__dict__.update(params)
        self.estimator_name = owner  # named in the messages of exceptions.invalid


def check_param_values(params: Mapping[str, Any], owner: str = "LLMClassifier") -> ParamValues:
    """Check a dict of parameter values against :data:`PARAMETER_CONSTRAINTS` and the cross-field rules.

    The one check of a parameter set: ``fit`` runs it on the estimator's parameters (:func:`check_params`),
    and loading a saved classifier on the parameters read from its file, so a file cannot hold a value
    ``fit`` would refuse.

    Parameters
    ----------
    params : mapping
        Every parameter of ``owner`` by name.
    owner : str
        The class named in the messages.

    Returns
    -------
    ParamValues
        ``params`` as attributes (for :func:`check_class_params`).

    Raises
    ------
    InvalidParameterError
        Naming the parameter, in scikit-learn's wording.
    """
    constraints = {name: PARAMETER_CONSTRAINTS[name] for name in params if name in PARAMETER_CONSTRAINTS}
    validate_parameter_constraints(constraints, dict(params), caller_name=owner)
    values = ParamValues(params, owner)
    _check_rules(values)
    return values


def _check_no_bools(estimator: Any, params: Iterable[str]) -> None:
    for param in params:
        value = getattr(estimator, param)
        if isinstance(value, (bool, np.bool_)):
            raise invalid(estimator, param, "a number, not a bool", value)


def check_params(estimator: Any) -> None:
    """The estimator's parameters, by :func:`check_param_values`; run at the start of ``fit``, before the model loads."""
    check_param_values(estimator.get_params(deep=False), type(estimator).__name__)


def _check_rules(estimator: Any) -> None:
    """What the constraints cannot express.

    Rejects bools given as numbers, a ``verbalizer`` or ``label_parser`` that does not resolve (an
    unknown name), an empty model name, malformed ``target_modules``, the
    settings the direction cannot serve, a plugin (template, verbalizer, label parser) whose own
    parameters break its constraints (:func:`~llm_classifier.plugins.base.check_plugin`), and
    ``prompt`` strings that are neither a template name nor a format string with exactly one
    ``{text}`` (the direction resolves the prompt).
    """
    from .plugins.labels import resolve_parser, resolve_verbalizer

    _check_no_bools(estimator, _INT_PARAMS + _REAL_PARAMS)
    resolve_verbalizer(estimator.verbalizer)  # an unknown name ("bogus") is refused here, in fit and at load
    resolve_parser(estimator.label_parser)
    for name in PLUGIN_PARAMS:
        try:
            check_plugin(getattr(estimator, name))
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"The {name!r} parameter of {estimator.estimator_name} is refused: {exc}") from None
    model = estimator.model
    if not os.fspath(model).strip():
        raise invalid(estimator, "model", "a packaged model alias (e.g. 'smollm2-135m-instruct'), a checkpoint "
                      "directory, a .gguf file or a hub id", model)
    targets = estimator.target_modules
    if targets is not None:
        items = [targets] if isinstance(targets, str) else list(targets)
        if not items or not all(isinstance(item, str) and item.strip() for item in items):
            raise invalid(estimator, "target_modules", "None, a module name or a non-empty list of module names (str)",
                          targets)
    check_prediction_rules(estimator)
    direction = get_direction(estimator.direction)
    for name, allowed in direction.check_params(estimator):
        raise invalid(estimator, name, allowed, getattr(estimator, name))
    direction.check_prompt(estimator.prompt)


#: The parameters prediction reads as they are when it runs: one changed with ``set_params`` after ``fit`` acts at
#: once, so every prediction checks them (:func:`check_prediction_params`); the others act at the next ``fit``.
PREDICTION_SETTINGS = ("inference", "long_text", "confidence_threshold", "on_low_confidence", "on_unparseable",
                       "max_length", "truncation", "window_overlap", "max_windows", "eval_batch_size", "max_new_tokens",
                       "verbose")


def check_prediction_params(values: Any, classes: np.ndarray) -> None:
    """The parameters prediction reads (:data:`PREDICTION_SETTINGS`), checked as ``fit`` checks them: their
    constraints, no bools as numbers, the rules between them (:func:`check_prediction_rules`) and the rules on the
    classes (:func:`check_class_params`). Run at every prediction: a value set after ``fit`` that ``fit`` would refuse
    predicted silently wrong (a ``confidence_threshold`` of 5 rejected every text, a reject value equal to a class
    read as that class, ``inference="bogus"`` generated) or crashed inside numpy.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, with the message ``fit`` gives.
    """
    validate_parameter_constraints({name: PARAMETER_CONSTRAINTS[name] for name in PREDICTION_SETTINGS},
                                   {name: getattr(values, name) for name in PREDICTION_SETTINGS},
                                   caller_name=values.estimator_name)
    _check_no_bools(values, [name for name in PREDICTION_SETTINGS if name in _INT_PARAMS + _REAL_PARAMS])
    check_prediction_rules(values)
    check_class_params(values, classes)


def check_prediction_rules(values: Any) -> None:
    """The rules between the prediction settings (``inference``, ``confidence_threshold``, ``long_text``): part of
    :func:`check_param_values` at ``fit``, and run again at every prediction, since these settings act at once when
    changed with ``set_params`` (a ``confidence_threshold`` would otherwise be ignored in generate mode)."""
    if values.confidence_threshold is not None and values.inference != "score":
        raise invalid(values, "confidence_threshold", "None when inference='generate' (it acts on the scored "
                      "probabilities)", values.confidence_threshold)
    if values.long_text != "truncate" and values.inference != "score":  # windows are pooled scores
        raise invalid(values, "long_text", "'truncate' when inference='generate' (windows pool class scores)",
                      values.long_text)


def _is_class(value: Any, classes: np.ndarray) -> bool:
    try:
        return np.ndim(value) == 0 and bool(np.any(classes == value))
    except (TypeError, ValueError):
        return False


def is_reject_value(policy: Any) -> bool:
    """Whether ``on_low_confidence`` is a value put in place of the class of a low-confidence text (any value,
    None included, but the policies "warn" and "raise"): the class check and the command line's output columns read
    the parameter through it (the decision rule, ``pipeline.predict.decide``, acts on each policy in turn)."""
    return not (isinstance(policy, str) and policy in ("warn", "raise"))


def check_class_params(estimator: Any, classes: np.ndarray) -> None:
    """The parameters that refer to the classes: :func:`check_on_unparseable`, and a reject value
    (``on_low_confidence`` other than "warn" and "raise") that is not one of the classes, nor of the same text as one
    (-1 among the classes "-1", "0", "1": written to a file, or compared as text by the command line's metrics), since
    a rejected row would read as that class. Run in ``fit`` once the classes are known, at load, at save and at every
    prediction."""
    check_on_unparseable(estimator, classes)
    value = estimator.on_low_confidence
    if value is None or not is_reject_value(value):  # None is never a class
        return
    if _is_class(value, classes) or str(value) in {str(c) for c in classes.tolist()}:  # -1 and "-1": the same text
        raise invalid(estimator, "on_low_confidence", f"'warn', 'raise', None or a reject value that is not one of the "
                      f"classes {classes.tolist()!r} nor read as one in a file (a rejected text would read as that "
                      "class)", value)


def check_on_unparseable(estimator: Any, classes: np.ndarray) -> None:
    """In generate mode, ``on_unparseable`` must be "score", "raise" or one of the classes."""
    if estimator.inference != "generate":
        return
    value = estimator.on_unparseable
    if isinstance(value, str) and value in ("score", "raise"):
        return
    if not _is_class(value, classes):
        raise invalid(estimator, "on_unparseable", f"'score', 'raise' or one of the classes {classes.tolist()!r}", value)
