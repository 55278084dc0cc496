"""What ``LLMClassifier.fit`` does, step by step, for every formulation.

:func:`fit` takes the :class:`~llm_classifier.pipeline.plan.Plan` (the parameters resolved
once) and the data, and returns a :class:`~llm_classifier.state.FittedState`. The
formulation (single-label direct or channel, multi-label; long texts read as windows by
any of them) supplies the steps that differ: the targets, the row order, the strata of the
held-out slice, the prompt layout, the training request, and what decides after training
(a calibration or per-label thresholds). The estimator assigns the result in one step, so a
fit that fails half-way leaves a previously fitted estimator exactly as it was.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils.validation import check_random_state

from .._logging import warn_caller
from .._params import check_class_params, invalid
from ..engines import check_options, resolve_backend
from ..engines.base import Engine
from ..formulations.windows import Windows
from ..inputs import check_sample_weight, check_texts
from ..plugins.demonstrations import draw_demonstrations
from ..plugins.prompts import TEXT_MARKER
from ..plugins.labels import check_answers, resolve_parser, resolve_verbalizer, warn_if_integer_codes
from ..state import FittedState
from .holdout import stratified_holdout
from .plan import Plan
from .weights import example_weights

__all__ = ["CALIBRATION_SIZE", "FitRun", "draw_seed", "fit", "held_out_rows", "kept_global_random"]

#: Training texts scored to fit the calibration when there is no validation slice.
CALIBRATION_SIZE = 256


@contextlib.contextmanager
def kept_global_random() -> Iterator[None]:
    """Restore Python's and NumPy's global random state when the block ends (the engine keeps its own)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def draw_seed(random_state: Any) -> int:
    """The run's seed: ``random_state`` itself when it is an int, else drawn from it; seeds Python and NumPy."""
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    random.seed(seed)  # inside fit only: kept_global_random restores the caller's state
    np.random.seed(seed % 2**32)
    return seed


def held_out_rows(plan: Plan, strata: np.ndarray, seed: int) -> np.ndarray | None:
    """The held-out validation rows when early stopping runs (stratified by ``strata``), else None."""
    if not plan.holds_out(len(strata)):
        return None
    held = stratified_holdout(strata, plan.validation_fraction, seed)
    if held.any():
        return held
    if plan.early_stopping == "auto":
        return None
    raise ValueError(
        f"early_stopping=True needs a validation slice, but validation_fraction={plan.validation_fraction} "
        f"of {len(strata)} training texts holds out none ({plan.formulation.holdout_hint(plan.validation_fraction)}); "
        "add examples, raise validation_fraction or set early_stopping=False."
    )


@dataclass
class FitRun:
    """One fit's working data, shared by its steps (rows already in canonical order)."""

    plan: Plan
    classes: np.ndarray
    texts: list[str]
    targets: np.ndarray
    weights: np.ndarray | None
    held: np.ndarray | None
    seed: int
    engine: Engine
    windows: Windows
    choice_ids: list[list[int]]
    demo_rows: np.ndarray
    history: dict[str, Any] = field(default_factory=dict)
    validation_scores: np.ndarray | None = None

    def score_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Class log-scores of up to :data:`CALIBRATION_SIZE` training texts, and their rows.

        The demonstrations (which would see their own answer in the prompt) are not drawn
        unless nothing else is left.
        """
        rng = np.random.default_rng(self.seed)
        rows = np.setdiff1d(np.arange(len(self.texts)), self.demo_rows)
        if len(rows) == 0:
            rows = np.arange(len(self.texts))
        sample = np.sort(rng.choice(rows, size=min(CALIBRATION_SIZE, len(rows)), replace=False))
        inputs = self.windows.encode([self.texts[i] for i in sample])
        return self.windows.score(self.engine, inputs, self.choice_ids, batch_size=self.plan.eval_batch_size), sample


def _not_demonstrable(texts: list[str], held: np.ndarray | None) -> np.ndarray | None:
    """Rows that may not be demonstrations: the held-out slice, and texts holding the template's internal
    text marker (rendered into the prompt, they would split it in the wrong place); they still train."""
    marked = np.fromiter((TEXT_MARKER in text for text in texts), dtype=bool, count=len(texts))
    if not marked.any():
        return held
    return marked if held is None else held | marked


def _check_engine(plan: Plan, engine: Engine, weighted: bool) -> None:
    """What the engine declares it cannot do, refused before any model loads."""
    name = type(engine).__name__
    if weighted and not engine.capabilities.sample_weight:
        raise TypeError(f"fit(sample_weight=...) needs an engine that trains with weights; {name} "
                        "declares capabilities.sample_weight=False.")
    if plan.max_steps != 0 and not engine.capabilities.fit:
        raise TypeError(f"{name} cannot fine-tune (capabilities.fit=False); use max_steps=0.")
    if plan.inference == "generate" and not engine.capabilities.generate:
        raise invalid(plan, "inference", f"'score' with the engine {name} (capabilities.generate=False)",
                      plan.inference)
    check_options(engine, plan.engine_options(engine), plan.estimator_name)


def fit(plan: Plan, X: Any, y: Any, sample_weight: Any = None) -> FittedState:
    """Fit ``plan`` (its formulation already chosen by the targets) on ``X``, ``y``."""
    formulation = plan.formulation
    for name, allowed in formulation.check_params(plan):
        raise invalid(plan, name, allowed, getattr(plan, name))
    texts = check_texts(X, "X")
    classes, targets = formulation.check_targets(y, len(texts))
    weights = check_sample_weight(sample_weight, len(texts))
    parser = resolve_parser(plan.label_parser)
    answers = check_answers(resolve_verbalizer(plan.verbalizer).answers(list(classes)), list(classes))
    if plan.verbalizer is None:
        warn_if_integer_codes(classes)
    check_class_params(plan, classes)
    engine = resolve_backend(plan.backend)
    _check_engine(plan, engine, weights is not None)
    seed = draw_seed(plan.random_state)
    if weights is not None:  # a text of weight 0 is left out, as if it were not there
        kept = np.flatnonzero(weights > 0)
        texts, targets, weights = [texts[i] for i in kept], targets[kept], weights[kept]
    order = formulation.order(texts, targets)  # row order does not change the model
    texts, targets = [texts[i] for i in order], targets[order]
    weights = None if weights is None else weights[order]
    held = held_out_rows(plan, formulation.strata(targets), seed)
    formulation.check_holdout(plan, held)
    class_weights = formulation.class_weights(plan, classes, targets if held is None else targets[~held])
    engine.load(plan.model, **plan.engine_options(engine))
    demo_rows = (draw_demonstrations(targets, plan.few_shot, seed, exclude=_not_demonstrable(texts, held))
                 if plan.few_shot else np.zeros(0, int))
    layout = formulation.layout(plan.prompt, engine.tokenizer, answers,
                                ([texts[i] for i in demo_rows], targets[demo_rows]), plan.max_length)
    choice_ids = formulation.choice_ids(engine.tokenizer, answers, layout)
    encoder = formulation.encoder(engine.tokenizer, layout, choice_ids, plan.max_length, plan.truncation)
    windows = Windows(formulation, encoder, plan.long_text, plan.window_overlap, plan.max_windows)
    run = FitRun(plan, classes, texts, targets, weights, held, seed, engine, windows, choice_ids, demo_rows)
    _train(run, class_weights)
    decision = formulation.fit_decision(plan, run)
    return FittedState(classes, answers, layout, parser, engine, run.history, seed, **decision)


def _train(run: FitRun, class_weights: list[float] | None) -> None:
    """Fine-tune through the engine on the rows not held out; sets ``run.history`` and ``run.validation_scores``.

    Each example's loss weight is its class weight times its sample weight, the sample weights
    scaled to average 1 over the training rows (and, for the validation log-loss, over the slice).
    Long texts read as windows train as one example per window (see :mod:`llm_classifier.formulations.windows`);
    the validation slice is scored as prediction scores it (windows pooled per document).
    """
    plan, engine, windows, texts, targets, held = run.plan, run.engine, run.windows, run.texts, run.targets, run.held
    schedule = plan.schedule(engine, held is not None, run.seed)
    train = np.ones(len(texts), dtype=bool) if held is None else ~held
    weighted = engine.capabilities.sample_weight
    weights = run.weights
    options = plan.formulation.training_options(plan, targets[train])  # e.g. multi-label's positive weights
    if held is not None:
        held_windows = windows.encode([t for t, h in zip(texts, held) if h])
        held_weights = example_weights(targets[held], class_weights, None if weights is None else weights[held])
        schedule["validation"] = windows.validation(held_windows, targets[held], held_weights, run.choice_ids,
                                                    plan.eval_batch_size, **options)
    inputs = windows.encode([t for t, keep in zip(texts, train) if keep])
    if inputs.n_cut:
        warn_caller(windows.message(inputs.n_cut, inputs.n_texts))
    train_weights = example_weights(targets[train], class_weights, None if weights is None else weights[train])
    request = windows.train_request(inputs, targets[train], run.choice_ids, train_weights, weighted, **options,
                                    **schedule)
    history: dict[str, Any] = {"num_train_epochs": None if request.max_steps is not None else request.num_train_epochs,
                               "n_texts": inputs.n_texts}
    history.update({name: np.asarray(value).tolist() for name, value in options.items()})
    if request.n_steps() == 0:
        history.update(n_steps=0, n_examples=len(request.examples), steps=[])
    else:
        history.update(engine.fit(request))
    validation_scores = history.pop("validation_scores", None)
    history["early_stopping"] = validation_scores is not None
    history["class_weights"] = class_weights  # per class, in the order of classes_ (None: equal)
    run.history, run.validation_scores = history, validation_scores
