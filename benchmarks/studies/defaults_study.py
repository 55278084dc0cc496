"""Previous vs current defaults (and calibrations), from scores saved by ``benchmarks.studies.dump_scores``.

    python3 -m benchmarks.studies.defaults_study results/full/results.json results/scores/*-es4.npz

For each ``<task>-es4.npz`` (early stopping, 4-epoch cap, no calibration) prints the
previous default's record from a suite ``results.json`` (2 epochs on every text), the
best baseline there, and the saved scores with no calibration, the prior correction
and the affine map fitted on the held-out slice (the current default applies none).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import accuracy_score, f1_score

from benchmarks.methods import METHOD_GROUPS
from benchmarks.report import probability_metrics
from benchmarks.studies.offline import fit_affine, label_frequencies, prior_correction

BASELINES = METHOD_GROUPS["baselines"]


def _record(results: dict, task: str, method: str) -> dict | None:
    for record in results["results"]:
        if record.get("task") == task and record.get("method") == method:
            return record
    return None


def _pair(record: dict) -> str:
    return f"{record['metrics']['accuracy']:.3f} / {record['metrics']['macro_f1']:.3f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.defaults_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a suite run's results.json (the previous default's records)")
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE", help="<task>-es4.npz scores saved by benchmarks.studies.dump_scores")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = json.loads(args.results.read_text())
    print("| task | best baseline | previous default (2 epochs) | current default (early stopping) | + prior | + affine | log-loss / ECE (current) | steps (best) | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.paths:
        task = path.stem.rsplit("-", 1)[0]
        data = np.load(path)
        classes = [str(c) for c in data["classes"]]
        history = json.loads(str(data["history"]))
        baseline = max((r for m in BASELINES if (r := _record(results, task, m))), key=lambda r: r["metrics"]["macro_f1"])
        previous = _record(results, task, "llm-qlora")
        cells, metrics = [], {}
        y_test = [classes[c] for c in data["test_codes"]]
        for method in (None, "prior", "affine"):
            scores = data["test_scores"]
            if method == "prior":
                frequencies = label_frequencies(data["train_codes"], len(classes))
                scores = prior_correction(data["validation_scores"], frequencies).apply(scores)
            elif method == "affine":
                scores = fit_affine(data["validation_scores"], data["validation_codes"]).apply(scores)
            proba = softmax(scores, axis=1)
            predicted = [classes[k] for k in proba.argmax(axis=1)]
            cells.append(f"{accuracy_score(y_test, predicted):.3f} / {f1_score(y_test, predicted, average='macro'):.3f}")
            if method is None:
                metrics = probability_metrics(y_test, proba, classes)
        print(f"| {task} | {_pair(baseline)} ({baseline['method']}) | {_pair(previous)} | {' | '.join(cells)} | "
              f"{metrics['log_loss']:.3f} / {metrics['ece']:.3f} | {history['n_steps']} ({history['best_step']}) | {float(data['fit_s']):.0f} |")


if __name__ == "__main__":
    main()
