"""Multi-label classification: one yes/no question per label, all scored in one pass.

A text may belong to any number of labels. :class:`MultiLabel` formulates this as one
question per label, asked after the text's prompt: the answer to label ``j`` is
``"<answer_j>: yes"`` or ``"<answer_j>: no"`` (then the end token). Prediction scores
the ``2k`` continuations of every text in one pass through the label trie (the engine's
``score``; shared answer prefixes share their tokens), and the probability of label
``j`` is

    p_j = sigmoid(log p("<answer_j>: yes" | prompt) - log p("<answer_j>: no" | prompt)),

in which ``log p("<answer_j>:" | prompt)`` cancels: only the decision token is compared.
So scoring costs one prompt pass per text whatever the number of labels ``k`` (plus the
trie's ``O(k)`` answer tokens), as in single-label scoring.

Training. Each (text, label) pair is one example: the context is the text's prompt
followed by the label's question (``"<answer_j>:"`` and any token "yes" and "no" share),
the continuation is the decision (``" yes"`` or ``" no"`` and the end token), so the loss
is exactly on the tokens the probability compares; the label name is context, not a
target. Every label of every text trains, so **training costs k examples per text**
(linear in ``k``); the engine contract has one continuation per example and no shared-
context packing, so this is the cheapest exact layout within it. With
``objective="class"`` the engine normalises over the two choices ``yes``/``no``: the
binary cross-entropy of each label. Early stopping's validation slice is laid out the
same way, so its log-loss is the mean per-label binary log-loss, and its scores give
the per-label thresholds (``multilabel_threshold="auto"``).

Measured (benchmark task ``debtags``: Debian package descriptions, 12 labels, 1.26 labels
per text; 100 training and 100 test texts, default model, ``max_length=256``,
``batch_size=4``, 2 shared CPU cores): 100 texts give 1,200 training examples, so one epoch
is 300 steps; 150 steps (half an epoch) took 1,945 s, and predicting the 100 texts (24
continuations each, one trie pass) 44 s. After those 150 steps the model answered "no" to
every label (F1 0 at the 0.5 threshold; the pairs are 89.5% "no"), where one-vs-rest
logistic regression on MiniLM embeddings reached micro-F1 0.552: with this budget the
yes/no imbalance dominates, and longer training, ``multilabel_threshold="auto"`` or a
weighting of the "yes" pairs (not implemented) are the levers to measure next. The default
threshold stays 0.5 (no measurement yet supports another).

Targets: a binary indicator matrix (``MultiLabelBinarizer``'s output, dense or sparse),
a pandas DataFrame of 0/1 columns (its column names become ``classes_``) or a sequence
of label collections (lists, tuples, sets). See :func:`check_multilabel_targets`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from .._logging import warn_caller
from ..engines.base import Engine, Progress, Tokenizer, TrainRequest
from ..pipeline.holdout import EARLY_STOPPING_MIN_TEXTS
from .base import Direct, PromptLayout
from ..encoding import escape
from ..plugins.prompts import MAX_LISTED_TOKENS, AlpacaTemplate, ChatTemplate, resolve_template, split_template
from ..inputs import show_value

__all__ = ["MULTILABEL", "MultiLabel", "MULTILABEL_INSTRUCTION", "check_multilabel_targets", "fit_thresholds",
           "is_multilabel_target"]

#: The instruction of the "auto", "chat" and "alpaca" prompts for multi-label targets.
MULTILABEL_INSTRUCTION = ("Which of these topics apply to the text: {labels}? For each topic, answer yes or no.")
#: The same without the list, for label sets too long to list in every prompt.
MULTILABEL_UNLISTED_INSTRUCTION = "Which topics apply to the text? For each topic, answer yes or no."
#: What follows a label's answer text before the decision, and the two decisions.
QUESTION_END, YES, NO = ":", " yes", " no"
#: The per-label thresholds ``multilabel_threshold="auto"`` chooses from (F1 on the held-out slice).
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


# -- targets ---------------------------------------------------------------------------------
def is_multilabel_target(y: Any) -> bool:
    """Whether ``y`` is a multi-label target: a 2-D matrix of two or more columns, or label collections."""
    shape = getattr(y, "shape", None)
    if shape is not None and len(shape) == 2:
        return shape[1] >= 2
    if shape is not None or isinstance(y, (str, bytes)) or not isinstance(y, Sequence) or not len(y):
        return False
    return all(isinstance(row, (list, tuple, set, frozenset)) for row in y)


def check_multilabel_targets(Y: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, indicator)``: the sorted label names and the ``(n_samples, n_labels)`` 0/1 int matrix.

    Parameters
    ----------
    Y : indicator matrix, DataFrame of 0/1 columns or sequence of label collections
        A plain matrix's labels are ``0..k-1`` (its column indices); a DataFrame's are its
        column names; label collections name their labels. Columns are put in sorted label
        order. A row with no label is allowed.
    n_samples : int
        The number of texts.

    Raises
    ------
    ValueError
        Lengths differ, a matrix entry is not 0/1, labels repeat, or fewer than 2 labels.
    TypeError
        A label collection holds missing, unhashable or mixed-type labels.
    """
    if hasattr(Y, "columns") and hasattr(Y, "iloc"):
        classes, indicator = _from_frame(Y)
    elif getattr(Y, "shape", None) is not None and len(Y.shape) == 2:
        matrix = Y.toarray() if hasattr(Y, "toarray") else np.asarray(Y)
        classes, indicator = np.arange(matrix.shape[1]), _binary(matrix, "Y")
    else:
        classes, indicator = _from_collections(Y)
    if len(indicator) != n_samples:
        raise ValueError(f"X and Y have different lengths: {n_samples} texts but {len(indicator)} label rows.")
    if len(classes) < 2:
        raise ValueError(f"Y names {len(classes)} label(s); multi-label classification needs at least 2 "
                         "(for one label, pass y as a 1-D array of 0/1 classes).")
    order = np.argsort(classes, kind="stable")
    classes, indicator = classes[order], indicator[:, order]
    _warn_constant_columns(classes, indicator)
    return classes, indicator


def _binary(matrix: np.ndarray, name: str) -> np.ndarray:
    if matrix.dtype.kind not in "biuf" or not np.isin(matrix, (0, 1)).all():
        bad = next(((i, j) for i, j in np.ndindex(matrix.shape) if not _is_binary(matrix[i, j])), (0, 0))
        raise ValueError(f"{name} must be a binary indicator matrix of 0/1 (as MultiLabelBinarizer makes); "
                         f"{name}[{bad[0]}, {bad[1]}] is {show_value(matrix[bad])}.")
    return matrix.astype(int)


def _is_binary(value: Any) -> bool:
    try:
        return value in (0, 1) and not isinstance(value, str)
    except (TypeError, ValueError):
        return False


def _from_frame(frame: Any) -> tuple[np.ndarray, np.ndarray]:
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"Y's columns must have distinct names; got {names!r}.")
    return np.asarray(names), _binary(frame.to_numpy(), "Y")


def _from_collections(Y: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = list(Y)
    labels: set[Any] = set()
    kinds: set[str] = set()
    for index, row in enumerate(rows):
        if not isinstance(row, (list, tuple, set, frozenset)):
            raise TypeError(f"Y[{index}] is {row!r}; a multi-label Y given as rows must hold a list, tuple or set "
                            "of labels in every row (an empty one for no label).")
        for label in row:
            if label is None or isinstance(label, (float, np.floating)) and np.isnan(label):
                raise ValueError(f"Y[{index}] holds a missing label ({label!r}).")
            if isinstance(label, (list, tuple, set, frozenset, dict, np.ndarray)):
                raise TypeError(f"Y[{index}] holds a {type(label).__name__}; labels must be scalars.")
            kinds.add("str" if isinstance(label, str) else "number" if isinstance(label, (int, float, np.number))
                      else type(label).__name__)
            labels.add(label.item() if isinstance(label, np.generic) else label)
    if len(kinds) > 1:
        raise TypeError(f"Y mixes labels of different types ({', '.join(sorted(kinds))}); convert all labels to one type.")
    classes = np.asarray(sorted(labels))
    position = {label: j for j, label in enumerate(classes.tolist())}
    indicator = np.zeros((len(rows), len(classes)), dtype=int)
    for index, row in enumerate(rows):
        for label in row:
            indicator[index, position[label.item() if isinstance(label, np.generic) else label]] = 1
    return classes, indicator


def _warn_constant_columns(classes: np.ndarray, indicator: np.ndarray) -> None:
    """A label on every text, or on none, cannot be learnt from these texts: say so (it still trains)."""
    counts = indicator.sum(axis=0)
    constant = [f"{label!r} ({'every' if count else 'no'} text)" for label, count in zip(classes.tolist(), counts)
                if count in (0, len(indicator))]
    if constant:
        warn_caller(f"Labels {', '.join(constant)} are constant in the training targets; their probabilities "
                    "are learnt from one side only.", UserWarning)


# -- the formulation -------------------------------------------------------------------------
class MultiLabel(Direct):
    """One yes/no question per label after the text's prompt; see the module docstring."""

    name = "multilabel"
    start_token = True

    def check_params(self, plan: Any) -> list[tuple[str, str]]:
        conflicts = [
            ("direction", plan.direction != "direct", "'direct'"),
            ("few_shot", plan.few_shot != 0, "0"),
            ("inference", plan.inference != "score", "'score'"),
            ("class_weight", plan.class_weight is not None, "None"),
            ("calibration", plan.calibration not in ("auto", None), "'auto' or None (no calibration)"),
            ("long_text", plan.long_text != "truncate", "'truncate' (windows pool single-label scores)"),
            ("confidence_threshold", plan.confidence_threshold is not None,
             "None (multi-label predictions are decided by thresholds_)"),
        ]
        return [(name, f"{allowed} for multi-label targets") for name, conflicting, allowed in conflicts if conflicting]

    # -- the targets: an indicator matrix --
    def check_targets(self, y: Any, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, indicator)``: the sorted labels and the ``(n_texts, n_labels)`` 0/1 matrix."""
        return check_multilabel_targets(y, n_texts)

    def order(self, texts: list[str], targets: np.ndarray) -> np.ndarray:
        """Row order by (label set, text): the fit does not depend on the order of the rows."""
        return np.asarray(sorted(range(len(texts)), key=lambda i: (targets[i].tolist(), texts[i])), dtype=np.intp)

    def strata(self, targets: np.ndarray) -> np.ndarray:
        """The held-out slice is stratified by label set."""
        return np.unique(targets, axis=0, return_inverse=True)[1].reshape(-1)

    def holdout_hint(self, validation_fraction: float) -> str:
        return ("the slice is stratified by label set, and a label set gives validation texts only when it is "
                "frequent enough")

    def class_weights(self, plan: Any, classes: np.ndarray, targets: np.ndarray) -> list[float] | None:
        return None  # class_weight must be None for multi-label targets (check_params)

    def check_holdout(self, plan: Any, held: np.ndarray | None) -> None:
        if plan.multilabel_threshold == "auto" and held is None:
            raise ValueError("multilabel_threshold='auto' fits the thresholds on early stopping's held-out slice, "
                             "and this fit has none (early_stopping is off, max_steps=0, or fewer than "
                             f"{EARLY_STOPPING_MIN_TEXTS} texts with early_stopping='auto'); set early_stopping=True "
                             "or pass a number.")

    def fit_decision(self, plan: Any, fit: Any) -> dict[str, Any]:
        """Per-label thresholds: ``multilabel_threshold``, or F1-optimal on the held-out slice for "auto"."""
        n_labels = len(fit.classes)
        if plan.multilabel_threshold != "auto" or fit.validation_scores is None:
            value = 0.5 if plan.multilabel_threshold == "auto" else float(plan.multilabel_threshold)
            return {"thresholds": np.full(n_labels, value)}
        held_targets = fit.targets[fit.held]
        scores = np.asarray(fit.validation_scores)
        logits = (scores[:, 0] - scores[:, 1]).reshape(len(held_targets), n_labels)
        return {"thresholds": fit_thresholds(expit(logits), held_targets)}

    def layout(self, prompt: Any, tokenizer: Tokenizer, answers: list[str], demonstrations: Any,
               max_length: int) -> PromptLayout:
        template = _multilabel_template(prompt, tokenizer, answers)
        rendered = [escape(tokenizer, answer) for answer in answers]
        prefix, suffix = split_template(template, rendered, tokenizer)
        return PromptLayout(self.name, template, [], [], prefix, suffix)

    def choice_ids(self, tokenizer: Tokenizer, answers: list[str], layout: PromptLayout) -> list[list[int]]:
        """``[yes_0, no_0, yes_1, no_1, ...]``: ``"<answer>:"`` then the decision, then the end token."""
        yes, no = tokenizer.encode_text(YES), tokenizer.encode_text(NO)
        end = [int(tokenizer.end_id)]
        ids = []
        for answer in answers:
            question = tokenizer.encode_text(answer + QUESTION_END)
            ids += [question + yes + end, question + no + end]
        return ids

    def train_request(self, inputs: list[list[int]], codes: np.ndarray, choice_ids: list[list[int]],
                      validation: tuple[list[list[int]], np.ndarray, np.ndarray | None] | None = None,
                      weights: np.ndarray | None = None, **schedule: Any) -> TrainRequest:
        """One example per (text, label): ``codes`` is the ``(n, k)`` indicator; ``weights`` per text."""
        questions, decisions = split_choices(choice_ids)
        contexts, targets = _pairs(inputs, codes, questions)
        if validation is not None:
            held_inputs, held_codes, held_weights = validation
            held_contexts, held_targets = _pairs(held_inputs, held_codes, questions)
            validation = (held_contexts, held_targets, _per_pair(held_weights, len(questions)))
        return TrainRequest(contexts=contexts, continuations=[list(decisions[code]) for code in targets],
                            codes=targets, choices=[list(d) for d in decisions], channel=False,
                            weights=_per_pair(weights, len(questions)), validation=validation, **schedule)

    def score(self, engine: Engine, inputs: list[list[int]], choice_ids: list[list[int]], *, batch_size: int,
              progress: Progress | None = None) -> np.ndarray:
        """``(n_inputs, n_labels)`` logits: each label's "yes" score minus its "no" score."""
        scores = np.asarray(engine.score(inputs, choice_ids, batch_size=batch_size, progress=progress))
        return scores[:, 0::2] - scores[:, 1::2]

    # -- from scores to predictions --
    def log_probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Per-label log-probabilities of "yes" (each label on its own; rows do not sum to 1)."""
        return log_expit(scores)

    def decision(self, scores: np.ndarray) -> np.ndarray:
        """The per-label logits, ``(n_samples, n_labels)`` (as OneVsRestClassifier's decision_function)."""
        return scores

    def decide(self, log_proba: np.ndarray, classes: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
        """The ``(n_samples, n_labels)`` 0/1 indicator: ``proba >= thresholds``."""
        return (np.exp(log_proba) >= thresholds).astype(int)


def _multilabel_template(prompt: Any, tokenizer: Tokenizer, answers: list[str]) -> Any:
    """``prompt`` resolved; "auto", "chat" and "alpaca" ask the multi-label question.

    Their instruction lists the labels when the list takes at most ``MAX_LISTED_TOKENS``
    tokens (as single-label ``instruction="auto"``), else asks without the list.
    """
    if not (prompt is None or (isinstance(prompt, str) and prompt in ("auto", "chat", "alpaca"))):
        return resolve_template(prompt, tokenizer)
    chat = prompt == "chat" or (prompt in (None, "auto") and tokenizer.has_chat_template)
    listed = len(tokenizer.encode_text(", ".join(answers))) <= MAX_LISTED_TOKENS
    instruction = MULTILABEL_INSTRUCTION if listed else MULTILABEL_UNLISTED_INSTRUCTION
    return (ChatTemplate if chat else AlpacaTemplate)(instruction=instruction)


def split_choices(choice_ids: list[list[int]]) -> tuple[list[list[int]], tuple[list[int], list[int]]]:
    """Each label's question (the ids its yes and no continuations share) and the two decisions.

    The decisions are the same for every label (the same tokens after each question).
    """
    questions, decisions = [], set()
    for yes, no in zip(choice_ids[0::2], choice_ids[1::2]):
        shared = 0
        while shared < min(len(yes), len(no)) and yes[shared] == no[shared]:
            shared += 1
        questions.append(list(yes[:shared]))
        decisions.add((tuple(yes[shared:]), tuple(no[shared:])))
    if len(decisions) != 1:
        raise ValueError("The labels' yes/no continuations differ after their questions; the multi-label layout "
                         "needs the same decision tokens for every label.")
    yes_ids, no_ids = decisions.pop()
    return questions, (list(yes_ids), list(no_ids))


def _pairs(inputs: list[list[int]], indicator: np.ndarray, questions: list[list[int]]
           ) -> tuple[list[list[int]], np.ndarray]:
    """Contexts ``input_i + question_j`` (text-major) and their decision codes (0 yes, 1 no)."""
    contexts = [list(ids) + question for ids in inputs for question in questions]
    return contexts, (1 - np.asarray(indicator, dtype=int)).reshape(-1)


def _per_pair(weights: np.ndarray | None, n_labels: int) -> np.ndarray | None:
    return None if weights is None else np.repeat(np.asarray(weights, dtype=float), n_labels)


MULTILABEL = MultiLabel()


# -- thresholds ------------------------------------------------------------------------------
def fit_thresholds(proba: np.ndarray, indicator: np.ndarray, grid: Iterable[float] = THRESHOLD_GRID,
                   default: float = 0.5) -> np.ndarray:
    """Per label, the threshold of ``grid`` with the best F1 on ``(proba, indicator)``.

    Ties go to the threshold closest to ``default``; a label without a positive text in
    ``indicator`` keeps ``default`` (its F1 is 0 whatever the threshold).
    """
    grid = np.asarray(list(grid), dtype=float)
    order = np.argsort(np.abs(grid - default), kind="stable")  # ties: closest to the default wins
    thresholds = np.full(proba.shape[1], float(default))
    for j in range(proba.shape[1]):
        truth = indicator[:, j].astype(bool)
        if not truth.any():
            continue
        predicted = proba[:, j][None, :] >= grid[order][:, None]
        tp = (predicted & truth).sum(axis=1)
        f1 = 2 * tp / np.maximum(predicted.sum(axis=1) + truth.sum(), 1)
        thresholds[j] = grid[order][int(np.argmax(f1))]
    return thresholds
