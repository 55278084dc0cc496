"""Abstain when unsure: predict only the texts the classifier is confident about.

Run from the repository root after `bash .ci/setup`:

    python3 examples/low_confidence.py                 # the default model, 200 movie-review sentences (minutes)
    python3 examples/low_confidence.py --reference     # the pure-numpy reference engine (an n-gram toy: its
                                                       # accuracy means nothing; it shows the API in seconds)

It fits a classifier, then predicts the held-out sentences at a few confidence thresholds and
prints how many it answered and how accurate those answers were; rejected texts get "unsure".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's data loaders
from benchmarks.tasks import load_task  # noqa: E402
from llm_classifier import LLMClassifier  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true", help="use the pure-numpy reference engine")
    parser.add_argument("--n-train", type=int, default=200)
    args = parser.parse_args()
    X, y, X_test, y_test, _ = load_task("sentiment", n_train=args.n_train, n_test=200, seed=0)
    engine = {"backend": "reference", "model": "reference", "max_steps": 50} if args.reference else {}
    clf = LLMClassifier(random_state=0, on_low_confidence="unsure", **engine).fit(X, y)
    y_test = np.asarray(y_test)
    for threshold in (None, 0.6, 0.7, 0.8, 0.9):
        predicted = clf.set_params(confidence_threshold=threshold).predict(X_test)
        answered = predicted != "unsure"
        accuracy = (predicted[answered] == y_test[answered]).mean() if answered.any() else float("nan")
        print(f"confidence_threshold={threshold}: answered {answered.mean():.0%} of {len(y_test)}, "
              f"accuracy on them {accuracy:.3f}")


if __name__ == "__main__":
    main()
