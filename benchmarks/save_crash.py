"""Kill a process mid-save and check what is left: the old artifact, the new one, a mix, or garbage.

``python -m benchmarks.save_crash --runs 25`` builds the tiny random Llama the tests use
(2 layers, 64 wide, SmolLM2's tokenizer), fits two different classifiers ("old" and "new"),
and then, per run: copies the old artifact to a target directory, starts a subprocess that
loads the new classifier and saves it over the target, sends SIGKILL at a random moment
within the save (uniform over 0 to 2x the measured save time), and classifies the target by
loading it and comparing ``predict_proba`` with both references (within 1e-6): ``old``,
``new``, ``mixed`` (loads, but predicts like neither) or ``corrupt`` (does not load).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

TEXTS = ["a wonderful, moving film", "dull, long and badly acted", "great fun from start to finish",
         "an awful waste of time", "I loved every minute", "boring and predictable",
         "brilliant performances all round", "the worst film this year"]
LABELS = ["positive", "negative"] * 4

CHILD = textwrap.dedent(
    """
    import sys
    import safetensors.numpy  # imported before the save starts, so the kill window covers the save itself
    from llm_classifier import LLMClassifier
    from llm_classifier.io import artifact as persistence
    clf = LLMClassifier.load(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    clf.save(sys.argv[2])
    print("done", flush=True)
    """
)


def build_tiny_model(path: Path) -> str:
    """The tests' tiny model (tests/conftest.py::tiny_model) at ``path``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llm_classifier.engines.hf_checkpoints import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _references(model: str, workdir: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Save an "old" and a "new" classifier; their probabilities and the new one's save time."""
    from llm_classifier import LLMClassifier

    params = dict(model=model, quantization=None, dtype="float32", batch_size=4)
    old = LLMClassifier(**params, max_steps=3, random_state=0).fit(TEXTS, LABELS)
    new = LLMClassifier(**params, max_steps=6, random_state=1, learning_rate=1e-3).fit(TEXTS, LABELS)
    old.save(workdir / "old")
    new.save(workdir / "new")
    durations = []
    for _ in range(5):
        shutil.copytree(workdir / "old", workdir / "timing")
        start = time.perf_counter()
        new.save(workdir / "timing")
        durations.append(time.perf_counter() - start)
        shutil.rmtree(workdir / "timing")
    p_old, p_new = old.predict_proba(TEXTS), new.predict_proba(TEXTS)
    if np.allclose(p_old, p_new, atol=1e-6):
        raise RuntimeError("The old and new classifiers predict alike; the benchmark could not tell them apart.")
    return p_old, p_new, float(np.median(durations))


def classify(target: Path, p_old: np.ndarray, p_new: np.ndarray) -> str:
    """``old``, ``new``, ``mixed`` or ``corrupt``: what a load of ``target`` gives."""
    from llm_classifier import LLMClassifier

    try:
        probabilities = LLMClassifier.load(target).predict_proba(TEXTS)
    except Exception:  # noqa: BLE001 - anything that does not load is a corrupt artifact
        return "corrupt"
    if np.allclose(probabilities, p_old, atol=1e-6):
        return "old"
    if np.allclose(probabilities, p_new, atol=1e-6):
        return "new"
    return "mixed"


def run(model: str, workdir: Path, runs: int, seed: int = 0) -> tuple[Counter, int, float]:
    """Outcome counts over ``runs`` kills, how many saves finished before the kill, and the save time."""
    import llm_classifier

    p_old, p_new, save_seconds = _references(model, workdir)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(llm_classifier.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    finished = 0
    for _ in range(runs):
        target = workdir / "target"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(workdir / "old", target)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(workdir / "new"), str(target)], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout is not None and child.stdin is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("The saving subprocess failed to start.")
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(rng.uniform(0, 2 * save_seconds))
        child.send_signal(signal.SIGKILL)
        child.wait()
        finished += child.stdout.read().strip() == "done"
        outcomes[classify(target, p_old, p_new)] += 1
    return outcomes, finished, save_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="save_crash.") as scratch:
        workdir = Path(scratch)
        model = build_tiny_model(workdir / "tiny")
        outcomes, finished, save_seconds = run(model, workdir, args.runs, args.seed)
    print(f"save takes {save_seconds * 1000:.1f} ms (median of 5); {args.runs} runs killed at uniform(0, 2x) of it; "
          f"{finished} saves finished before the kill")
    for outcome in ("old", "new", "mixed", "corrupt"):
        print(f"{outcome:8s} {outcomes.get(outcome, 0)}")


if __name__ == "__main__":
    main()
