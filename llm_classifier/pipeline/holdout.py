"""The held-out validation slice: a stratified share of each class, chosen before training."""

from __future__ import annotations

import math

import numpy as np

#: ``early_stopping="auto"`` holds out a validation slice from this many training texts on.
EARLY_STOPPING_MIN_TEXTS = 200

__all__ = ["n_held_out", "smallest_held_out_class", "stratified_holdout"]


def n_held_out(class_size: int, fraction: float) -> int:
    """Validation texts taken from a class of ``class_size``: ``fraction`` of it rounded half up,
    keeping at least one training example."""
    return min(class_size - 1, int(fraction * class_size + 0.5))


def smallest_held_out_class(fraction: float) -> int:
    """The fewest examples a class needs to give a validation text at ``fraction`` (see :func:`n_held_out`)."""
    return max(2, math.ceil(0.5 / fraction))


def stratified_holdout(codes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the rows held out for validation, ``fraction`` of each class.

    ``fraction * n`` is rounded half up, so a class too rare to spare an example (fewer
    than 5 at the default 0.1) is never held out: its few examples are worth more to
    training than to the choice of checkpoint. Every class keeps one training example.
    """
    rng = np.random.default_rng(seed)
    held = np.zeros(len(codes), dtype=bool)
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        n = n_held_out(len(rows), fraction)
        if n >= 1:
            held[rng.choice(rows, size=n, replace=False)] = True
    return held
