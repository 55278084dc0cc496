"""vLLM against transformers: prediction throughput and agreement of a fitted classifier, side by side.

    python3 -m benchmarks.vllm_speed --out results/vllm_speed              # default model, 2 and 52 classes
    python3 -m benchmarks.vllm_speed --tasks sentiment --n-test 50 --quick  # a smoke run

Each classifier is fitted with the transformers engine (zero-shot, and a small adapter:
``max_steps=10``), saved, and predicts the same test texts twice: with transformers in this
process, and loaded with ``LLMClassifier.load(path, backend="vllm")`` in the vLLM environment
(``.venv-vllm``, see .ci/setup: vLLM pins an older transformers) - the way a classifier fitted
in one place is served in another. Both compute in float32 on the library's default 4-bit
base. Reported: texts per second (engine start and merge excluded, timed apart), the largest
probability difference and the argmax agreement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


def serve(artifact: str, texts_file: str, out: str) -> None:
    """In the vLLM environment: load the artifact on vLLM, time predict_proba, write the result."""
    from llm_classifier import LLMClassifier

    texts = json.loads(Path(texts_file).read_text())
    start = time.perf_counter()
    clf = LLMClassifier.load(artifact, backend="vllm")
    clf.backend_.llm  # merge the adapter (cached) and start the engine
    started = time.perf_counter() - start
    clf.predict_proba(texts[:4])  # warm-up
    start = time.perf_counter()
    proba = clf.predict_proba(texts)
    seconds = time.perf_counter() - start
    np.save(out + ".npy", proba)
    import torch

    Path(out + ".json").write_text(json.dumps({"start_s": started, "predict_s": seconds, "threads": torch.get_num_threads()}))


def compare(task: str, n_train: int, n_test: int, max_steps: int, work: Path, direction: str = "direct") -> dict:
    from benchmarks.tasks import load_task
    from llm_classifier import LLMClassifier

    train_x, train_y, test_x, _, _ = load_task(task, n_train=n_train, n_test=n_test)
    clf = LLMClassifier(max_steps=max_steps, dtype="float32", random_state=0, direction=direction)
    start = time.perf_counter()
    clf.fit(train_x, train_y)
    fit_s = time.perf_counter() - start
    artifact = work / f"{task}-{direction}-{max_steps}"
    clf.save(artifact)
    texts_file = work / f"{task}-texts.json"
    texts_file.write_text(json.dumps(list(test_x)))
    clf.predict_proba(test_x[:4])  # warm-up
    start = time.perf_counter()
    expected = clf.predict_proba(test_x)
    hf_s = time.perf_counter() - start
    out = str(work / f"{task}-{direction}-{max_steps}-vllm")
    subprocess.run([str(VENV_PYTHON), "-m", "benchmarks.vllm_speed", "--serve", str(artifact), str(texts_file), out],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                              # vLLM's own thread binding would take every core; follow OMP_NUM_THREADS
                                              "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind")})
    served = np.load(out + ".npy")
    timing = json.loads(Path(out + ".json").read_text())
    return {"task": task, "direction": direction, "classes": len(clf.classes_), "max_steps": max_steps, "n_test": len(test_x),
            "fit_s": round(fit_s, 1), "transformers_texts_per_s": round(len(test_x) / hf_s, 2),
            "vllm_texts_per_s": round(len(test_x) / timing["predict_s"], 2), "vllm_start_s": round(timing["start_s"], 1), "vllm_threads": timing["threads"],
            "max_abs_dp": float(np.abs(served - expected).max()),
            "argmax_agreement": float((served.argmax(1) == expected.argmax(1)).mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["sentiment", "news-r52"])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 10], help="max_steps of the fits (0 = zero-shot)")
    parser.add_argument("--directions", nargs="+", default=["direct"], choices=["direct", "channel"])
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json")
    parser.add_argument("--serve", nargs=3, metavar=("ARTIFACT", "TEXTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return
    if not VENV_PYTHON.exists():
        sys.exit(f"{VENV_PYTHON} is missing: run bash .ci/setup (it creates the vLLM environment).")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for task in args.tasks:
            for direction in args.directions:
                for steps in args.steps:
                    row = compare(task, args.n_train, args.n_test, steps, Path(work), direction)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(
            {"threads": os.environ.get("OMP_NUM_THREADS"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
