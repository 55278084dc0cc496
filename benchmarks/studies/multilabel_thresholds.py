"""Multi-label threshold policies compared on one fit: per label, pooled, per label from enough positives, fixed.

    OMP_NUM_THREADS=1 python -m benchmarks.studies.multilabel_thresholds --n-train 200 --out results/ml-thresholds-200.json

Fits ``LLMClassifier()`` (every default) once on ``debtags`` (``--n-train`` / 200, seed 0),
records the held-out slice's probabilities the fit chose its thresholds from (before the
weighting's correction, as the fit sees them), and scores the 200 test texts under each
threshold policy of :data:`POLICIES`: each maps ``(held-out probabilities, held-out labels)``
to one threshold per label on that scale, carried to ``predict_proba``'s scale as the fit
carries its own. One fit serves every policy, so their differences are the thresholds' alone.
The test set only scores the policies; nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from benchmarks.multilabel import indicator, multilabel_metrics
from benchmarks.studies import write_result
from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier
from llm_classifier.formulations import multilabel as ml

Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _per_label_from(min_positives: int) -> Policy:
    """The library's rule: a label's own F1-best threshold from ``min_positives`` held-out positives on,
    the pooled (micro-F1-best) threshold below that."""
    return lambda proba, truth: ml.fit_thresholds(proba, truth, min_positives=min_positives)


POLICIES: dict[str, Policy] = {
    "per label always (before)": _per_label_from(1),
    "per label from 3 positives, else pooled": _per_label_from(3),
    "per label from 5 positives, else pooled": _per_label_from(5),
    "per label from 10 positives, else pooled": _per_label_from(10),
    f"per label from {ml.MIN_OWN_THRESHOLD_POSITIVES} positives, else pooled (default)":
        _per_label_from(ml.MIN_OWN_THRESHOLD_POSITIVES),
    "pooled always": _per_label_from(10**9),
    "0.5": lambda p, t: np.full(p.shape[1], 0.5),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.multilabel_thresholds",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--llm-kwargs", type=json.loads, default={})
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    data = load_task("debtags", n_train=args.n_train, n_test=args.n_test, seed=0)
    labels = list(data.metadata["labels"])
    separator = data.metadata["label_separator"]
    import pandas as pd

    Y_train = indicator(data.train_labels, labels, separator)
    Y_test = indicator(data.test_labels, labels, separator)

    seen: dict[str, np.ndarray] = {}
    library_rule = ml.fit_thresholds

    def recording(proba: np.ndarray, truth: np.ndarray, *a, **k) -> np.ndarray:
        seen["proba"], seen["truth"] = np.asarray(proba), np.asarray(truth)
        return library_rule(proba, truth, *a, **k)

    ml.fit_thresholds = recording
    try:
        clf = LLMClassifier(random_state=0, **args.llm_kwargs).fit(list(data.train_texts), pd.DataFrame(Y_train, columns=labels))
    finally:
        ml.fit_thresholds = library_rule
    if "proba" not in seen:
        raise SystemExit("the fit held out no validation slice: no thresholds were fitted")
    weights = np.asarray(clf.history_.get("positive_weights") or np.ones(len(labels)), dtype=float)
    offsets = np.log(weights) if clf.calibration_ is not None else np.zeros(len(labels))
    test_proba = clf.predict_proba(list(data.test_texts))

    held, truth = seen["proba"], seen["truth"]
    result = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "held_out_texts": int(len(truth)), "held_out_positives_per_label": truth.sum(axis=0).tolist(),
              "library_thresholds": np.asarray(clf.thresholds_).tolist(), "policies": {}}
    print(f"held-out texts {len(truth)}, positives per label {truth.sum(axis=0).tolist()}")
    for name, policy in POLICIES.items():
        thresholds = expit(logit(policy(held, truth)) - offsets)
        predicted = (test_proba >= thresholds).astype(int)
        metrics = multilabel_metrics(Y_test, predicted, labels)
        result["policies"][name] = {"thresholds": thresholds.tolist(), "metrics": metrics}
        print(f"{name:>42}: micro-F1 {metrics['micro_f1']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  "
              f"samples-F1 {metrics['samples_f1']:.3f}  labels/text {predicted.sum(axis=1).mean():.2f}", flush=True)
    write_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
