"""What the studies compute offline on saved scores, written out from its definition.

The library fits these inside ``LLMClassifier.fit`` (``calibration=``, ``early_stopping=``);
the studies compare variants of them on scores saved by :mod:`benchmarks.studies.dump_scores`,
so they carry their own copy instead of importing the library's private modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax


@dataclass(frozen=True)
class Calibration:
    """``scores / temperature + bias`` (log-scores, normalised over the label set by the caller)."""

    bias: np.ndarray
    temperature: float = 1.0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated log-scores of shape ``scores.shape``."""
        return np.asarray(scores, dtype=float) / self.temperature + self.bias


def prior_correction(scores: np.ndarray, frequencies: np.ndarray) -> Calibration:
    """``b = log pi - log q``: label frequencies ``pi`` over the mean prediction ``q`` on ``scores``."""
    mean_prediction = np.clip(softmax(scores, axis=1).mean(axis=0), 1e-12, None)
    frequencies = np.clip(np.asarray(frequencies, dtype=float), 1e-12, None)
    return Calibration(bias=np.log(frequencies) - np.log(mean_prediction))


def fit_affine(scores: np.ndarray, codes: np.ndarray, *, temperature: bool = True, l2: float = 0.01) -> Calibration:
    """Maximum-likelihood temperature ``T`` and class bias ``b`` on labelled scores.

    Minimises ``mean_i -log softmax(s_i / T + b)[y_i] + l2 * |b|^2 / 2``; ``temperature=False``
    keeps ``T = 1``. Classes absent from ``codes`` get the mean bias of the others.
    """
    scores = np.asarray(scores, dtype=float)
    codes = np.asarray(codes)
    n, k = scores.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), codes] = 1.0

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        inverse_t, bias = (params[0], params[1:]) if temperature else (1.0, params)
        log_p = log_softmax(scores * inverse_t + bias, axis=1)
        residual = (np.exp(log_p) - onehot) / n
        loss = -(log_p * onehot).sum() / n + 0.5 * l2 * bias @ bias
        grad_bias = residual.sum(axis=0) + l2 * bias
        if not temperature:
            return loss, grad_bias
        return loss, np.concatenate([[np.sum(residual * scores)], grad_bias])

    start = np.concatenate([[1.0], np.zeros(k)]) if temperature else np.zeros(k)
    bounds = [(1e-3, 1e3)] + [(None, None)] * k if temperature else None
    params = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds).x
    bias = params[1:] if temperature else params
    present = np.bincount(codes, minlength=k) > 0
    bias = np.where(present, bias, bias[present].mean()) - bias[present].mean()
    return Calibration(bias=bias, temperature=float(1.0 / params[0]) if temperature else 1.0)


def label_frequencies(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of each class code among ``codes``."""
    return np.bincount(codes, minlength=n_classes) / len(codes)


def canonical_order(texts: list[str], codes: np.ndarray) -> np.ndarray:
    """Row indices sorted by (class code, text): the order in which ``LLMClassifier.fit`` sees the rows."""
    return np.asarray(sorted(range(len(texts)), key=lambda i: (int(codes[i]), texts[i])), dtype=np.intp)


def stratified_holdout(codes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the rows early stopping holds out: ``fraction`` of each class, rounded half up,
    at least one training example kept per class (as ``LLMClassifier.fit`` draws them)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(codes), dtype=bool)
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        n = min(len(rows) - 1, int(fraction * len(rows) + 0.5))
        if n >= 1:
            held[rng.choice(rows, size=n, replace=False)] = True
    return held
