"""What checking the base model costs at ``LLMClassifier.load`` of a zero-shot artifact of the default model.

Run ``python -m benchmarks.load_cost [--code DIR] [--runs N]``: ``--code`` is the source tree to measure (the
package folder's parent, e.g. an export of an older commit); every measurement runs in a fresh process with
that tree first on ``sys.path``. The converted default checkpoint is copied into a private cache folder (with
the cache's key and the conversion's manifest, so nothing is converted again), which makes the first load
hash every file (an empty hash cache; the file pages are in memory after the copy). torch, transformers and
peft are imported before the clock starts. Printed: the first load, ``--runs`` later loads in fresh processes and
the second load in each of them (median, min, max), and the first prediction after a later load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from llm_classifier import LLMClassifier
mode, artifact = sys.argv[1], sys.argv[2]
texts = ["a wonderful film", "an awful film", "great fun", "boring"]
if mode == "make":
    LLMClassifier(max_steps=0, random_state=0).fit(texts, ["n", "p"] * 2).save(artifact)
    print(json.dumps({}))
else:
    import peft, torch, transformers  # imported first: the loads below time the library's own work
    from transformers import AutoModelForCausalLM, AutoTokenizer
    start = time.perf_counter()
    clf = LLMClassifier.load(artifact)
    loaded = time.perf_counter()
    again = LLMClassifier.load(artifact)
    loaded_again = time.perf_counter()
    clf.predict_proba(texts[:1])
    print(json.dumps({"load": loaded - start, "same_process": loaded_again - loaded,
                      "first_predict": time.perf_counter() - loaded_again}))
"""


def _run(code: Path, cache: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "LLM_CLASSIFIER_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, check=True, capture_output=True, text=True,
                         cwd=code)  # "-c" puts the working folder first on sys.path
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, args.code)
    from llm_classifier.engines.hf_checkpoints import resolve_model

    source = Path(resolve_model("smollm2-135m-instruct").path)
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        shutil.copytree(source, cache / source.name)
        for name in (".file_hashes.key",):
            if (source.parent / name).is_file():
                shutil.copy(source.parent / name, cache / name)
        code = Path(args.code)
        artifact = str(Path(scratch) / "clf")
        # the artifact is made with a cache of its own, so that the measured cache starts empty
        make_cache = Path(scratch) / "make-cache"
        shutil.copytree(cache, make_cache)
        _run(code, make_cache, "make", artifact)
        first = _run(code, cache, "load", artifact)
        later = [_run(code, cache, "load", artifact) for _ in range(args.runs)]
    def summary(values: list[float]) -> str:
        return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"

    print(f"code: {args.code}")
    print(f"first load (empty hash cache, fresh process): {first['load']:.3f} s; "
          f"first predict after it {first['first_predict']:.3f} s")
    print(f"later loads ({args.runs} fresh processes, warm hash cache): {summary([run['load'] for run in later])}")
    print(f"later loads in the same process: {summary([run['same_process'] for run in later])}")
    print(f"first predict after a later load: {summary([run['first_predict'] for run in later])}")

if __name__ == "__main__":
    main()
