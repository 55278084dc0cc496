"""The training cost of a multi-label text against a single-label one, on the same texts, side by side.

    OMP_NUM_THREADS=1 python -m benchmarks.studies.multilabel_cost --n-texts 64 --epochs 1 --repeats 2

Takes ``debtags``' first ``--n-texts`` training texts (12 labels) and fits ``LLMClassifier``
(default model) twice on them with the same schedule (``num_train_epochs``, ``batch_size``,
no early stopping, no calibration): once on the multi-label indicator matrix (one example
per text: its prompt, then a yes/no decision per label), once single-label on the same texts
(target: each text's first label, or "none"). The fits alternate ``--repeats`` times so both
see the same machine load. Prints (and writes with ``--out``) per text the training time (the
Trainer's ``train_runtime``, model loading excluded), the fit's wall time and its CPU time
(the process's, which other processes on a shared machine do not inflate; one thread), each
the lowest over the repeats, and the ratios multi-label / single-label.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.multilabel import indicator
from benchmarks.studies import write_result
from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.multilabel_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llm-kwargs", type=json.loads, default={})
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    data = load_task("debtags", n_train=500, n_test=200, seed=0)
    labels = list(data.metadata["labels"])
    texts = list(data.train_texts[: args.n_texts])
    Y = indicator(data.train_labels[: args.n_texts], labels, data.metadata["label_separator"])
    single = [labels[int(np.argmax(row))] if row.any() else "none" for row in Y]
    import pandas as pd

    targets = {"multi-label": pd.DataFrame(Y, columns=labels), "single-label": single}
    params = dict(num_train_epochs=args.epochs, batch_size=args.batch_size, early_stopping=False, calibration=None,
                  random_state=0, **args.llm_kwargs)
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for repeat in range(args.repeats):
        for name, y in targets.items():
            start, cpu = time.perf_counter(), time.process_time()
            clf = LLMClassifier(**params).fit(texts, y)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            history = clf.history_
            run = {"repeat": repeat, "wall_s": wall, "cpu_s": cpu, "train_runtime_s": history.get("train_runtime"),
                   "n_steps": history["n_steps"], "n_examples": history["n_examples"], "n_tokens": history.get("n_tokens")}
            runs[name].append(run)
            print(f"{name:>12} repeat {repeat}: train {run['train_runtime_s']:.1f} s, wall {wall:.1f} s, cpu {cpu:.1f} s, "
                  f"{run['n_steps']} steps, {run['n_tokens']} tree tokens", flush=True)
    summary = {name: {f"{key}_per_text": min(r[f"{key}"] for r in rs) / (args.n_texts * args.epochs)
                      for key in ("train_runtime_s", "wall_s", "cpu_s")}
               for name, rs in runs.items()}
    for key in ("train_runtime_s", "wall_s", "cpu_s"):
        summary[f"ratio_{key}"] = summary["multi-label"][f"{key}_per_text"] / summary["single-label"][f"{key}_per_text"]
    result = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "n_labels": len(labels),
              "runs": runs, "summary": summary}
    print(json.dumps(summary, indent=2))
    write_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
