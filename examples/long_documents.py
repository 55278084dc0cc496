"""Long documents: cut to the budget, or read as overlapping windows whose class scores are pooled.

    python3 examples/long_documents.py              # BBC news, 100 / 50 texts, max_length=256
    python3 examples/long_documents.py authors-en   # any task of the benchmark suite

A news article is longer than ``max_length=256`` tokens allow, so ``long_text="truncate"``
(the default) reads its beginning only. ``long_text="mean"`` splits it into windows of the
budget overlapping by a quarter, trains on every window with the article's label, scores every
window and averages the class log-probabilities; ``"max"`` keeps each class's best window.
``long_text`` is also a prediction setting, so one window-trained model predicts both ways.
Prints macro-F1 and the seconds each step took (docs/benchmarks.md, *Long documents*, has the
measured table for three tasks).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's data loaders
from benchmarks.tasks import load_task  # noqa: E402
from llm_classifier import LLMClassifier  # noqa: E402


def timed(step, *args):
    start = time.perf_counter()
    result = step(*args)
    return result, time.perf_counter() - start


def main(task: str = "news-bbc") -> None:
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=100, n_test=50)
    settings = dict(max_length=256, max_steps=12, random_state=0)
    for fit_mode, predict_modes in (("truncate", ["truncate"]), ("mean", ["mean", "max"])):
        clf, fit_s = timed(LLMClassifier(**settings, long_text=fit_mode).fit, X_train, y_train)
        print(f"fit long_text={fit_mode!r}: {clf.history_['n_examples']} training examples, {fit_s:.0f} s")
        for mode in predict_modes:
            predicted, predict_s = timed(clf.set_params(long_text=mode).predict, X_test)
            f1 = f1_score(y_test, predicted, average="macro")
            print(f"  predict long_text={mode!r}: macro-F1 {f1:.3f}, {predict_s:.0f} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
