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

Training. Each text is one example (:class:`~llm_classifier.engines.base.TrainExample`):
its prompt as the context, then one decision per label, whose prefix is the label's
question (``"<answer_j>:"`` and any token "yes" and "no" share) and whose candidates are
the two decisions (``" yes"`` / ``" no"`` and the end token), so the loss is exactly on the
tokens the probability compares; the label name is context, not a target. The transformers
engine runs the prompt once and every label's branch after it in one tree-masked pass (a
branch sees the prompt and itself only, at the positions of its own sequence), so a text
costs about one single-label example plus ``k`` short branches, and every step sees every
label of its texts; epochs and batches count texts. Measured with
``benchmarks.studies.multilabel_cost`` (64 ``debtags`` texts, 12 labels, default model, one
epoch, batch size 8, one thread on a shared CPU, lowest of two alternating runs;
docs/results/multilabel-cost.json): training took 1.38x the time per text of a single-label
fit on the same texts (5.7 s against 4.1 s; CPU time 1.28x); with one example per (text,
label), before, it was about 12x (issue 31). With ``objective="class"`` the engine
normalises over the two candidates: the binary cross-entropy of each label.

The "no" answers are the large majority (89.5% of the (text, label) pairs on ``debtags``),
and without weighting a short training learns "no" everywhere. ``positive_weight``
(default ``"balanced"``) weighs a label's "yes" decisions by its "no" count over its "yes"
count (at most :data:`MAX_POSITIVE_WEIGHT`), each label's weights scaled to average 1 (see
:func:`decision_weights`). The weighting moves a label's logit up by about ``log w_j``, so
``predict_proba`` takes it back off (``calibration="auto"``; see :meth:`MultiLabel.fit_decision`)
and the thresholds are carried to that scale: the correction changes the probabilities, not
the predictions. Early stopping's validation slice is scored as prediction scores
it; its loss is the per-label binary log-loss under the same weights, and its per-label
logits give the thresholds (``multilabel_threshold="auto"``, the default, whenever the fit
holds a slice out; 0.5 otherwise): each label's F1-best from :data:`MIN_OWN_THRESHOLD_POSITIVES`
positive texts in the slice on, the pooled F1-best below (:func:`fit_thresholds`). The slice
is stratified by each text's rarest label (:func:`rarest_labels`).

Targets: a binary indicator matrix (``MultiLabelBinarizer``'s output, dense or sparse),
a pandas DataFrame of 0/1 columns (its column names become ``classes_``) or a sequence
of label collections (lists, tuples, sets). See :func:`check_multilabel_targets`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit, log_expit, logit

from .._logging import warn_caller
from ..engines.base import Decision, Engine, Progress, ScoreFunction, Tokenizer, TrainExample, TrainRequest, Validation
from .base import PromptLayout, Scorer
from .direct import Direct
from ..encoding import escape
from ..pipeline.holdout import smallest_held_out_class
from ..plugins.prompts import MAX_LISTED_TOKENS, AlpacaTemplate, ChatTemplate, resolve_template, split_template
from ..inputs import show_value
from ..plugins.calibration import Calibration

__all__ = ["MAX_POSITIVE_WEIGHT", "MULTILABEL", "MultiLabel", "MULTILABEL_INSTRUCTION", "check_multilabel_targets",
           "decision_weights", "fit_thresholds", "is_multilabel_target", "positive_weights",
           "rarest_labels", "targets_in_order"]

#: The instruction of the "auto", "chat" and "alpaca" prompts for multi-label targets.
MULTILABEL_INSTRUCTION = ("Which of these topics apply to the text: {labels}? For each topic, answer yes or no.")
#: The same without the list, for label sets too long to list in every prompt.
MULTILABEL_UNLISTED_INSTRUCTION = "Which topics apply to the text? For each topic, answer yes or no."
#: What follows a label's answer text before the decision, and the two decisions.
QUESTION_END, YES, NO = ":", " yes", " no"
#: ``positive_weight="balanced"`` weighs a label's "yes" decisions by its "no" count over its "yes" count, at most this.
MAX_POSITIVE_WEIGHT = 10.0
#: The per-label thresholds ``multilabel_threshold="auto"`` chooses from (F1 on the held-out slice).
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
#: A label gets its own threshold from this many positive texts in the held-out slice; fewer: the pooled one.
#: Measured (benchmarks.studies.multilabel_thresholds, debtags): own thresholds from 5-9 positives lost .06
#: micro-F1 to the pooled one at 500 texts, and from 1-6 lost .14 at 200; the training's weighting puts every
#: label's uncorrected probability on one scale (even odds at 0.5), so one threshold fits them all.
MIN_OWN_THRESHOLD_POSITIVES = 20


# -- targets ---------------------------------------------------------------------------------
def is_multilabel_target(y: Any) -> bool:
    """Whether ``y`` is a multi-label target: a 2-D matrix of two or more columns, or label collections (a
    sequence, or a 1-D object array or pandas Series such as ``df["tags"]``, of lists, tuples or sets)."""
    shape = getattr(y, "shape", None)
    if shape is not None and len(shape) == 2:
        return shape[1] >= 2
    if shape is not None:
        if len(shape) != 1 or not shape[0] or getattr(y, "dtype", None) != object:
            return False
    elif isinstance(y, (str, bytes)) or not isinstance(y, Sequence) or not len(y):
        return False
    return all(isinstance(row, (list, tuple, set, frozenset)) for row in y)


def check_multilabel_targets(Y: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, indicator)``: the sorted label names and the ``(n_samples, n_labels)`` 0/1 int matrix.

    Parameters
    ----------
    Y : indicator matrix, DataFrame of 0/1 columns or sequence of label collections
        A plain matrix's labels are ``0..k-1`` (its column indices), also when given as lists of
        one length (2 or more) holding only 0/1 (``Y.tolist()``, as scikit-learn reads it); a DataFrame's are its
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
    classes, indicator, _ = _read_targets(Y)
    if len(indicator) != n_samples:
        raise ValueError(f"X and Y have different lengths: {n_samples} texts but {len(indicator)} label rows.")
    if len(classes) < 2:
        raise ValueError(f"Y names {len(classes)} label(s); multi-label classification needs at least 2 "
                         "(for one label, pass y as a 1-D array of 0/1 classes).")
    order = np.argsort(classes, kind="stable")
    if _is_frame(Y) and np.any(order != np.arange(len(order))):
        warn_caller(f"Y's columns are not in sorted order; classes_ and every prediction are ({list(classes[order])!r}). "
                    "score() matches columns by name, but scikit-learn's scorers (f1_samples, ...) compare by position: "
                    "pass Y[sorted(Y.columns)].")
    classes, indicator = classes[order], indicator[:, order]
    _warn_constant_columns(classes, indicator)
    return classes, indicator


def _is_frame(Y: Any) -> bool:
    """Whether ``Y`` is a DataFrame (named columns, matched by name)."""
    return hasattr(Y, "columns") and hasattr(Y, "iloc")


def _read_targets(Y: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(names, indicator, by_position)`` of any accepted form, in ``Y``'s own column order (unchecked otherwise);
    ``by_position``: a matrix without names (also as lists of 0/1 rows), whose labels are its column indices."""
    if _is_frame(Y):
        return (*_from_frame(Y), False)
    if getattr(Y, "shape", None) is not None and len(Y.shape) == 2:
        matrix = Y.toarray() if hasattr(Y, "toarray") else np.asarray(Y)
        return np.arange(matrix.shape[1]), _binary(matrix, "Y"), True
    rows = list(Y)
    if _rows_of_bits(rows):  # Y.tolist() of an indicator matrix, as scikit-learn reads it (not label sets {0, 1})
        return np.arange(len(rows[0])), np.asarray(rows, dtype=int), True
    return (*_from_collections(rows), False)


def _rows_of_bits(rows: list[Any]) -> bool:
    """Whether ``rows`` are the lists of an indicator matrix: lists or tuples of one length (2 or more) of 0/1
    numbers. Read as label sets, every row would name labels 0 and 1 (or one twice)."""
    if not rows or not all(isinstance(row, (list, tuple)) for row in rows) or len(rows[0]) < 2:
        return False
    return all(len(row) == len(rows[0]) and all(_is_binary(value) for value in row) for row in rows)


def targets_in_order(Y: Any, classes: np.ndarray) -> tuple[np.ndarray, int]:
    """``(indicator, n_unknown)``: ``Y`` (any accepted form) as an ``(n, k + n_unknown)`` 0/1 matrix whose first
    ``k`` columns are ``classes`` in order; labels of ``Y`` outside ``classes`` are the extra columns.

    A DataFrame's columns are matched to ``classes`` by name (whatever their order), label collections by
    label; a plain matrix (also as lists of 0/1 rows) is read by position and must have one column per class.

    Raises
    ------
    ValueError
        A matrix without names has another number of columns than ``classes``, or a DataFrame lacks a class.
    """
    names, indicator, by_position = _read_targets(Y)
    frame = _is_frame(Y)
    if by_position:
        if indicator.shape[1] != len(classes):
            raise ValueError(f"Y has {indicator.shape[1]} columns; an indicator matrix without column names must "
                             f"have one column per class of classes_ ({len(classes)}), in that order.")
        return indicator, 0
    keys = [str(label) for label in classes.tolist()] if frame else classes.tolist()
    position = {name: j for j, name in enumerate(names.tolist())}
    missing = [key for key in keys if key not in position]
    if missing and frame:
        raise ValueError(f"Y's columns {list(names.tolist())!r} lack the classes {missing!r} of classes_ "
                         f"{keys!r}; a DataFrame Y needs one column per class, matched by name.")
    unknown = [j for name, j in position.items() if name not in set(keys)]
    columns = [indicator[:, position[key]] if key in position else np.zeros(len(indicator), dtype=int)
               for key in keys] + [indicator[:, j] for j in unknown]
    return np.column_stack(columns).astype(int), len(unknown)


def _binary(matrix: np.ndarray, name: str) -> np.ndarray:
    if matrix.dtype.kind == "O" and all(_is_binary(value) for value in matrix.flat):  # pandas Int64/boolean, object 0/1
        return np.asarray(matrix.tolist(), dtype=int).reshape(matrix.shape)
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
            kinds.add("str" if isinstance(label, str) else "bool" if isinstance(label, (bool, np.bool_))
                      else "number" if isinstance(label, (int, float, np.number)) else type(label).__name__)
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
        """The held-out slice is stratified by each text's rarest label (texts without one: their own stratum).

        Stratifying by label set left most texts out of the draw (on 200 texts of 12 labels,
        112 label sets, most seen once: 10 texts held out, about one positive per label); by
        the rarest label every label's texts are drawn from, and the slice is the full fraction.
        """
        return rarest_labels(targets)

    def holdout_hint(self, validation_fraction: float) -> str:
        return ("the slice is stratified by each text's rarest label, and a label gives validation texts "
                f"from {smallest_held_out_class(validation_fraction)} texts on")

    def class_weights(self, plan: Any, classes: np.ndarray, targets: np.ndarray) -> list[float] | None:
        return None  # class_weight must be None for multi-label targets (check_params)

    def training_options(self, plan: Any, targets: np.ndarray) -> dict[str, Any]:
        """Each label's weight of a "yes" decision, from ``positive_weight`` and the training texts' labels."""
        return {"positive_weights": positive_weights(targets, plan.positive_weight)}

    def fit_decision(self, plan: Any, fit: Any) -> dict[str, Any]:
        """The weighting's correction and the per-label thresholds.

        Training with "yes" weighted ``w_j`` times "no" moves label ``j``'s logit up by about
        ``log w_j`` (the weighted loss is minimal there), so with ``calibration="auto"`` the
        probabilities are corrected back, ``sigmoid(logit - log w_j)``: a :class:`Calibration`
        whose bias is ``-log w_j`` (None when every weight is 1 or ``calibration=None``), and
        ``predict_proba`` estimates how often a label applies rather than the weighted odds.
        Thresholds: ``multilabel_threshold`` as given (on ``predict_proba``'s scale), or for
        "auto" the F1-optimal ones on the held-out slice's uncorrected probabilities
        (:func:`fit_thresholds`: pooled for labels with few positives there; 0.5
        without a slice), carried over to the corrected scale, so the correction changes
        ``predict_proba`` and never which labels are predicted.
        """
        n_labels = len(fit.classes)
        trained = fit.history.get("n_steps", 0) > 0  # untrained (max_steps=0): nothing to correct
        weights = fit.history.get("positive_weights") if trained and plan.calibration == "auto" else None
        offsets = np.zeros(n_labels) if weights is None else np.log(np.asarray(weights, dtype=float))
        calibration = Calibration(bias=-offsets) if np.any(offsets != 0) else None
        if plan.multilabel_threshold != "auto":
            return {"thresholds": np.full(n_labels, float(plan.multilabel_threshold)), "calibration": calibration}
        if fit.validation_scores is None:
            uncorrected = np.full(n_labels, 0.5)
        else:
            uncorrected = fit_thresholds(expit(np.asarray(fit.validation_scores)), fit.targets[fit.held])
        return {"thresholds": expit(logit(uncorrected) - offsets), "calibration": calibration}

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

    def train_request(self, inputs: list[list[int]], codes: np.ndarray, choice_ids: list[list[int]], *,
                      weights: np.ndarray | None = None, validation: Validation | None = None,
                      positive_weights: np.ndarray | None = None, **schedule: Any) -> TrainRequest:
        """One example per text: its prompt, then one yes/no decision per label (``codes``: the ``(n, k)`` indicator).

        ``weights``: per text; ``positive_weights``: per label, the weight of a "yes" decision relative
        to a "no" (see :func:`decision_weights`).
        """
        questions, (yes, no) = split_choices(choice_ids)
        indicator = np.asarray(codes, dtype=int)
        matrix = decision_weights(indicator, weights, positive_weights)
        examples = [TrainExample(list(ids), [Decision(question, [yes, no], 1 - int(truth), float(weight))
                                             for question, truth, weight in zip(questions, row, row_weights)])
                    for ids, row, row_weights in zip(inputs, indicator, matrix)]
        return TrainRequest(examples=examples, validation=validation, **schedule)

    def validation(self, inputs: list[list[int]], codes: np.ndarray, weights: np.ndarray | None,
                   choice_ids: list[list[int]], batch_size: int,
                   positive_weights: np.ndarray | None = None) -> Validation:
        """The held-out texts ``inputs`` (indicator ``codes``) scored as prediction scores them.

        The loss is the per-label binary log-loss, averaged over (text, label) with the weights
        training gives those decisions; the scores are the ``(n, k)`` per-label logits.
        """
        indicator = np.asarray(codes, dtype=int)
        matrix = _raw_decision_weights(indicator, weights, positive_weights)

        def validation(score: ScoreFunction) -> tuple[float, np.ndarray]:
            logits = self.score(Scorer(score), inputs, choice_ids, batch_size=batch_size)
            log_likelihood = np.where(indicator == 1, log_expit(logits), log_expit(-logits))
            return float(-np.average(log_likelihood, weights=matrix)), logits

        return validation

    def score(self, engine: Engine, inputs: list[list[int]], choice_ids: list[list[int]], *, batch_size: int,
              progress: Progress | None = None) -> np.ndarray:
        """``(n_inputs, n_labels)`` logits: each label's "yes" score minus its "no" score."""
        scores = np.asarray(engine.score(inputs, choice_ids, batch_size=batch_size, progress=progress))
        return scores[:, 0::2] - scores[:, 1::2]

    # -- from scores to predictions --
    def check_proba(self, proba: np.ndarray) -> None:
        """Each label's own probability: any row of values in [0, 1] is one."""

    def log_probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Per-label log-probabilities of "yes" (each label on its own; rows do not sum to 1)."""
        return log_expit(scores)

    def decision(self, scores: np.ndarray) -> np.ndarray:
        """The per-label logits, ``(n_samples, n_labels)`` (as OneVsRestClassifier's decision_function)."""
        return scores

    def decide(self, proba: np.ndarray, classes: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
        """The ``(n_samples, n_labels)`` 0/1 indicator: ``proba >= thresholds``."""
        return (proba >= thresholds).astype(int)


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


def positive_weights(indicator: np.ndarray, positive_weight: float | str | None) -> np.ndarray:
    """Per label, the loss weight of a "yes" decision relative to a "no" one (``positive_weight`` resolved).

    ``"balanced"``: the label's number of "no" texts over its "yes" texts in ``indicator``, at most
    :data:`MAX_POSITIVE_WEIGHT` (1 for a label that is on every text or on none); a number: that
    weight for every label; None: 1.
    """
    n_labels = np.asarray(indicator).shape[1]
    if positive_weight is None:
        return np.ones(n_labels)
    if positive_weight != "balanced":
        return np.full(n_labels, float(positive_weight))
    yes = np.asarray(indicator).sum(axis=0).astype(float)
    no = len(indicator) - yes
    ratio = np.divide(no, yes, out=np.ones(n_labels), where=(yes > 0) & (no > 0))
    return np.minimum(ratio, MAX_POSITIVE_WEIGHT)


def _raw_decision_weights(indicator: np.ndarray, weights: np.ndarray | None,
                          positive: np.ndarray | None) -> np.ndarray:
    """``(n, k)``: the text's weight, times the label's positive weight where the answer is "yes"."""
    indicator = np.asarray(indicator, dtype=int)
    matrix = np.ones(indicator.shape) if positive is None else np.where(indicator == 1, positive[None, :], 1.0)
    return matrix if weights is None else matrix * np.asarray(weights, dtype=float)[:, None]


def decision_weights(indicator: np.ndarray, weights: np.ndarray | None, positive: np.ndarray | None) -> np.ndarray:
    """``(n, k)`` loss weight of each (text, label) decision.

    A "yes" decision weighs ``positive[j]`` times a "no" one; each label's weights are then scaled
    to average 1 over its texts (so the loss keeps its scale and every label weighs the same in
    total), and multiplied by the text's weight (``weights``, per text, None: 1).
    """
    indicator = np.asarray(indicator, dtype=int)
    matrix = _raw_decision_weights(indicator, None, positive)
    if len(matrix):
        matrix = matrix / matrix.mean(axis=0, keepdims=True)
    return matrix if weights is None else matrix * np.asarray(weights, dtype=float)[:, None]


MULTILABEL = MultiLabel()


def rarest_labels(targets: np.ndarray) -> np.ndarray:
    """Per text, the index of its least frequent label (ties: the first), or ``n_labels`` for a text without labels."""
    targets = np.asarray(targets) > 0
    counts = targets.sum(axis=0)
    ranked = np.where(targets, counts[None, :], np.iinfo(np.int64).max)
    return np.where(targets.any(axis=1), np.argmin(ranked, axis=1), targets.shape[1])


# -- thresholds ------------------------------------------------------------------------------
def fit_thresholds(proba: np.ndarray, indicator: np.ndarray, grid: Iterable[float] = THRESHOLD_GRID,
                   default: float = 0.5, min_positives: int = MIN_OWN_THRESHOLD_POSITIVES) -> np.ndarray:
    """Per label, the threshold of ``grid`` with the best F1 on ``(proba, indicator)``.

    A label with fewer than ``min_positives`` positive texts in ``indicator`` gets the pooled
    threshold instead: the best micro-F1 over every (text, label) pair, since a threshold
    chosen on one or two texts follows those texts. Ties go to the threshold closest to
    ``default``; without any positive text, every label keeps ``default``.
    """
    proba, truth = np.asarray(proba, dtype=float), np.asarray(indicator) > 0
    grid = np.asarray(list(grid), dtype=float)
    pooled = _best_threshold(proba.reshape(-1), truth.reshape(-1), grid, default)
    return np.array([_best_threshold(proba[:, j], truth[:, j], grid, default) if truth[:, j].sum() >= min_positives
                     else pooled for j in range(proba.shape[1])], dtype=float)


def _best_threshold(scores: np.ndarray, truth: np.ndarray, grid: np.ndarray, default: float) -> float:
    """The threshold of ``grid`` with the best F1 of ``scores >= threshold`` against ``truth`` (ties: closest
    to ``default``; ``default`` when ``truth`` has no positive, where F1 is 0 whatever the threshold)."""
    if not truth.any():
        return float(default)
    order = grid[np.argsort(np.abs(grid - default), kind="stable")]
    predicted = scores[None, :] >= order[:, None]
    tp = (predicted & truth).sum(axis=1)
    f1 = 2 * tp / np.maximum(predicted.sum(axis=1) + truth.sum(), 1)
    return float(order[int(np.argmax(f1))])
