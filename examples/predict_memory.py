"""Peak memory of predict_proba on N short texts (docs/scaling.md).

    python examples/predict_memory.py MODEL N [generator]

Prints the growth of the process's peak RSS (ru_maxrss) during predict_proba and the peak
of Python allocations (tracemalloc) in it. MODEL is a checkpoint directory, e.g. the tiny
test model; the classifier is zero-shot (fit only learns the classes).
"""

import resource
import sys
import time
import tracemalloc

import numpy as np

from llm_classifier import LLMClassifier


def texts(n: int):
    words = ["good", "bad", "film", "plot", "cast", "fine", "dull", "music"]
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield " ".join(rng.choice(words, size=8))


def main() -> None:
    model, n = sys.argv[1], int(sys.argv[2])
    as_generator = len(sys.argv) > 3 and sys.argv[3] == "generator"
    clf = LLMClassifier(model=model, quantization=None, dtype="float32", max_steps=0, eval_batch_size=64, random_state=0)
    clf.fit(["good film", "bad film"], ["pos", "neg"])
    clf.predict_proba(["warm-up"])  # builds the inference model before measuring
    X = texts(n) if as_generator else list(texts(n))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    proba = clf.predict_proba(X)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"n={n} input={'generator' if as_generator else 'list'} shape={proba.shape} seconds={seconds:.1f} "
          f"rss_peak_before_MiB={before / 1024:.0f} rss_peak_growth_MiB={(after - before) / 1024:.1f} "
          f"tracemalloc_peak_MiB={traced_peak / 2**20:.1f}")


if __name__ == "__main__":
    main()
