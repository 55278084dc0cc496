"""The estimator's parameters resolved once into a frozen plan that the fit and predict steps take.

:func:`plan_of` reads ``LLMClassifier.get_params()`` once (at ``fit``, and at every
prediction call, because prediction settings changed with ``set_params`` take effect at
once); no pipeline step reads the estimator. A plan keeps each parameter under its public
name (so a check can name it) and adds what is derived from them: the formulation (the
direction, or multi-label when the targets say so), the training schedule and the engine
options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..engines.base import Engine
from ..formulations.registry import get_formulation
from .holdout import EARLY_STOPPING_MIN_TEXTS

__all__ = ["Plan", "plan_of", "plan_of_params"]

@dataclass(frozen=True)
class Plan:
    """LLMClassifier's parameters as one immutable value (see the estimator for each one's meaning)."""

    estimator_name: str
    model: Any
    prompt: Any
    direction: str
    few_shot: int
    verbalizer: Any
    label_parser: Any
    backend: Any
    inference: str
    on_unparseable: Any
    max_steps: int | None
    num_train_epochs: float | str
    batch_size: int
    gradient_accumulation_steps: int
    warmup_steps: int
    learning_rate: float | str
    weight_decay: float
    objective: str
    calibration: str | None
    class_weight: Any
    early_stopping: bool | str
    validation_fraction: float
    n_iter_no_change: int | None
    max_length: int
    truncation: str
    long_text: str
    window_overlap: float
    max_windows: int | None
    eval_batch_size: int
    max_new_tokens: int | None
    confidence_threshold: float | None
    on_low_confidence: Any
    random_state: Any
    verbose: bool | int
    multilabel_threshold: float | str
    positive_weight: float | str | None
    #: Every parameter, by name: the engine takes those its ``capabilities.options`` name.
    params: tuple[tuple[str, Any], ...] = ()
    #: The formulation's registry name ("direct", "channel", "multilabel").
    formulation_name: str = "direct"

    @property
    def formulation(self) -> Any:
        """The formulation object (see :mod:`llm_classifier.formulations`)."""
        return get_formulation(self.formulation_name)

    def for_formulation(self, name: str) -> Plan:
        """This plan with the formulation the targets chose (multi-label targets choose "multilabel")."""
        return replace(self, formulation_name=name)

    def engine_options(self, engine: Engine) -> dict[str, Any]:
        """The parameters the engine declares it takes (``capabilities.options``), by name."""
        params = dict(self.params)
        return {name: params[name] for name in engine.capabilities.options if name in params}

    def holds_out(self, n_texts: int) -> bool:
        """Whether early stopping asks for a validation slice for ``n_texts`` training texts."""
        if self.max_steps == 0 or self.early_stopping is False:
            return False
        return not (self.early_stopping == "auto" and n_texts < EARLY_STOPPING_MIN_TEXTS)

    def schedule(self, engine: Engine, validated: bool, seed: int) -> dict[str, Any]:
        """The training schedule of :class:`~llm_classifier.engines.base.TrainRequest` ("auto" epochs resolved)."""
        epochs = self.num_train_epochs
        return dict(
            max_steps=self.max_steps,
            num_train_epochs=(4.0 if validated else 2.0) if epochs == "auto" else float(epochs),
            batch_size=self.batch_size, gradient_accumulation_steps=self.gradient_accumulation_steps,
            warmup_steps=self.warmup_steps, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            objective=self.objective, patience=self.n_iter_no_change, eval_batch_size=self.eval_batch_size,
            seed=seed, verbose=bool(self.verbose), options=self.engine_options(engine),
        )


_FIELDS = tuple(f.name for f in fields(Plan) if f.name not in ("estimator_name", "params", "formulation_name"))


def plan_of(estimator: Any) -> Plan:
    """The plan of ``estimator``'s current parameters (read once; the estimator is not kept)."""
    return plan_of_params(estimator.get_params(deep=False), type(estimator).__name__)


def plan_of_params(params: dict[str, Any], estimator_name: str = "LLMClassifier") -> Plan:
    """The plan of a parameter dict (every parameter of the estimator present)."""
    return Plan(estimator_name=estimator_name, params=tuple(params.items()), formulation_name=params["direction"],
                **{name: params[name] for name in _FIELDS})
