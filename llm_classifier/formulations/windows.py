"""Long documents as overlapping windows: ``long_text="mean"`` or ``"max"``.

A text longer than the encoder's budget (``max_length`` less the template and the longest
answer) is split into consecutive slices of ``budget`` tokens, each overlapping the one
before by ``window_overlap`` of the budget; the last slice is aligned with the end of the
text (so it may overlap its neighbour more). Each slice is wrapped in the prompt's prefix
and suffix like any text, so every window is an ordinary input of the direction
(:mod:`llm_classifier.formulations.base`). A text that fits is one window, encoded exactly as
``long_text="truncate"`` encodes it.

- Prediction scores every window with the direction and pools the class log-scores of a
  text's windows (:data:`POOLINGS`) before calibration and normalisation. With more than one
  window each window's scores are first normalised over the classes (log-probabilities), so
  pooling compares like with like whatever a window's length; a single window is passed on
  unchanged (calibration and normalisation ignore a shift shared by a row's classes).
- Training uses every window as an example carrying its document's label. Each window
  weighs ``1 / n_windows`` of its document (scaled so the weights average 1), so a document
  counts once however long it is, and sample and class weights keep their per-document
  meaning. An engine without sample weights trains on equally weighted windows.
- ``max_windows`` bounds the cost per text: a text that needs more windows gets
  ``max_windows`` windows spread evenly from its beginning to its end (with gaps between
  them); the warning counts such texts as shortened.

:class:`Windows` wraps a :class:`~llm_classifier.formulations.base.Direction` and its encoder and
is the one place that knows about windows; with ``long_text="truncate"`` it is the plain
truncating encoder (one input per text).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_softmax

from ..engines.base import Engine, Progress, TrainRequest, Validation
from .base import class_validation
from ..encoding import PromptEncoder

__all__ = ["LONG_TEXT", "POOLINGS", "EncodedWindows", "Windows", "split_windows", "window_overlap_tokens", "windows_needed"]


def _mean(scores: np.ndarray) -> np.ndarray:
    return scores.mean(axis=0)


def _max(scores: np.ndarray) -> np.ndarray:
    return scores.max(axis=0)


#: How the class log-probabilities of a text's windows are pooled: mean of the
#: log-probabilities (a geometric mean of the windows' probabilities) or each class's best window.
POOLINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"mean": _mean, "max": _max}
#: The values of ``long_text``: cut to the budget (``truncation`` says how) or pool windows.
LONG_TEXT = ("truncate", *POOLINGS)


def window_overlap_tokens(budget: int, overlap: float) -> int:
    """Tokens shared by consecutive windows: ``overlap`` of ``budget``, at most ``budget - 1``."""
    return min(budget - 1, int(round(overlap * budget)))


def windows_needed(n_tokens: int, budget: int, overlap: int) -> int:
    """How many windows of ``budget`` tokens overlapping by ``overlap`` cover ``n_tokens`` tokens."""
    return 1 if n_tokens <= budget else 1 + math.ceil((n_tokens - budget) / (budget - overlap))


def split_windows(ids: Sequence[int], budget: int, overlap: int, max_windows: int | None = None) -> list[list[int]]:
    """Slices of ``ids`` of ``budget`` tokens, consecutive ones sharing ``overlap`` tokens.

    A text that fits is one window. The last window ends with the text (so it may share
    more than ``overlap`` tokens with the one before). When more than ``max_windows``
    windows would be needed, ``max_windows`` windows spread evenly over the text are kept.
    """
    ids = list(ids)
    n = len(ids)
    if n <= budget:
        return [ids]
    stride = budget - overlap
    count = windows_needed(n, budget, overlap)
    if max_windows is not None and count > max_windows:
        starts = np.linspace(0, n - budget, max_windows).round().astype(int).tolist() if max_windows > 1 else [0]
    else:
        starts = [min(i * stride, n - budget) for i in range(count)]
    return [ids[start:start + budget] for start in starts]


@dataclass
class EncodedWindows:
    """Prompt ids of every window and the text each belongs to.

    Attributes
    ----------
    ids : list of list of int
        One prompt per window, texts in order, a text's windows in text order.
    owners : ndarray of shape (n_windows,)
        Index of each window's text.
    n_texts : int
    n_cut : int
        Texts of which some tokens are in no window (truncated, or over ``max_windows``).
    """

    ids: list[list[int]]
    owners: np.ndarray
    n_texts: int
    n_cut: int

    @property
    def n_windows(self) -> np.ndarray:
        """Number of windows of each text."""
        return np.bincount(self.owners, minlength=self.n_texts)


class Windows:
    """A direction reading long texts as windows: encode, score and pool, and train on windows.

    Parameters
    ----------
    direction : Direction
        The formulation that scores and trains on each window.
    encoder : PromptEncoder
        The direction's encoder (its ``budget`` is the window length).
    long_text : {"truncate", "mean", "max"}
        ``"truncate"`` cuts a long text as the encoder's ``truncation`` says; otherwise the
        pooling of :data:`POOLINGS`.
    window_overlap : float
        Share of the budget consecutive windows have in common, in [0, 1).
    max_windows : int or None
        Most windows per text; None for no limit.
    """

    def __init__(self, direction: Any, encoder: PromptEncoder, long_text: str = "truncate",
                 window_overlap: float = 0.25, max_windows: int | None = None):
        self.direction = direction
        self.encoder = encoder
        self.long_text = long_text
        self.overlap = window_overlap_tokens(encoder.budget, window_overlap)
        self.max_windows = max_windows

    @classmethod
    def of(cls, estimator: Any, direction: Any, encoder: PromptEncoder) -> Windows:
        """The windows the estimator's ``long_text``, ``window_overlap`` and ``max_windows`` ask for."""
        return cls(direction, encoder, estimator.long_text, estimator.window_overlap, estimator.max_windows)

    def encode(self, texts: Sequence[str]) -> EncodedWindows:
        """Encode ``texts`` into windows (one per text when ``long_text="truncate"``); no warning."""
        if self.long_text == "truncate":
            encoded = self.encoder.encode(texts, warn=False)
            return EncodedWindows(encoded.ids, np.arange(len(encoded.ids)), len(encoded.ids), encoded.n_truncated)
        prefix, suffix, budget = self.encoder.prefix_ids, self.encoder.suffix_ids, self.encoder.budget
        ids: list[list[int]] = []
        owners: list[int] = []
        n_cut = 0
        for index, text_ids in enumerate(self.encoder.tokenizer.encode_texts(list(texts)) if len(texts) else []):
            windows = split_windows(text_ids, budget, self.overlap, self.max_windows)
            n_cut += len(windows) < windows_needed(len(text_ids), budget, self.overlap)
            ids += [prefix + window + suffix for window in windows]
            owners += [index] * len(windows)
        return EncodedWindows(ids, np.asarray(owners, dtype=int), len(texts), n_cut)

    def message(self, n_cut: int, n_texts: int) -> str:
        """The warning about ``n_cut`` of ``n_texts`` texts of which some tokens were not read."""
        if self.long_text == "truncate":
            return self.encoder.truncation_message(n_cut, n_texts)
        return (
            f"{n_cut} of {n_texts} texts need more than max_windows={self.max_windows} windows of "
            f"{self.encoder.budget} text tokens; {self.max_windows} windows spread evenly over each were "
            f"read and the rest of each text was not (long_text={self.long_text!r})."
        )

    def pool(self, scores: np.ndarray, encoded: EncodedWindows) -> np.ndarray:
        """``[n_texts, n_classes]`` log-scores from the ``[n_windows, n_classes]`` ``scores`` of ``encoded``."""
        scores = np.asarray(scores, dtype=float)
        if len(encoded.ids) == encoded.n_texts:  # one window per text: nothing to pool
            return scores
        counts = encoded.n_windows
        pooled = np.empty((encoded.n_texts, scores.shape[1]))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        pooling = POOLINGS[self.long_text]
        for text, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
            block = scores[start:stop]
            pooled[text] = block[0] if len(block) == 1 else pooling(log_softmax(block, axis=1))
        return pooled

    def score(self, engine: Engine, encoded: EncodedWindows, choice_ids: list[list[int]], *, batch_size: int,
              progress: Progress | None = None) -> np.ndarray:
        """``[n_texts, n_classes]`` class log-scores: every window scored by the direction, then pooled."""
        windowed = len(encoded.ids) != encoded.n_texts
        scores = self.direction.score(engine, encoded.ids, choice_ids, batch_size=batch_size,
                                      progress=None if windowed else progress)
        if windowed and progress is not None:
            progress.update(encoded.n_texts)
        return self.pool(scores, encoded)

    def codes(self, codes: np.ndarray, encoded: EncodedWindows) -> np.ndarray:
        """The class code of every window: its document's."""
        return np.asarray(codes)[encoded.owners]

    def weights(self, weights: np.ndarray | None, encoded: EncodedWindows, weighted: bool = True) -> np.ndarray | None:
        """Every window's loss weight: its document's ``weights`` times ``1 / n_windows``, averaging 1 as before.

        With ``weighted=False`` (an engine without sample weights) the windows weigh the same.
        """
        if len(encoded.ids) == encoded.n_texts or not weighted:
            return weights if weights is None else np.asarray(weights, dtype=float)[encoded.owners]
        share = 1.0 / encoded.n_windows[encoded.owners]
        share *= len(share) / encoded.n_texts  # a document of one window keeps weight 1 when all weigh the same
        return share if weights is None else share * np.asarray(weights, dtype=float)[encoded.owners]

    def train_request(self, encoded: EncodedWindows, codes: np.ndarray, choice_ids: list[list[int]],
                      weights: np.ndarray | None, weighted: bool = True, validation: Validation | None = None,
                      **schedule: Any) -> TrainRequest:
        """The direction's training request with every window as an example of its document's class."""
        return self.direction.train_request(encoded.ids, self.codes(codes, encoded), choice_ids,
                                            weights=self.weights(weights, encoded, weighted), validation=validation,
                                            **schedule)

    def validation(self, encoded: EncodedWindows, codes: np.ndarray, weights: np.ndarray | None,
                   choice_ids: list[list[int]], batch_size: int, **options: Any) -> Validation:
        """The held-out documents ``encoded`` (of classes ``codes``, weights per document) scored as
        prediction scores them: every window, pooled per document; the loss is over documents.
        With one window per text this is the formulation's own validation (``options`` go to it)."""
        if self.long_text == "truncate":
            return self.direction.validation(encoded.ids, codes, weights, choice_ids, batch_size, **options)
        return class_validation(lambda scorer: self.score(scorer, encoded, choice_ids, batch_size=batch_size),
                                codes, weights)
