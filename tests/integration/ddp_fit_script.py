"""Fit one LLMClassifier in this process; run plainly or under ``accelerate launch`` / ``torchrun``.

Used by tests/integration/test_scaling.py and the measurement in docs/scaling.md:

    python tests/ddp_fit_script.py MODEL OUT BATCH_SIZE
    accelerate launch --cpu --num_processes 2 tests/ddp_fit_script.py MODEL OUT BATCH_SIZE

Every rank writes ``OUT/rank<r>.json`` with its adapter checksum, its predictions on the
test texts and the training history; rank 0 also saves the classifier to ``OUT/model``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

GOOD = ["good", "great", "fine", "lovely", "superb", "nice"]
BAD = ["bad", "awful", "poor", "dull", "terrible", "weak"]
FILLER = ["the", "film", "plot", "was", "really", "quite", "cast", "ending", "music", "overall"]


def make_data(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Short texts whose label is given by one sentiment word among filler words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = list(rng.choice(FILLER, size=5))
        words.insert(int(rng.integers(0, 6)), str(rng.choice(GOOD if label == "pos" else BAD)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def main() -> None:
    model, out, batch_size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    learning_rate = float(sys.argv[4]) if len(sys.argv) > 4 else 2e-2
    epochs = float(sys.argv[5]) if len(sys.argv) > 5 else 4
    from llm_classifier import LLMClassifier
    from llm_classifier.engines.hf.runtime import is_main_process, process_rank, world_size

    X_train, y_train = make_data(96, seed=0)
    X_test, y_test = make_data(64, seed=1)
    clf = LLMClassifier(
        model=model, quantization=None, dtype="float32", prompt="alpaca", learning_rate=learning_rate, warmup_steps=2,
        num_train_epochs=epochs, batch_size=batch_size, lora_r=8, random_state=0, verbose=is_main_process(),
    )
    clf.fit(X_train, y_train)
    adapter = clf.backend_.state().adapter
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(adapter[k]).tobytes() for k in sorted(adapter))).hexdigest()
    proba = clf.predict_proba(X_test)
    out.mkdir(parents=True, exist_ok=True)
    clf.save(out / "model")
    record = {
        "rank": process_rank(),
        "world_size": world_size(),
        "adapter_sha256": digest,
        "predictions": clf.classes_[proba.argmax(axis=1)].tolist(),
        "proba": proba.tolist(),
        "accuracy": float(np.mean(clf.classes_[proba.argmax(axis=1)] == np.asarray(y_test))),
        "train_loss": clf.history_.get("train_loss"),
        "n_steps": clf.history_.get("n_steps"),
        "losses": [step["loss"] for step in clf.history_.get("steps", [])],
        "train_runtime": clf.history_.get("train_runtime"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    (out / f"rank{process_rank()}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
