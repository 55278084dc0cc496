"""Long documents: head truncation against windows pooled by mean or max, on the long-text tasks.

    OMP_NUM_THREADS=1 python3 -m benchmarks.studies.long_text_study --tasks news-bbc,authors-en,news-20ng \\
        --n-train 100 --n-test 50 --llm-kwargs '{"max_length": 256, "max_steps": 12, "batch_size": 8}' --out results/long-text

Per task it fits ``llm-qlora`` (the library's defaults, with ``--llm-kwargs``) twice on the same
sample: with ``long_text="truncate"`` (training on each text's head), which predicts truncated
test texts, and with windows (``long_text="mean"``: every window of a training text is an
example with its label), which predicts in windows (``--cross`` adds the other two pairings);
the windows are scored once and pooled both ways (mean and max of the class log-probabilities), which is what ``predict`` does with
``long_text="mean"`` or ``"max"`` (the pooling itself costs nothing). It writes
``results.json`` and ``summary.md`` with macro-F1, fit and predict seconds, and the windows per text.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from benchmarks.llm_methods import make_llm
from benchmarks.tasks import expand_tasks, load_task


def timed_predict(clf, texts: list[str], long_text: str) -> tuple[np.ndarray, float]:
    """``clf.predict(texts)`` with ``long_text`` (a prediction setting: no refit), and its seconds."""
    clf.set_params(long_text=long_text)
    start = time.perf_counter()
    predicted = clf.predict(texts)
    return predicted, time.perf_counter() - start


def run_task(task: str, n_train: int, n_test: int, seed: int, llm_kwargs: dict, cross: bool = False) -> list[dict]:
    X_train, y_train, X_test, y_test, _ = load_task(task, n_train=n_train, n_test=n_test, seed=seed)
    rows = []
    for fit_mode in ("truncate", "mean"):
        clf = make_llm("llm-qlora", {**llm_kwargs, "long_text": fit_mode, "random_state": seed})
        start = time.perf_counter()
        clf.fit(list(X_train), list(y_train))
        fit_s = time.perf_counter() - start
        codes = np.searchsorted(clf.classes_, np.asarray(y_test))
        labels = np.arange(len(clf.classes_))

        def f1(predicted: np.ndarray) -> float:
            return float(f1_score(codes, predicted, average="macro", labels=labels, zero_division=0))

        base = {"task": task, "fit": "windows" if fit_mode != "truncate" else "truncate", "fit_s": round(fit_s, 1),
                "train_examples": clf.history_["n_examples"], "n_train": len(X_train), "n_test": len(X_test)}
        modes = ["truncate", "mean", "max"] if cross else ["truncate"] if fit_mode == "truncate" else ["mean", "max"]
        for mode in modes:
            predicted, seconds = timed_predict(clf, list(X_test), mode)
            rows.append({**base, "predict": mode, "macro_f1": f1(np.searchsorted(clf.classes_, predicted)),
                         "predict_s": round(seconds, 1)})
        print(json.dumps(rows[-len(modes):]), flush=True)
    return rows


def summary(rows: list[dict], command: str) -> str:
    lines = [f"`{command}`", "", "| task | fit | predict | macro-F1 | fit s | predict s | train examples |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['fit']} | {r['predict']} | {r['macro_f1']:.3f} | {r['fit_s']} | "
                     f"{r['predict_s']} | {r['train_examples']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.long_text_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="news-bbc,authors-en,news-20ng")
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm-kwargs", default='{"max_length": 256, "max_steps": 12, "batch_size": 8}')
    parser.add_argument("--out", default="results/long-text")
    parser.add_argument("--cross", action="store_true",
                        help="also predict in windows with the truncation-trained model, and truncated with the other")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for task in expand_tasks(args.tasks):
        rows += run_task(task, args.n_train, args.n_test, args.seed, json.loads(args.llm_kwargs), args.cross)
        (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    command = "python3 -m benchmarks.studies.long_text_study " + " ".join(
        f"--{k.replace('_', '-')} {v!r}" if k == "llm_kwargs" else f"--{k.replace('_', '-')}" if v is True
        else f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not False)
    (out / "summary.md").write_text(summary(rows, command))
    print(summary(rows, command))


if __name__ == "__main__":
    main()
