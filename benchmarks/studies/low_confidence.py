"""Coverage against accuracy of the low-confidence policy (``confidence_threshold``) on one task.

    python -m benchmarks.studies.low_confidence sentiment --out results/low-confidence

Fits ``LLMClassifier()`` (every default, or ``--llm-kwargs``) on the task's 500 / 200 split
(seed 0), predicts the test texts once, and for each threshold t reports the share of texts
answered (top probability >= t: what ``predict`` keeps with ``confidence_threshold=t``) and
the accuracy on them; writes ``coverage.csv``, ``coverage.png`` and prints the table. The
rows are exactly what ``predict`` would do: it is checked against ``predict`` itself at one
threshold.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)


def coverage_table(proba: np.ndarray, predicted: np.ndarray, truth: np.ndarray, thresholds=THRESHOLDS) -> list[dict]:
    """For each threshold: the share of texts kept (top probability >= t) and the accuracy on them."""
    top, right = proba.max(axis=1), predicted == truth
    rows = []
    for t in thresholds:
        kept = top >= t
        rows.append({"threshold": t, "coverage": float(kept.mean()),
                     "accuracy": float(right[kept].mean()) if kept.any() else float("nan"), "n_kept": int(kept.sum())})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--out", type=Path, default=Path("results/low-confidence"))
    parser.add_argument("--llm-kwargs", type=json.loads, default={}, help="LLMClassifier parameters as JSON")
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=200)
    args = parser.parse_args(argv)
    X, y, Xt, yt, _ = load_task(args.task, n_train=args.n_train, n_test=args.n_test, seed=0)
    start = time.time()
    clf = LLMClassifier(random_state=0, **args.llm_kwargs).fit(X, y)
    fit_s = time.time() - start
    proba = clf.predict_proba(Xt)
    predicted, truth = clf.classes_[proba.argmax(axis=1)], np.asarray(yt)
    rows = coverage_table(proba, predicted, truth)
    check = clf.set_params(confidence_threshold=0.9, on_low_confidence="(rejected)").predict(Xt)
    assert int((check != "(rejected)").sum()) == next(r["n_kept"] for r in rows if r["threshold"] == 0.9)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["threshold,coverage,accuracy,n_kept"] + [f"{r['threshold']},{r['coverage']:.4f},{r['accuracy']:.4f},{r['n_kept']}"
                                                      for r in rows]
    (args.out / "coverage.csv").write_text("\n".join(lines) + "\n")
    print(f"{args.task}: fit {fit_s:.0f} s, {len(yt)} test texts")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot([r["coverage"] for r in rows], [r["accuracy"] for r in rows], marker="o")
    for r in rows:
        ax.annotate(f"{r['threshold']:g}", (r["coverage"], r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("coverage (share of texts answered)")
    ax.set_ylabel("accuracy on the answered texts")
    ax.set_title(f"{args.task}: LLMClassifier(confidence_threshold=t)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / "coverage.png", dpi=120)


if __name__ == "__main__":
    main()
