"""Command line: ``python -m benchmarks --tasks sentiment,news --methods tfidf,bert --out results/run1``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from .methods import DEFAULT_METHODS, METHOD_GROUPS, METHODS, expand_methods
from .tasks import DEFAULT_TASKS, GROUPS, TASKS, expand_tasks

#: ``--quick``: two short-text tasks, small samples, the cheap baselines and the default LLM with
#: few training steps; meant to finish in about 10 minutes on a 2-core CPU. Explicit flags win.
#: LLM prediction dominates (each LLM method predicts n_test examples per task): tune n_test and
#: max_steps here to the library's speed.
QUICK_PRESET: dict = {
    "tasks": "sentiment,languages",
    "methods": "tfidf,bert-emb,llm-zero-shot,llm-qlora",
    "n_train": 200,
    "n_test": 100,
    "llm_kwargs": {},  # the library's defaults (at 200 texts: early stopping within 4 epochs of 180)
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m benchmarks``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark llm_classifier against TF-IDF and MiniLM baselines on offline tasks.",
        epilog=f"tasks: {', '.join(TASKS)}; groups: "
               + ", ".join(f"{k}={'+'.join(v)}" for k, v in GROUPS.items())
               + f". methods: {', '.join(METHODS)}; groups: "
               + ", ".join(f"{k}={'+'.join(v)}" for k, v in METHOD_GROUPS.items()),
    )
    p.add_argument("--tasks", help=f"comma-separated tasks or groups (default: all = {','.join(DEFAULT_TASKS)})")
    p.add_argument("--methods", help=f"comma-separated methods or groups (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--out", help="output folder (default: results/run-<timestamp>)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="preset finishing in ~10 min on 2 CPU cores: "
                           + "; ".join(f"{k}={v}" for k, v in QUICK_PRESET.items()))
    size.add_argument("--full", action="store_true",
                      help="use every example of each task (official splits where they exist); slow")
    p.add_argument("--n-train", type=int, help="training examples per task (default 500)")
    p.add_argument("--n-test", type=int, help="test examples per task (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and sample (default 0)")
    p.add_argument("--llm-kwargs", type=json.loads, default=None,
                   help='JSON keyword arguments for LLMClassifier, e.g. \'{"max_steps": 60}\'')
    p.add_argument("--llm-max-steps", type=int, help="shortcut for --llm-kwargs '{\"max_steps\": N}'")
    p.add_argument("--bert-epochs", type=int, help="epochs of the bert fine-tune (default 4)")
    p.add_argument("--setfit-max-steps", type=int,
                   help="cap on SetFit's body training steps (default: none; for a machine where a fit would "
                        "exceed an hour)")
    p.add_argument("--in-process", action="store_true",
                   help="run methods in this process (faster start; peak RSS is then the process high-water mark)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--list", action="store_true", help="list tasks and methods, then exit")
    p.add_argument("--report-only", metavar="DIR", help="rewrite summary.md and plots from DIR/results.json")
    p.add_argument("--save-samples", metavar="FILE",
                   help="draw the train / test samples of --tasks, write them to FILE (.json.xz) and exit")
    p.add_argument("--samples", metavar="FILE",
                   help="read the samples from FILE (written by --save-samples) instead of the data packages")
    p.add_argument("--merge", metavar="DIR", nargs="+",
                   help="merge the results.json of several runs into --out (a later run wins per task x method)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.list:
        width = max(map(len, [*TASKS, *METHODS]))
        for name, spec in TASKS.items():
            print(f"task    {name:<{width}} {spec.description}")
        for name, spec in METHODS.items():
            print(f"method  {name:<{width}} {spec.description}")
        return 0
    if args.report_only:
        from .report import load_results, write_report

        written = write_report(load_results(args.report_only), args.report_only)
        print(f"wrote {written['markdown']}")
        return 0

    if args.merge:
        from .report import load_results, merge_results, write_report

        if not args.out:
            raise SystemExit("--merge needs --out")
        written = write_report(merge_results([load_results(d) for d in args.merge]), args.out)
        print(f"wrote {written['markdown']}")
        return 0

    if args.samples:
        from .samples import SAMPLES_ENV

        os.environ[SAMPLES_ENV] = str(Path(args.samples).resolve())  # subprocess units inherit it
    preset = QUICK_PRESET if args.quick else {}
    tasks = expand_tasks(args.tasks or preset.get("tasks") or ",".join(DEFAULT_TASKS))
    methods = expand_methods(args.methods or preset.get("methods") or ",".join(DEFAULT_METHODS))
    if args.full:
        n_train, n_test = args.n_train, args.n_test  # None = everything
    else:
        n_train = args.n_train or preset.get("n_train", 500)
        n_test = args.n_test or preset.get("n_test", 200)
    if args.save_samples:
        from .tasks import save_samples

        written = save_samples(tasks, args.save_samples, n_train=n_train, n_test=n_test, seed=args.seed)
        print(f"wrote the samples of {', '.join(tasks)} (n_train={n_train}, n_test={n_test}, seed={args.seed}) "
              f"to {written}")
        return 0
    llm_kwargs = dict(preset.get("llm_kwargs", {}))
    llm_kwargs.update(args.llm_kwargs or {})
    if args.llm_max_steps is not None:
        llm_kwargs["max_steps"] = args.llm_max_steps
    options: dict = {"llm_kwargs": llm_kwargs}
    if args.bert_epochs:
        options["bert"] = {"epochs": args.bert_epochs}
    if args.setfit_max_steps:
        options["setfit"] = {"max_steps": args.setfit_max_steps}
    if args.out:
        out = Path(args.out)
    else:
        import datetime as dt

        out = Path("results") / f"run-{dt.datetime.now():%Y%m%d-%H%M%S}"

    from .runner import run_benchmark

    payload = run_benchmark(
        tasks, methods, out, n_train=n_train, n_test=n_test, seed=args.seed, options=options,
        isolate=not args.in_process, progress=not args.no_progress,
        run_info={"command": "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
                  "preset": "quick" if args.quick else ("full" if args.full else "default"),
                  **({"samples": str(Path(args.samples).resolve())} if args.samples else {})},
    )
    statuses = [r.get("status") for r in payload["results"]]
    print(f"\n{statuses.count('ok')} ok, {statuses.count('skipped')} skipped, "
          f"{len(statuses) - statuses.count('ok') - statuses.count('skipped')} failed; "
          f"results in {out}/ (summary.md, results.json, plots/)")
    return 0 if all(s in ("ok", "skipped") for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
