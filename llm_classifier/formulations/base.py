"""What every formulation of classification as scoring has: the prompt layout and the steps.

A formulation is the whole strategy of one task type: the targets, the row order and the
hold-out strata, the prompt layout built at fit, the training examples (what is context and
what is a candidate, and so where the loss is: :meth:`Direction.example`), the scoring call,
the validation slice built on it (:meth:`Direction.validation`), what is fitted after
training to decide (:meth:`Direction.fit_decision`) and the decision itself. No engine learns
which formulation it serves. :mod:`.direct` and :mod:`.channel` are the two directions of
single-label classification, :mod:`.multilabel` asks one yes/no question per label, and
:mod:`.windows` reads long texts as windows around any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.special import log_softmax

from ..encoding import PromptEncoder
from ..engines.base import Engine, Progress, ScoreFunction, Tokenizer, TrainExample, TrainRequest, Validation
from ..inputs import canonical_order, check_classes, check_labels
from ..pipeline.holdout import smallest_held_out_class
from ..pipeline.weights import resolve_class_weights

__all__ = ["Direction", "PromptLayout", "Scorer", "class_log_loss", "class_validation"]


@dataclass
class PromptLayout:
    """The prompt a fitted classifier uses, as its direction built it at fit.

    Attributes
    ----------
    formulation : str
        The formulation's registry name ("direct", "channel" or "multilabel").
    template : PromptTemplate or ChannelTemplate
        The resolved template (with the demonstrations, if any).
    demonstrations : list of (str, int)
        Few-shot demonstrations as (shortened text, class code), in prompt order.
    class_prompts : list of str
        Channel direction: the prompt each class's texts follow; empty otherwise.
    prefix, suffix : str
        The rendered prompt before and after the text.
    """

    formulation: str
    template: Any
    demonstrations: list[tuple[str, int]] = field(default_factory=list)
    class_prompts: list[str] = field(default_factory=list)
    prefix: str = ""
    suffix: str = ""


class Scorer:
    """An engine's scoring function as the object :meth:`Direction.score` takes (its ``score`` method).

    During training an engine hands the :data:`~llm_classifier.engines.base.Validation` its scoring
    function under the adapter being trained; wrapped in a ``Scorer`` it scores exactly as prediction does.
    """

    def __init__(self, score: ScoreFunction) -> None:
        self.score = score


def class_log_loss(scores: np.ndarray, codes: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted mean negative log-probability of ``codes`` under ``scores`` normalised over the classes.

    With ``weights`` (one per text: its class weight times its sample weight, see
    :func:`~llm_classifier.pipeline.weights.example_weights`) it is the criterion training with those
    weights optimises.
    """
    log_proba = log_softmax(np.asarray(scores, dtype=float), axis=1)
    return float(-np.average(log_proba[np.arange(len(codes)), np.asarray(codes)], weights=weights))


def class_validation(score_classes: Callable[[Scorer], np.ndarray], codes: np.ndarray,
                     weights: np.ndarray | None = None) -> Validation:
    """The :data:`~llm_classifier.engines.base.Validation` of a held-out slice of single-label texts.

    ``score_classes(scorer)`` gives the slice's ``(n_texts, n_classes)`` class log-scores as
    prediction computes them; the loss is their :func:`class_log_loss`.
    """
    codes = np.asarray(codes)

    def validation(score: ScoreFunction) -> tuple[float, np.ndarray]:
        scores = np.asarray(score_classes(Scorer(score)), dtype=float)
        return class_log_loss(scores, codes, weights), scores

    return validation


class Direction:
    """A formulation of classification as scoring; subclasses implement each step."""

    name: ClassVar[str]
    #: Whether an encoded text starts the sequence (and so gets the model's begin token).
    start_token: ClassVar[bool]

    def check_params(self, plan: Any) -> list[tuple[str, str]]:
        """``(parameter, allowed)`` pairs of the plan's settings this formulation cannot serve."""
        return []

    # -- the targets: single-label class codes (multi-label overrides these) --
    def check_targets(self, y: Any, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, targets)``: the sorted classes and each text's class code."""
        labels = check_labels(y, n_texts)
        classes = check_classes(labels)
        return classes, np.searchsorted(classes, labels)

    def order(self, texts: list[str], targets: np.ndarray) -> np.ndarray:
        """Row order that makes a fit independent of the order of the rows: by (class, text)."""
        return canonical_order(texts, targets)

    def strata(self, targets: np.ndarray) -> np.ndarray:
        """The groups the held-out slice is stratified by: the classes."""
        return np.asarray(targets)

    def holdout_hint(self, validation_fraction: float) -> str:
        """Why a validation slice may be empty, for the error of ``early_stopping=True``."""
        return f"a class gives validation texts from {smallest_held_out_class(validation_fraction)} examples on"

    def class_weights(self, plan: Any, classes: np.ndarray, targets: np.ndarray) -> list[float] | None:
        """Loss weight per class from ``class_weight`` (given the training rows' targets)."""
        return resolve_class_weights(plan, classes, targets)

    def check_holdout(self, plan: Any, held: np.ndarray | None) -> None:
        """Raise for settings that need a validation slice this fit does not have (before the model loads)."""

    def training_options(self, plan: Any, targets: np.ndarray) -> dict[str, Any]:
        """Keyword arguments of :meth:`train_request` and :meth:`validation` fitted on the training targets."""
        return {}

    def fit_decision(self, plan: Any, fit: Any) -> dict[str, Any]:
        """What turns scores into predictions, fitted after training: the calibration of the class scores.

        ``fit`` is the run (:class:`llm_classifier.pipeline.fit.FitRun`): its validation scores
        when early stopping held texts out, else a sample of training texts scored now.
        """
        from ..plugins.calibration import fit_calibration

        method = plan.calibration
        if method == "auto":
            method = "prior" if fit.history["n_steps"] == 0 else None
        if method is None:
            return {"calibration": None}
        if fit.validation_scores is not None:
            scores, scored = fit.validation_scores, np.flatnonzero(fit.held)
        else:
            scores, scored = fit.score_sample()
        codes, weights = fit.targets, fit.weights
        return {"calibration": fit_calibration(method, scores, codes[scored], codes, len(fit.classes), weights=weights,
                                               scored_weights=None if weights is None else weights[scored])}

    def check_prompt(self, prompt: Any) -> None:
        """Raise ``InvalidParameterError`` for a ``prompt`` this direction cannot use (before any model loads)."""
        raise NotImplementedError

    def layout(self, prompt: Any, tokenizer: Tokenizer, answers: list[str], demonstrations: tuple[list[str], np.ndarray],
               max_length: int) -> PromptLayout:
        """Resolve the template for ``answers`` (with ``demonstrations`` as (texts, codes)) into a layout."""
        raise NotImplementedError

    def choice_ids(self, tokenizer: Tokenizer, answers: list[str], layout: PromptLayout) -> list[list[int]]:
        """The token ids that stand for each class: answers (direct) or class prompts (channel)."""
        raise NotImplementedError

    def encoder(self, tokenizer: Tokenizer, layout: PromptLayout, choice_ids: list[list[int]], max_length: int,
                truncation: str) -> PromptEncoder:
        """The encoder of texts, the same at fit and predict (room kept for the longest choice)."""
        return PromptEncoder(tokenizer, layout.prefix, layout.suffix, max_length, max(map(len, choice_ids)),
                             truncation, start_token=self.start_token)

    def train_request(self, inputs: list[list[int]], codes: np.ndarray, choice_ids: list[list[int]], *,
                      weights: np.ndarray | None = None, validation: Validation | None = None,
                      **schedule: Any) -> TrainRequest:
        """The engine's training request for encoded texts ``inputs`` of classes ``codes`` (one example per text).

        ``weights``: each text's loss weight (None: all 1); ``validation``: from :meth:`validation`.
        """
        weights = np.ones(len(inputs)) if weights is None else np.asarray(weights, dtype=float)
        examples = [self.example(ids, int(code), choice_ids, float(weight))
                    for ids, code, weight in zip(inputs, codes, weights)]
        return TrainRequest(examples=examples, validation=validation, **schedule)

    def example(self, ids: list[int], code: int, choice_ids: list[list[int]], weight: float) -> TrainExample:
        """The training example of one encoded text of class ``code``."""
        raise NotImplementedError

    def validation(self, inputs: list[list[int]], codes: np.ndarray, weights: np.ndarray | None,
                   choice_ids: list[list[int]], batch_size: int) -> Validation:
        """The held-out slice ``inputs`` (encoded texts of classes ``codes``) scored as prediction scores it."""
        return class_validation(lambda scorer: self.score(scorer, inputs, choice_ids, batch_size=batch_size),
                                codes, weights)

    def score(self, engine: Engine, inputs: list[list[int]], choice_ids: list[list[int]], *, batch_size: int,
              progress: Progress | None = None) -> np.ndarray:
        """``[n_inputs, n_classes]`` class log-scores of the encoded texts."""
        raise NotImplementedError

    # -- from (calibrated) scores to predictions; multi-label overrides these four --
    #: How far from 1 a row of probabilities given to ``predict_from_proba`` may sum (float16, or rounded to 3 decimals).
    proba_sum_tolerance: ClassVar[float] = 1e-2

    def check_proba(self, proba: np.ndarray) -> None:
        """Raise ``ValueError`` for rows of probabilities :meth:`log_probabilities` cannot give: single-label rows
        sum to 1 over the classes (a row of zeros, or a subset of the classes, would be decided silently)."""
        sums = proba.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1) > self.proba_sum_tolerance)
        if len(off):
            raise ValueError(f"proba's rows must sum to 1 (probabilities over the classes, as predict_proba gives them); "
                             f"{len(off)} of {len(proba)} do not, e.g. row {off[0]} sums to {sums[off[0]]:g}.")

    def log_probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Log-probabilities of the classes: the scores normalised over the classes."""
        return log_softmax(scores, axis=1)

    def decision(self, scores: np.ndarray) -> np.ndarray:
        """``decision_function``'s value: for two classes the second's score minus the first's."""
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def decide(self, proba: np.ndarray, classes: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
        """The predicted class of each row: the most probable (``thresholds`` are multi-label's)."""
        return classes[np.argmax(proba, axis=1)]
