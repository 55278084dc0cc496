"""One LLMClassifier configuration on one task, for ablations (same splits and seed as the suite).

    python3 -m benchmarks.studies.ablation authors-de '{"objective": "class"}'

Prints one ``RESULT {...}`` line: accuracy, macro-F1, fit seconds, the three most
predicted classes (to spot a collapse onto few classes) and the mean training loss.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

from sklearn.metrics import accuracy_score, f1_score

from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.ablation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a suite task (see python -m benchmarks --help)")
    parser.add_argument("kwargs", nargs="?", type=json.loads, default={},
                        help="LLMClassifier keyword arguments as a JSON object (default: {})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    task, kwargs = args.task, args.kwargs
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=500, n_test=200)
    start = time.perf_counter()
    clf = LLMClassifier(random_state=0, **kwargs).fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    predictions = clf.predict(X_test)
    result = dict(
        task=task, kwargs=kwargs, accuracy=accuracy_score(y_test, predictions),
        macro_f1=f1_score(y_test, predictions, average="macro"), fit_s=fit_s,
        most_predicted=collections.Counter(map(str, predictions)).most_common(3),
        train_loss=clf.history_.get("train_loss"),
    )
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
