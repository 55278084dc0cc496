"""Average a fine-tuned LLM's probabilities with TF-IDF's, offline on scores saved by ``benchmarks.studies.dump_scores``.

    python3 -m benchmarks.studies.vote_study results/scores/sentiment-ema95.npz results/scores/authors-de-*.npz

The task is read from the file name (it must start with a task name, e.g.
``authors-de-seed1.npz``); its 500 / 200 split (seed 0) is drawn again, the suite's TF-IDF
baseline is fitted on the training texts, and on the test texts the script prints macro-F1 of
TF-IDF alone, the LLM alone (its saved scores normalised over the label set), their mean
probability (``VotingClassifier(voting="soft")``) and their geometric mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from sklearn.metrics import f1_score

from benchmarks.baselines import TfidfClassifier
from benchmarks.studies.calibration_study import score_files_parser
from benchmarks.tasks import DEFAULT_TASKS, load_task


def task_of(path: Path) -> str:
    """The task a score file belongs to: the longest task name its file name starts with."""
    matches = [task for task in DEFAULT_TASKS if path.name.startswith(task)]
    if not matches:
        raise SystemExit(f"{path}: the file name does not start with a task name ({', '.join(DEFAULT_TASKS)})")
    return max(matches, key=len)


def tfidf_log_proba(task: str, classes: list[str]) -> np.ndarray:
    """TF-IDF's test log-probabilities on the task's 500 / 200 split, columns in the order of ``classes``."""
    X_train, y_train, X_test, _, _ = load_task(task, n_train=500, n_test=200)
    baseline = TfidfClassifier().fit(X_train, y_train)
    columns = [list(baseline.classes_).index(c) for c in classes]
    return np.log(np.clip(baseline.predict_proba(X_test)[:, columns], 1e-12, None))


def evaluate(path: Path, cache: dict[str, np.ndarray]) -> dict[str, object]:
    data = np.load(path)
    classes = [str(c) for c in data["classes"]]
    task = task_of(path)
    if task not in cache:
        cache[task] = tfidf_log_proba(task, classes)
    tfidf, llm, codes = cache[task], log_softmax(data["test_scores"], axis=1), data["test_codes"]
    labels = np.arange(len(classes))

    def macro_f1(log_scores: np.ndarray) -> float:
        return f1_score(codes, log_scores.argmax(axis=1), average="macro", labels=labels, zero_division=0)

    return {
        "file": path.stem, "tfidf": macro_f1(tfidf), "llm": macro_f1(llm),
        "mean": macro_f1(np.logaddexp(tfidf, llm)), "geometric": macro_f1(tfidf + llm),
    }


def main(argv: list[str] | None = None) -> None:
    paths = score_files_parser("python -m benchmarks.studies.vote_study", __doc__).parse_args(argv).paths
    cache: dict[str, np.ndarray] = {}
    print("| scores | TF-IDF | LLM | mean probability | geometric mean |")
    print("|---|---|---|---|---|")
    for path in paths:
        row = evaluate(path, cache)
        print(f"| {row['file']} | {row['tfidf']:.3f} | {row['llm']:.3f} | {row['mean']:.3f} | {row['geometric']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
