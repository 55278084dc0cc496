"""Few-shot prompts vs zero-shot for the untrained default model (raw and prior-calibrated scores).

    python3 -m benchmarks.studies.fewshot_study languages 0 1 2

For each number of demonstrations per class, ``ChatTemplate(examples=...)`` gets that many
training texts of every class (drawn with seed 0, cut to ``MAX_WORDS`` words, in a shuffled
order) as earlier chat turns; the model is not trained (``max_steps=0``). The test texts are
the suite's 200; the prior correction is fitted on 200 other training texts.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.studies.prompt_study import report, untrained_predictions
from benchmarks.tasks import load_task
from llm_classifier import ChatTemplate, LLMClassifier

MAX_WORDS = 40


def demonstrations(texts: list[str], labels: list[str], per_class: int, seed: int = 0) -> tuple[list, set]:
    """``per_class`` (text, label) pairs of every class, shuffled, and the indices used."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    chosen = [i for c in sorted(set(labels)) for i in rng.choice(np.flatnonzero(labels_arr == c), per_class, replace=False)]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    return [(" ".join(texts[i].split()[:MAX_WORDS]), labels[i]) for i in chosen], set(chosen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.fewshot_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a suite task (see python -m benchmarks --help)")
    parser.add_argument("counts", nargs="*", type=int, metavar="K", help="demonstrations per class (default: 0 1)")
    args = parser.parse_args(argv)
    task, counts = args.task, args.counts or [0, 1]
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=500, n_test=200)
    for per_class in counts:
        examples, used = demonstrations(X_train, y_train, per_class)
        rest = np.array([i for i in range(len(X_train)) if i not in used])
        sample = np.random.default_rng(1).choice(rest, size=200, replace=False)
        clf = LLMClassifier(prompt=ChatTemplate(examples=examples or None), max_steps=0, calibration=None,
                            max_length=1024, random_state=0).fit(X_train, y_train)
        predictions = untrained_predictions(clf, X_test, [X_train[i] for i in sample], y_train)
        report(f"FEWSHOT {task} k={per_class}", clf, y_test, predictions)


if __name__ == "__main__":
    main()
