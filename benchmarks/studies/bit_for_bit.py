"""Fit the default model on two benchmark tasks and print a digest of the fitted probabilities.

Run it on two checkouts (e.g. before and after a refactor) and compare the digests: equal
digests mean the same fits and the same probabilities, bit for bit. Uses the public API only,
so it runs on any version of the library::

    OMP_NUM_THREADS=1 python -m benchmarks.studies.bit_for_bit --out before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import numpy as np

from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.bit_for_bit", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sentiment,languages")
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    results = {}
    for name in args.tasks.split(","):
        data = load_task(name, n_train=args.n_train, n_test=args.n_test, seed=0)
        start = time.perf_counter()
        clf = LLMClassifier(max_steps=args.max_steps, random_state=0).fit(data.train_texts, data.train_labels)
        proba = clf.predict_proba(data.test_texts)
        losses = [step["loss"] for step in clf.history_["steps"]]
        results[name] = {
            "proba_sha256": hashlib.sha256(np.ascontiguousarray(proba, dtype=np.float64).tobytes()).hexdigest(),
            "losses": losses, "proba_head": proba[:2].tolist(), "seconds": round(time.perf_counter() - start, 1),
        }
        print(name, results[name]["proba_sha256"][:16], results[name]["seconds"], "s", flush=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
