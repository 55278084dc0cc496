"""Per-example loss weights from ``class_weight`` and ``sample_weight``."""

from __future__ import annotations

from collections.abc import Sequence

import numbers
from typing import Any

import numpy as np

from ..exceptions import invalid


def example_weights(codes: np.ndarray, class_weights: Sequence[float] | None = None,
                    sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """Each text's loss weight: its class's weight times its sample weight, or None when all weigh the same.

    Sample weights are scaled to average 1 over ``codes`` (so they reshape the loss without
    changing its scale, which the learning rate was chosen for); class weights keep their values.
    """
    if class_weights is None and sample_weight is None:
        return None
    weights = np.ones(len(codes))
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=float) / np.mean(sample_weight)
    if class_weights is not None:
        weights = weights * np.asarray(class_weights, dtype=float)[np.asarray(codes, dtype=int)]
    return weights


def resolve_class_weights(estimator: Any, classes: np.ndarray, codes: np.ndarray) -> list[float] | None:
    """Loss weight per class code from ``class_weight``, given the codes of the texts that train.

    ``None``: every text weighs the same. ``"balanced"``: ``n / (n_classes * n_c)``, so each
    class contributes equally (sklearn's rule). A dict maps labels to weights; classes it
    omits weigh 1, and a label that is not a class is an error.
    """
    class_weight = estimator.class_weight
    if class_weight is None:
        return None
    if isinstance(class_weight, str):  # "balanced" (the constraint allows no other string)
        counts = np.bincount(codes, minlength=len(classes)).astype(float)
        present = counts > 0
        weights = np.ones(len(classes))
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights.tolist()
    weights = np.ones(len(classes))
    unknown = []
    for label, weight in class_weight.items():
        matches = np.flatnonzero(classes == label) if np.ndim(label) == 0 else []
        if len(matches) != 1:
            unknown.append(label)
            continue
        if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real) or not np.isfinite(weight) or weight < 0:
            raise invalid(estimator, "class_weight", "'balanced', None or a dict of finite weights >= 0", class_weight)
        weights[matches[0]] = float(weight)
    if unknown:
        raise invalid(estimator, "class_weight", f"'balanced', None or a dict whose keys are classes ({classes.tolist()!r}); "
                       f"{unknown!r} are not", class_weight)
    if not (weights > 0).any():
        raise invalid(estimator, "class_weight", "'balanced', None or a dict giving some class a positive weight", class_weight)
    return weights.tolist()
