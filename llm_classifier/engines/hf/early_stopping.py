"""Validation during fine-tuning: a held-out slice, best-adapter restore and early stopping.

With ``LLMClassifier(early_stopping=True)`` a stratified share of the training texts
is held out. Every ``eval_steps`` optimizer steps :class:`BestAdapterMonitor`
calls the core's validation with this engine's scoring function (the core scores
the slice exactly as ``predict_proba`` would, whatever the formulation, and
returns its loss), keeps a copy of the adapter weights with the lowest validation
loss (the later one on a near tie), stops training after ``patience``
evaluations without one and, at the end, puts the best weights back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from .adapter_weights import load_weights, snapshot, trainable_parameters

if TYPE_CHECKING:
    from ..base import Validation
    from .averaging import AdapterEMA

__all__ = ["BestAdapterMonitor", "NEAR_TIE", "trainer_callback"]

#: A later evaluation whose validation loss is within this many nats of the best so far
#: replaces it (and counts as progress): on a slice of a few dozen texts such differences
#: are noise, and the later adapter has trained longer at a lower learning rate.
NEAR_TIE = 0.01


class BestAdapterMonitor:
    """Score the validation slice during training; keep the best adapter; stop early.

    A plain object (no transformers import); :func:`trainer_callback` hooks it into a
    :class:`transformers.Trainer`.

    Parameters
    ----------
    model : peft model
        The model being trained (its LoRA weights are copied and restored).
    validation : callable
        The core's :data:`~llm_classifier.engines.base.Validation`: called with this engine's
        scoring function under the current adapter, it returns ``(loss, scores)``.
    pad_id : int
    eval_steps : int
        Evaluate every this many optimizer steps (and after the last step).
    patience : int or None
        Stop after this many evaluations without a lower validation loss
        (``None``: train to the end, still restoring the best adapter).
    averaged : AdapterEMA, optional
        Score (and keep) the moving average of the adapter weights instead of the trained ones.
    """

    def __init__(self, model: Any, validation: Validation, pad_id: int, eval_steps: int, patience: int | None,
                 averaged: AdapterEMA | None = None) -> None:
        self.model = model
        self.validation = validation
        self.pad_id = pad_id
        self.eval_steps = max(1, int(eval_steps))
        self.patience = patience
        self.averaged = averaged
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self.best_step: int | None = None
        #: the scores ``validation`` returned for the best adapter (for calibration or thresholds)
        self.best_scores: np.ndarray | None = None
        self._best_loss = math.inf
        self._since_best = 0

    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *, batch_size: int,
              progress: Any = None) -> np.ndarray:
        """:meth:`~llm_classifier.engines.base.Engine.score` under the model as it is now (the adapter being trained)."""
        from .scoring import score_pairs

        return score_pairs(self.model, contexts, continuations, pad_id=self.pad_id, batch_size=batch_size,
                           progress=progress)

    def evaluate(self, step: int) -> dict[str, float]:
        """Score the validation slice with the current adapter; remember it if it is the best so far."""
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with self.averaged.applied() if self.averaged is not None else nullcontext(), torch.inference_mode():
                loss, scores = self.validation(self.score)
        finally:
            self.model.train(was_training)
        record = {"step": int(step), "log_loss": float(loss)}
        self.history.append(record)
        if record["log_loss"] <= self._best_loss + NEAR_TIE:
            self._best_loss = min(self._best_loss, record["log_loss"])
            self.best_step = int(step)
            self.best = snapshot(self._scored_weights())
            self.best_scores = scores
            self._since_best = 0
        else:
            self._since_best += 1
        return record

    def _scored_weights(self) -> dict[str, Any]:
        """The adapter weights that :meth:`evaluate` scores: the moving average, or the trained ones."""
        if self.averaged is not None:
            return self.averaged.shadow
        return trainable_parameters(self.model)

    def due(self, step: int, max_steps: int) -> bool:
        """Whether to evaluate after optimizer step ``step`` (every ``eval_steps`` and after the last)."""
        return step % self.eval_steps == 0 or step >= max_steps

    @property
    def should_stop(self) -> bool:
        """``patience`` evaluations have passed without a new best."""
        return self.patience is not None and self._since_best >= self.patience

    def restore(self) -> None:
        """Put the best adapter weights back into the model."""
        if self.best is not None:
            load_weights(trainable_parameters(self.model), self.best)


def trainer_callback(monitor: BestAdapterMonitor) -> Any:
    """A :class:`transformers.TrainerCallback` that runs ``monitor`` after each optimizer step."""
    from transformers import TrainerCallback  # already imported (and quietened) by training.train, its caller

    class BestAdapterCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if monitor.due(state.global_step, state.max_steps):
                monitor.evaluate(state.global_step)
                if monitor.should_stop:
                    control.should_training_stop = True
            return control

    return BestAdapterCallback()
