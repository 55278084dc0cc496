"""Multi-label classification: Debian package descriptions -> their debtags.

Each package may carry several tags (``use::editing`` and ``works-with::text``, say), so
the target is a label set per text. ``LLMClassifier`` asks one yes/no question per label
after the text's prompt and scores all of them in one pass. Run from the repository root
after ``bash .ci/setup`` and ``apt-get -o Acquire::Languages=en update`` (the English
package descriptions):

    python3 examples/multilabel.py                  # the default model, a short fine-tune
    python3 examples/multilabel.py --reference      # the pure-numpy reference engine: a seconds-long demo

It prints micro / macro / samples F1 of the LLM and of a TF-IDF one-vs-rest baseline,
tunes the decision threshold with scikit-learn's ``GridSearchCV``, then saves and
reloads the classifier.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's data loaders
from benchmarks.multilabel import OneVsRestTfidf, indicator  # noqa: E402
from benchmarks.tasks import load_task  # noqa: E402
from llm_classifier import LLMClassifier  # noqa: E402


def report(name: str, Y: np.ndarray, predicted: np.ndarray) -> None:
    scores = {a: f1_score(Y, predicted, average=a, zero_division=0) for a in ("micro", "macro", "samples")}
    print(f"{name:<22} " + "  ".join(f"{a}-F1 {s:.3f}" for a, s in scores.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--reference", action="store_true", help="the pure-numpy reference engine (fast, weak)")
    args = parser.parse_args()

    data = load_task("debtags", n_train=args.n_train, n_test=args.n_test)
    labels, separator = data.metadata["labels"], data.metadata["label_separator"]
    # The targets as label sets (a list of lists), as a user would have them:
    train_sets = [[label for label in joined.split(separator) if label] for joined in data.train_labels]
    Y_test = indicator(data.test_labels, labels, separator)

    engine = dict(backend="reference", model="reference") if args.reference else {}
    clf = LLMClassifier(max_steps=args.max_steps, random_state=0, **engine)
    start = time.perf_counter()
    clf.fit(data.train_texts, train_sets)
    print(f"fitted {len(clf.classes_)} labels x {args.n_train} texts ({clf.history_['n_examples']} yes/no "
          f"examples) in {time.perf_counter() - start:.0f} s")
    proba = clf.predict_proba(data.test_texts)  # (n_test, n_labels), each in [0, 1]
    report("LLMClassifier", Y_test, (proba >= clf.thresholds_).astype(int))  # == clf.predict(...)
    report("TF-IDF one-vs-rest", Y_test, OneVsRestTfidf().fit(data.train_texts, indicator(
        data.train_labels, labels, separator)).predict(data.test_texts))

    # How F1 moves with one threshold shared by every label (choose it on held-out data, not on
    # the test set as here: GridSearchCV over multilabel_threshold, or multilabel_threshold="auto"
    # with early_stopping=True for one threshold per label fitted on early stopping's slice).
    for threshold in (0.2, 0.35, 0.5):
        report(f"threshold {threshold}", Y_test, (proba >= threshold).astype(int))

    with tempfile.TemporaryDirectory() as folder:
        clf.save(folder)
        again = LLMClassifier.load(folder)
        assert np.allclose(again.predict_proba(data.test_texts[:5]), proba[:5])
        print("saved and reloaded: same probabilities")


if __name__ == "__main__":
    main()
