"""Long documents: head truncation against windows pooled by mean or max, on the long-text tasks.

The standard-size table of ``docs/benchmarks.md`` ("Long documents"), one fit at a time::

    OMP_NUM_THREADS=1 python -m benchmarks.studies.long_text_study --tasks authors-en,news-bbc,news-20ng \\
        --max-length authors-en=128,news-bbc=256,news-20ng=256 --out docs/results/long-text

Per task it draws the suite's sample (``--n-train`` / ``--n-test``, default 500 / 200, ``--seed``)
and fits ``llm-qlora`` (every library default, ``max_length`` from ``--max-length``, anything
else from ``--llm-kwargs``) once per ``--fits`` entry:

- ``truncate``: ``long_text="truncate"``, training on each text's head;
- ``windows``: ``long_text="mean"``, every window of a training text an example of its label
  (the pooling does not change training: a ``"max"`` fit trains the same model).

Training is in epochs (the default), so both fits see every training text. Each fitted model
then predicts the test texts three ways: truncated (``predict`` with ``long_text="truncate"``,
set on the fitted model: a prediction setting, no refit) and in windows pooled by mean and by
max. The windows are scored once (timed: that is what ``predict`` costs with windows) and pooled
both ways and decided by ``predict_from_proba``, exactly as ``predict`` does; the first texts are
checked against ``predict`` itself. (The per-window diagnostics in docs/benchmarks.md were
measured by this study at commit 8d5d3a9, which read the library's internals; it now uses the
public API only.)

``results.json`` (rows keyed by task and fit, merged with the rows already there, so tasks and
fits can be run by separate commands) and ``summary.md`` are rewritten after every fit.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from benchmarks.llm_methods import make_llm
from benchmarks.tasks import expand_tasks, load_task

FIT_MODES = {"truncate": "truncate", "windows": "mean"}
POOLED = ("mean", "max")
N_CHECKED = 8  # test texts whose pooled predictions are checked against predict()


def parse_max_length(value: str, tasks: list[str]) -> dict[str, int | None]:
    """``"256"`` for every task, or ``"task=N,task=N"``; a task not named keeps the default."""
    if not value:
        return {task: None for task in tasks}
    if "=" not in value:
        return {task: int(value) for task in tasks}
    pairs = dict(item.split("=", 1) for item in value.split(","))
    return {task: int(pairs[task]) if task in pairs else None for task in tasks}


def window_diagnostics(clf, texts: list[str], codes: np.ndarray) -> tuple[dict, dict[str, np.ndarray], float]:
    """Predict ``texts`` in windows pooled by mean and by max, through the public API; the seconds of one pass.

    Returns the diagnostics (only what the public API shows: none per window; the per-window
    figures of docs/benchmarks.md were measured by this study at commit 8d5d3a9, which read the
    library's internals), ``{"mean": predicted codes, "max": ...}`` and the seconds of the mean pass.
    """
    previous = clf.long_text
    predicted, seconds = {}, 0.0
    for pooling in POOLED:
        clf.set_params(long_text=pooling)
        start = time.perf_counter()
        proba = clf.predict_proba(texts)
        seconds = seconds or time.perf_counter() - start
        predicted[pooling] = np.searchsorted(clf.classes_, clf.predict_from_proba(proba))
    clf.set_params(long_text=previous)
    diagnostics = {"windows_per_test_text": None, "window_accuracy": None, "first_window_accuracy": None,
                   "texts_with_a_right_window": None}
    return diagnostics, predicted, seconds


def run_fit(task: str, fit: str, data, seed: int, llm_kwargs: dict) -> list[dict]:
    """Fit one way (``fit`` a key of :data:`FIT_MODES`) and predict truncated and in windows."""
    X_train, y_train, X_test, y_test = (list(data.train_texts), list(data.train_labels), list(data.test_texts),
                                        list(data.test_labels))
    clf = make_llm("llm-qlora", {**llm_kwargs, "long_text": FIT_MODES[fit], "random_state": seed})
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    codes = np.searchsorted(clf.classes_, np.asarray(y_test))
    labels = np.arange(len(clf.classes_))
    history = clf.history_
    base = {"task": task, "fit": fit, "max_length": clf.max_length, "n_train": len(X_train), "n_test": len(X_test),
            "fit_s": round(fit_s, 1), "train_examples": history["n_examples"], "n_steps": history["n_steps"],
            "best_step": history.get("best_step"), "stopped_early": history.get("stopped_early"),
            "train_tokens": history.get("n_tokens"), "train_loss": history.get("train_loss"),
            "validation": history.get("validation"), "llm_kwargs": llm_kwargs}

    def scores(predicted: np.ndarray) -> dict:
        return {"accuracy": round(float(accuracy_score(codes, predicted)), 4),
                "macro_f1": round(float(f1_score(codes, predicted, average="macro", labels=labels,
                                                 zero_division=0)), 4)}

    clf.set_params(long_text="truncate")
    start = time.perf_counter()
    truncated = np.searchsorted(clf.classes_, clf.predict(X_test))
    truncate_s = time.perf_counter() - start
    diagnostics, pooled, windows_s = window_diagnostics(clf, X_test, codes)
    for pooling in POOLED:  # the pooled predictions are predict()'s: checked on the first texts
        clf.set_params(long_text=pooling)
        official = np.searchsorted(clf.classes_, clf.predict(X_test[:N_CHECKED]))
        if not np.array_equal(official, pooled[pooling][:N_CHECKED]):
            raise AssertionError(f"{task}/{fit}: pooled {pooling} predictions differ from predict()")
    clf.set_params(long_text=FIT_MODES[fit])
    rows = [{**base, "predict": "truncate", **scores(truncated), "predict_s": round(truncate_s, 1), **diagnostics}]
    rows += [{**base, "predict": pooling, **scores(pooled[pooling]), "predict_s": round(windows_s, 1), **diagnostics}
             for pooling in POOLED]
    print(json.dumps(rows), flush=True)
    return rows


def _show(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def summary(rows: list[dict], commands: list[str]) -> str:
    lines = [*(f"`{command}`" for command in commands), "",
             "| task | max_length | fit | predict | accuracy | macro-F1 | fit s | predict s | train examples | "
             "steps (kept) | windows per test text | window accuracy | first-window accuracy | "
             "texts with a right window |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = "" if r.get("best_step") is None else f" ({r['best_step']})"
        lines.append(f"| {r['task']} | {r['max_length']} | {r['fit']} | {r['predict']} | {r['accuracy']:.3f} | "
                     f"{r['macro_f1']:.3f} | {r['fit_s']} | {r['predict_s']} | {r['train_examples']} | "
                     f"{r['n_steps']}{kept} | {_show(r.get('windows_per_test_text'))} | "
                     f"{_show(r.get('window_accuracy'))} | {_show(r.get('first_window_accuracy'))} | "
                     f"{_show(r.get('texts_with_a_right_window'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.long_text_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="authors-en,news-bbc,news-20ng")
    parser.add_argument("--max-length", default="authors-en=128,news-bbc=256,news-20ng=256",
                        help="max_length for every task (an int) or per task (task=N,...); others keep the default")
    parser.add_argument("--fits", default="truncate,windows", help="comma-separated, of: " + ", ".join(FIT_MODES))
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm-kwargs", default="{}", help="other LLMClassifier parameters, as JSON")
    parser.add_argument("--out", default="results/long-text")
    args = parser.parse_args(argv)
    tasks = expand_tasks(args.tasks)
    fits = [fit for fit in args.fits.split(",") if fit]
    unknown = sorted(set(fits) - set(FIT_MODES))
    if unknown:
        parser.error(f"--fits: unknown {unknown}; choose from {list(FIT_MODES)}")
    max_lengths = parse_max_length(args.max_length, tasks)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    saved = json.loads(path.read_text()) if path.exists() else {"commands": [], "rows": []}
    command = "python -m benchmarks.studies.long_text_study " + shlex.join(sys.argv[1:] if argv is None else argv)
    saved["commands"] = [c for c in saved["commands"] if c != command] + [command]
    for task in tasks:
        data = load_task(task, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
        llm_kwargs = json.loads(args.llm_kwargs)
        if max_lengths[task] is not None:
            llm_kwargs = {"max_length": max_lengths[task], **llm_kwargs}
        for fit in fits:
            rows = run_fit(task, fit, data, args.seed, llm_kwargs)
            saved["rows"] = [r for r in saved["rows"] if (r["task"], r["fit"]) != (task, fit)] + rows
            path.write_text(json.dumps(saved, indent=1))
            (out / "summary.md").write_text(summary(saved["rows"], saved["commands"]))
    print(summary(saved["rows"], saved["commands"]))


if __name__ == "__main__":
    main()
