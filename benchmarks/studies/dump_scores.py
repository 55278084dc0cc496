"""Fit one LLMClassifier configuration on a task and save its raw label scores.

    python3 -m benchmarks.studies.dump_scores authors-de results/scores/authors-de-zs.npz '{"max_steps": 0}'
    python3 -m benchmarks.studies.dump_scores news-20ng FILE '{"prompt": {"instruction": "Classify the text."}}'

A ``"prompt"`` given as a JSON object is passed to ``ChatTemplate`` as keyword arguments.

Saves ``log p(answer_k | prompt)`` (no calibration) for the test texts, for every
training text when the model is zero-shot, and for the held-out validation slice
when ``early_stopping`` is on, with the class codes, so that calibration methods
(``benchmarks.studies.calibration_study``) can be compared offline on the same scores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.studies.offline import canonical_order, stratified_holdout
from benchmarks.tasks import load_task
from llm_classifier import ChatTemplate, LLMClassifier


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.dump_scores", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a suite task (see python -m benchmarks --help)")
    parser.add_argument("out", help="the .npz file to write")
    parser.add_argument("kwargs", nargs="?", type=json.loads, default={},
                        help="LLMClassifier keyword arguments as a JSON object (default: {})")
    return parser.parse_args(argv)


def held_out_rows(clf, texts: list[str], codes: np.ndarray) -> np.ndarray:
    """Indices into ``texts`` of the validation slice early stopping held out in ``clf.fit``."""
    order = canonical_order(texts, codes)  # the rows as fit saw them
    return order[stratified_holdout(codes[order], clf.validation_fraction, clf.random_seed_)]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    task, out, kwargs = args.task, args.out, args.kwargs
    kwargs = {"random_state": 0, **kwargs, "calibration": None}
    if isinstance(kwargs.get("prompt"), dict):  # e.g. {"instruction": "..."}: the chat template with these settings
        kwargs["prompt"] = ChatTemplate(**kwargs["prompt"])
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=500, n_test=200)
    start = time.perf_counter()
    clf = LLMClassifier(**kwargs).fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    classes = clf.classes_
    saved: dict[str, object] = {
        "classes": np.asarray(classes, dtype=str),
        "train_codes": np.searchsorted(classes, y_train),
        "test_codes": np.searchsorted(classes, y_test),
        "test_scores": clf.answer_scores(list(X_test)),
        "fit_s": fit_s,
        "history": json.dumps(clf.history_, default=str),
        "kwargs": json.dumps(kwargs, default=repr),
    }
    if clf.history_["n_steps"] == 0:
        saved["train_scores"] = clf.answer_scores(list(X_train))
    if clf.history_.get("early_stopping"):
        codes = np.searchsorted(classes, y_train)
        rows = held_out_rows(clf, list(X_train), codes)
        saved["validation_scores"] = clf.answer_scores([X_train[i] for i in rows])
        saved["validation_codes"] = codes[rows]
    np.savez(out, **saved)
    test_pred = saved["test_scores"].argmax(axis=1)  # type: ignore[union-attr]
    print(f"DUMPED {task} {out} fit_s={fit_s:.0f} raw_accuracy={(test_pred == saved['test_codes']).mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
