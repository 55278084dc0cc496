"""Compare calibration maps offline on scores saved by ``benchmarks.studies.dump_scores``.

    python3 -m benchmarks.studies.calibration_study results/scores/*.npz

For each file the calibration set is the held-out validation slice when there is
one (early stopping), else every training text (zero-shot); the maps are fitted on
it and evaluated on the test scores: accuracy, macro-F1 and log-loss.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from sklearn.metrics import accuracy_score, f1_score

from benchmarks.studies.offline import Calibration, fit_affine, label_frequencies, prior_correction

METHODS = {
    "none": lambda s, c, freq: Calibration(bias=np.zeros(s.shape[1])),
    "prior": lambda s, c, freq: prior_correction(s, freq),
    "bias": lambda s, c, freq: fit_affine(s, c, temperature=False),
    "temperature+bias": lambda s, c, freq: fit_affine(s, c),
    "temperature": lambda s, c, freq: fit_affine(s, c, l2=1e6),
}


def evaluate(path: Path) -> list[dict[str, object]]:
    data = np.load(path)
    n_classes = len(data["classes"])
    frequencies = label_frequencies(data["train_codes"], n_classes)
    if "validation_scores" in data:
        scores, codes, fitted_on = data["validation_scores"], data["validation_codes"], "validation"
    else:
        scores, codes, fitted_on = data["train_scores"], data["train_codes"], "train"
    test_codes = data["test_codes"]
    rows = []
    for name, method in METHODS.items():
        calibration = method(scores, codes, frequencies)
        log_p = log_softmax(calibration.apply(data["test_scores"]), axis=1)
        predictions = log_p.argmax(axis=1)
        rows.append({
            "file": path.stem, "method": name, "fitted_on": f"{fitted_on} ({len(codes)})",
            "accuracy": accuracy_score(test_codes, predictions),
            "macro_f1": f1_score(test_codes, predictions, average="macro", labels=np.arange(n_classes)),
            "log_loss": float(-log_p[np.arange(len(test_codes)), test_codes].mean()),
            "temperature": calibration.temperature,
        })
    return rows


def score_files_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """``FILE [FILE ...]``: the arguments of the studies that read saved scores."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE", help=".npz scores saved by benchmarks.studies.dump_scores")
    return parser


def main(argv: list[str] | None = None) -> None:
    paths = score_files_parser("python -m benchmarks.studies.calibration_study", __doc__).parse_args(argv).paths
    print("| scores | method | fitted on | accuracy | macro-F1 | log-loss | T |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        for row in evaluate(path):
            print(f"| {row['file']} | {row['method']} | {row['fitted_on']} | {row['accuracy']:.3f} | "
                  f"{row['macro_f1']:.3f} | {row['log_loss']:.3f} | {row['temperature']:.2f} |")


if __name__ == "__main__":
    main()
