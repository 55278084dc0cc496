"""Calibration maps fitted on label scores (pure NumPy, no model)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, softmax

from llm_classifier.plugins.calibration import Calibration, fit_affine, prior_correction


def _sample(rng, n, bias, temperature, signal=2.0):
    """Scores whose calibrated version ``s / T + b`` is the true conditional distribution."""
    k = len(bias)
    latent = rng.normal(size=(n, k)) * signal
    codes = np.array([rng.choice(k, p=p) for p in softmax(latent, axis=1)])
    scores = (latent - bias) * temperature  # so that scores / T + b == latent
    return scores, codes


def test_fit_affine_recovers_temperature_and_bias():
    rng = np.random.default_rng(0)
    bias = np.array([1.0, -0.5, 0.0, -0.5])
    scores, codes = _sample(rng, 20000, bias, temperature=3.0)
    calibration = fit_affine(scores, codes, l2=0.0)
    assert calibration.temperature == pytest.approx(3.0, rel=0.05)
    assert calibration.bias == pytest.approx(bias - bias.mean(), abs=0.08)


def test_fit_affine_lowers_the_log_loss_it_minimises():
    rng = np.random.default_rng(1)
    scores, codes = _sample(rng, 500, np.array([2.0, 0.0, -2.0]), temperature=0.3)
    rows = np.arange(len(codes))
    before = -log_softmax(scores, axis=1)[rows, codes].mean()
    after = -log_softmax(fit_affine(scores, codes).apply(scores), axis=1)[rows, codes].mean()
    assert after < before - 0.1


def test_bias_only_keeps_the_temperature():
    rng = np.random.default_rng(2)
    scores, codes = _sample(rng, 300, np.array([0.5, -0.5]), temperature=1.0)
    calibration = fit_affine(scores, codes, temperature=False)
    assert calibration.temperature == 1.0
    assert calibration.bias.shape == (2,) and abs(calibration.bias.sum()) < 1e-9


def test_fit_affine_gives_an_absent_class_the_mean_bias():
    scores = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]]))
    calibration = fit_affine(scores, np.array([0, 1, 0, 0]))
    assert np.all(np.isfinite(calibration.bias)) and np.isfinite(calibration.temperature)
    assert calibration.bias[2] == pytest.approx(calibration.bias[:2].mean())  # no evidence: not pushed down


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000))
def test_prior_correction_moves_the_mean_prediction_onto_the_frequencies(k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(1, k)).repeat(5, axis=0)  # identical rows: one step is exact
    frequencies = rng.dirichlet(np.ones(k))
    corrected = softmax(prior_correction(scores, frequencies).apply(scores), axis=1)
    assert corrected.mean(axis=0) == pytest.approx(frequencies, rel=1e-6, abs=1e-9)


def test_calibration_apply_is_scale_then_shift():
    calibration = Calibration(bias=np.array([1.0, -1.0]), temperature=2.0)
    assert calibration.apply(np.array([[2.0, 4.0]])) == pytest.approx(np.array([[2.0, 1.0]]))


def test_saved_calibration_round_trips_and_legacy_offsets_load():
    from llm_classifier.io.artifact import _decode_calibration, _encode_calibration

    calibration = Calibration(bias=np.array([0.5, -0.5]), temperature=1.5)
    decoded = _decode_calibration({"calibration": _encode_calibration(calibration)})
    assert decoded.temperature == 1.5 and decoded.bias.tolist() == [0.5, -0.5]
    legacy = _decode_calibration({"log_prior_correction": [0.25, -0.25]})  # files saved before calibration.py stored only these offsets
    assert legacy.temperature == 1.0 and legacy.bias.tolist() == [0.25, -0.25]
    assert _decode_calibration({"calibration": None}) is None
