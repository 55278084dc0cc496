"""Run tasks x methods, each unit in its own process, and collect result records."""

from __future__ import annotations

import datetime as _dt
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .methods import METHODS, plan_units
from .report import compute_metrics, probability_metrics, to_jsonable, write_json, write_report
from .tasks import MissingDataError, load_task

__all__ = ["run_benchmark", "run_unit"]


def _rss_mb() -> float | None:
    """Current resident set size of this process in MB."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except Exception:  # noqa: BLE001
            return None


def _peak_rss_mb() -> float:
    """High-water mark of this process's resident set size in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _history(est) -> dict | None:
    h = getattr(est, "history_", None)
    if h is None and hasattr(est, "clf"):
        h = getattr(est.clf, "history_", None)
    return to_jsonable(dict(h)) if h else None


def _extra(est, method: str) -> dict:
    out: dict = {}
    if hasattr(est, "report_extra"):
        out.update(est.report_extra())
    if METHODS[method].needs_llm:
        from .llm_methods import llm_extra

        out.update(llm_extra(getattr(est, "clf", est)))
    return to_jsonable(out)


def run_unit(task: str, methods: list[str], n_train: int | None, n_test: int | None, seed: int,
             options: dict, rss_mode: str = "subprocess") -> list[dict]:
    """Load ``task`` and run ``methods`` on it in this process; one record per method.

    A method listed after the method it reuses (``llm-generate`` after
    ``llm-qlora``) predicts with that fitted model instead of fitting again.

    Returns
    -------
    list of dict
        Records with status ``ok``, ``skipped`` or ``error``.
    """
    data = load_task(task, n_train=n_train, n_test=n_test, seed=seed)
    options = {**options, "seed": seed}  # seeds the LLM methods (random_state) like the split
    if data.metadata.get("multilabel"):
        from .multilabel import run_multilabel_unit

        return run_multilabel_unit(task, data, methods, options, rss_mode)
    labels = sorted(set(data.train_labels) | set(data.test_labels))
    fitted: dict[str, object] = {}
    records = []
    for method in methods:
        spec = METHODS[method]
        rec: dict = {"task": task, "method": method, "n_train": len(data.train_texts),
                     "n_test": len(data.test_texts), "rss_mode": rss_mode}
        if spec.needs_llm:
            from .llm_methods import llm_available

            ok, reason = llm_available()
            if not ok:
                records.append({**rec, "status": "skipped", "reason": reason})
                continue
        try:
            rec["rss_before_mb"] = _rss_mb()
            reused = fitted.get(spec.reuses) if spec.reuses else None
            if reused is not None:
                from .llm_methods import GenerateAndParse

                est = GenerateAndParse(reused)
                rec["fit_time_s"] = 0.0
                rec["fit_reused_from"] = spec.reuses
            else:
                est = spec.build(options)
                t0 = time.perf_counter()
                est.fit(data.train_texts, data.train_labels)
                rec["fit_time_s"] = time.perf_counter() - t0
                rec["fit_examples_per_s"] = len(data.train_texts) / rec["fit_time_s"] if rec["fit_time_s"] else None
            fitted[method] = est
            t0 = time.perf_counter()
            proba = None
            if hasattr(est, "predict_proba"):  # predictions are the argmax: one pass gives both
                proba = est.predict_proba(data.test_texts)
                pred = np.asarray(est.classes_)[np.argmax(proba, axis=1)]
            else:
                pred = est.predict(data.test_texts)
            rec["predict_time_s"] = time.perf_counter() - t0
            rec["predict_examples_per_s"] = (len(data.test_texts) / rec["predict_time_s"]
                                             if rec["predict_time_s"] else None)
            rec["peak_rss_mb"] = _peak_rss_mb()
            rec["metrics"] = compute_metrics(data.test_labels, [str(p) for p in pred], labels)
            if proba is not None:
                rec["metrics"].update(probability_metrics(data.test_labels, proba, [str(c) for c in est.classes_]))
            rec["history"] = _history(est) if reused is None else None
            rec["extra"] = _extra(est, method)
            rec["status"] = "ok"
        except MissingDataError as exc:
            rec.update(status="error", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failing method must not stop the run
            rec.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        records.append(to_jsonable(rec))
    return records


def _child(conn, *args) -> None:
    try:
        conn.send(("ok", run_unit(*args)))
    except BaseException as exc:  # noqa: BLE001
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _run_in_subprocess(task, methods, n_train, n_test, seed, options) -> list[dict]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, task, methods, n_train, n_test, seed, options))
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        status, payload = "error", None
    proc.join()
    if status == "ok":
        return payload
    msg = payload or f"worker process died (exit code {proc.exitcode}; killed for memory?)"
    return [{"task": task, "method": m, "status": "error", "error": msg.splitlines()[0], "traceback": msg}
            for m in methods]


def machine_info() -> dict:
    """CPU, core count, memory, OS and library versions of this machine."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return info


def versions() -> dict:
    """Versions of the libraries that affect results."""
    from importlib import metadata

    out = {}
    names = {dist: dist for dist in ("torch", "transformers", "scikit-learn", "numpy", "peft", "bitsandbytes")}
    names["llm_classifier"] = "llm-label-classifier"  # the library's distribution name
    for name, dist in names.items():
        try:  # read the installed metadata: importing llm_classifier here would load torch & co.
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001
        return None


def run_benchmark(tasks: list[str], methods: list[str], out_dir: str | Path, n_train: int | None = 500,
                  n_test: int | None = 200, seed: int = 0, options: dict | None = None,
                  isolate: bool = True, progress: bool = True, run_info: dict | None = None) -> dict:
    """Run every task x method, writing ``results.json`` after each unit and the report at the end.

    Parameters
    ----------
    tasks, methods : list of str
        Registered names (see :mod:`benchmarks.tasks`, :mod:`benchmarks.methods`).
    out_dir : str or Path
        Folder for ``results.json``, ``summary.md`` and ``plots/``.
    n_train, n_test : int or None
        Sample sizes (``None``: all available).
    seed : int
    options : dict, optional
        Method options: ``llm_kwargs``, ``tfidf``, ``bert``, ``bert_emb`` (keyword
        arguments), ``progress``.
    isolate : bool, default True
        Run each unit in a fresh process (clean per-method peak RSS; a crash
        or out-of-memory kill loses only that unit).
    progress : bool, default True
        Show a tqdm bar over the units.
    run_info : dict, optional
        Extra fields for the ``run`` section of the result file (command, preset).

    Returns
    -------
    dict
        The payload written to ``results.json``.
    """
    from tqdm.auto import tqdm

    options = {"progress": progress, **(options or {})}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict = {
        "run": {
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "tasks": tasks, "methods": methods, "n_train": n_train, "n_test": n_test, "seed": seed,
            "options": options, "isolated_processes": isolate, "machine": machine_info(),
            "versions": versions(), "git_commit": git_commit(), **(run_info or {}),
        },
        "tasks": {},
        "results": [],
    }
    units = plan_units(methods)
    bar = tqdm(total=len(tasks) * len(methods), desc="benchmark", unit="run", disable=not progress)
    for task in tasks:
        try:
            meta = load_task(task, n_train=n_train, n_test=n_test, seed=seed).metadata
            payload["tasks"][task] = meta
        except (MissingDataError, KeyError, ImportError, OSError) as exc:
            payload["tasks"][task] = {"error": str(exc)}
            for m in methods:
                payload["results"].append({"task": task, "method": m, "status": "missing-data", "error": str(exc)})
            bar.write(f"{task}: data missing: {exc}")
            bar.update(len(methods))
            write_json(payload, out)
            continue
        for unit in units:
            bar.set_description(f"{task} / {'+'.join(unit)}")
            if isolate:
                records = _run_in_subprocess(task, unit, n_train, n_test, seed, options)
            else:
                records = run_unit(task, unit, n_train, n_test, seed, options, rss_mode="in-process high-water mark")
            for rec in records:
                payload["results"].append(rec)
                if rec.get("status") == "ok":
                    m = rec["metrics"]
                    bar.write(f"{task:>12} {rec['method']:<14} acc {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}"
                              f"  fit {rec.get('fit_time_s', 0):.1f}s  predict {rec.get('predict_time_s', 0):.1f}s")
                else:
                    bar.write(f"{task:>12} {rec['method']:<14} {rec.get('status')}: "
                              f"{rec.get('reason') or rec.get('error')}")
            bar.update(len(unit))
            write_json(payload, out)
    bar.close()
    payload["run"]["finished"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    write_report(payload, out)
    return payload
