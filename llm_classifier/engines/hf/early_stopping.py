"""Validation during fine-tuning: a held-out slice, best-adapter restore and early stopping.

With ``LLMClassifier(early_stopping=True)`` a stratified share of the training texts
is held out. Every ``eval_steps`` optimizer steps :class:`BestAdapterMonitor`
scores it exactly as ``predict_proba`` would (all classes, normalised over the
label set), keeps a copy of the adapter weights with the lowest validation
log-loss (the later one on a near tie), stops training after ``patience``
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
    from .averaging import AdapterEMA

__all__ = ["BestAdapterMonitor", "NEAR_TIE", "trainer_callback", "validation_scores"]

#: A later evaluation whose validation log-loss is within this many nats of the best so far
#: replaces it (and counts as progress): on a slice of a few dozen texts such differences
#: are noise, and the later adapter has trained longer at a lower learning rate.
NEAR_TIE = 0.01


def validation_scores(log_scores: np.ndarray, codes: np.ndarray, weights: Sequence[float] | None = None) -> dict[str, float]:
    """Log-loss and accuracy of class log-scores normalised over the label set.

    With ``weights`` (one per text: its class weight times its sample weight, see
    :func:`~llm_classifier.pipeline.weights.example_weights`) the log-loss is their weighted mean,
    the criterion training with those weights optimises.
    """
    from scipy.special import log_softmax

    log_proba = log_softmax(log_scores, axis=1)
    rows = np.arange(len(codes))
    return {
        "log_loss": float(-np.average(log_proba[rows, codes], weights=weights)),
        "accuracy": float((log_proba.argmax(axis=1) == codes).mean()),
    }


class BestAdapterMonitor:
    """Score the validation slice during training; keep the best adapter; stop early.

    A plain object (no transformers import); :func:`trainer_callback` hooks it into a
    :class:`transformers.Trainer`.

    Parameters
    ----------
    model : peft model
        The model being trained (its LoRA weights are copied and restored).
    prompts : sequence of token-id lists
        Encoded validation prompts.
    codes : ndarray of int
        Their class codes.
    answers : sequence of token-id lists
        The answer of every class (as scored by ``predict_proba``).
    pad_id : int
    eval_steps : int
        Evaluate every this many optimizer steps (and after the last step).
    patience : int or None
        Stop after this many evaluations without a lower validation log-loss
        (``None``: train to the end, still restoring the best adapter).
    batch_size : int
        Prompts scored per forward pass.
    weights : sequence of float, optional
        Weight of each validation text in the log-loss (as in the training loss).
    channel : bool, default=False
        How the slice is scored: ``log p(answer_k | prompt)`` (``prompts`` are prompts,
        ``answers`` the answers) or, when true, ``log p(text | class prompt_k)`` (``prompts``
        are the encoded texts, ``answers`` the class prompts).
    averaged : AdapterEMA, optional
        Score (and keep) the moving average of the adapter weights instead of the trained ones.
    """

    def __init__(self, model: Any, prompts: Sequence[Sequence[int]], codes: np.ndarray, answers: Sequence[Sequence[int]],
                 pad_id: int, eval_steps: int, patience: int | None, batch_size: int,
                 weights: Sequence[float] | None = None, channel: bool = False,
                 averaged: AdapterEMA | None = None) -> None:
        self.model = model
        self.prompts = prompts
        self.codes = np.asarray(codes)
        self.answers = answers
        self.pad_id = pad_id
        self.eval_steps = max(1, int(eval_steps))
        self.patience = patience
        self.batch_size = batch_size
        self.weights = weights
        self.channel = channel
        self.averaged = averaged
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self.best_step: int | None = None
        #: the validation slice's class log-scores under the best adapter (for calibration)
        self.best_scores: np.ndarray | None = None
        self._best_loss = math.inf
        self._since_best = 0

    def evaluate(self, step: int) -> dict[str, float]:
        """Score the validation slice with the current adapter; remember it if it is the best so far."""
        import torch

        from .scoring import score_pairs

        was_training = self.model.training
        self.model.eval()
        try:
            with self.averaged.applied() if self.averaged is not None else nullcontext(), torch.inference_mode():
                if self.channel:
                    scores = score_pairs(self.model, self.answers, self.prompts, pad_id=self.pad_id,
                                         batch_size=self.batch_size).T
                else:
                    scores = score_pairs(self.model, self.prompts, self.answers, pad_id=self.pad_id,
                                         batch_size=self.batch_size)
        finally:
            self.model.train(was_training)
        record = {"step": int(step), **validation_scores(scores, self.codes, self.weights)}
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
