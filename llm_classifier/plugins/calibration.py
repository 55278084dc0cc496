"""Calibration maps fitted on label scores: ``log p_k -> log p_k / T + b_k``, renormalised.

The model's scores ``log p(answer_k | prompt)`` carry a bias towards some answers
(frequent or short label names, the label-prior bias that dominates zero-shot
predictions) and are often over- or under-confident. Two corrections are fitted on
scored texts whose labels are known:

- :func:`prior_correction`: the bias ``b`` that moves the model's *mean* predicted
  distribution onto the label frequencies (contextual calibration's prior
  correction; it needs only the label frequencies, not which text has which label);
- :func:`fit_affine`: a temperature ``T`` and a bias ``b`` fitted by maximum
  likelihood on (scores, labels) pairs (vector scaling with one shared scale), with
  an L2 penalty on ``b`` so that few texts per class do not overfit it.

Both return a :class:`Calibration`, applied by :meth:`Calibration.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

__all__ = ["CALIBRATIONS", "Calibration", "fit_affine", "fit_calibration", "prior_correction"]

CALIBRATIONS = ("prior", "affine")


@dataclass(frozen=True)
class Calibration:
    """``scores / temperature + bias``, then normalised over the label set by the caller."""

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


def fit_affine(scores: np.ndarray, codes: np.ndarray, *, temperature: bool = True, l2: float = 0.01,
               weights: np.ndarray | None = None) -> Calibration:
    """Maximum-likelihood temperature and class bias on labelled scores.

    Minimises ``mean_i -log softmax(s_i / T + b)[y_i] + l2 * |b|^2 / 2`` (convex in
    ``b`` and ``1 / T``; with ``weights``, the weighted mean). Classes absent from
    ``codes`` (too rare to be held out) carry no evidence about their bias: they get the
    mean bias of the others.

    Parameters
    ----------
    scores : ndarray of shape (n_texts, n_classes)
        Log-scores of every class for each text.
    codes : ndarray of shape (n_texts,)
        The true class of each text (column index).
    temperature : bool, default=True
        Fit ``T`` too; False keeps ``T = 1`` (bias only).
    l2 : float, default=0.01
        Penalty on the bias.
    weights : ndarray of shape (n_texts,), optional
        Weight of each text (sample weights); equal by default.
    """
    scores = np.asarray(scores, dtype=float)
    codes = np.asarray(codes)
    n, k = scores.shape
    share = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), codes] = 1.0

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        inverse_t, bias = (params[0], params[1:]) if temperature else (1.0, params)
        logits = scores * inverse_t + bias
        log_p = log_softmax(logits, axis=1)
        residual = (np.exp(log_p) - onehot) * share[:, None]
        loss = -(log_p * onehot).sum(axis=1) @ share + 0.5 * l2 * bias @ bias
        grad_bias = residual.sum(axis=0) + l2 * bias
        if not temperature:
            return loss, grad_bias
        return loss, np.concatenate([[np.sum(residual * scores)], grad_bias])

    start = np.concatenate([[1.0], np.zeros(k)]) if temperature else np.zeros(k)
    bounds = [(1e-3, 1e3)] + [(None, None)] * k if temperature else None
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds)
    params = result.x
    bias = params[1:] if temperature else params
    present = np.bincount(codes, minlength=k) > 0
    bias = np.where(present, bias, bias[present].mean()) - bias[present].mean()
    return Calibration(bias=bias, temperature=float(1.0 / params[0]) if temperature else 1.0)


def fit_calibration(method: str, scores: np.ndarray, scored_codes: np.ndarray, codes: np.ndarray, n_classes: int,
                    weights: np.ndarray | None = None, scored_weights: np.ndarray | None = None) -> Calibration:
    """Fit ``method`` ("prior" or "affine") on labelled scores.

    ``scores`` / ``scored_codes`` are the scored texts and their labels; ``codes`` are
    all training labels, whose frequencies (weighted by ``weights``, the sample weights)
    are the prior's target. ``scored_weights`` weigh the scored texts in the affine fit.
    """
    if method == "prior":
        counts = np.bincount(codes, weights=weights, minlength=n_classes)
        return prior_correction(scores, counts / counts.sum())
    if method == "affine":
        return fit_affine(scores, scored_codes, weights=scored_weights)
    raise ValueError(f"Unknown calibration {method!r}; expected one of {CALIBRATIONS}.")
