"""Metrics and reports: the JSON result file, a Markdown summary and PNG plots."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

__all__ = [
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "compute_metrics",
    "load_results",
    "plot_confusion",
    "plot_macro_f1",
    "to_jsonable",
    "write_json",
    "write_markdown",
    "write_report",
]

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"
PLOTS_DIR = "plots"


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> dict:
    """Accuracy, macro- and weighted-F1, a per-class table and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : sequence of str
        True and predicted labels. Predictions outside ``labels`` (e.g. an
        unparseable generated answer) count as errors and get their own
        confusion-matrix column.
    labels : sequence of str, optional
        Class order (default: sorted union of the true labels).

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``weighted_f1``, ``per_class`` (label ->
        precision, recall, f1, support) and ``confusion`` (``labels``,
        ``matrix`` with rows = true, columns = predicted).
    """
    y_true = [str(v) for v in y_true]
    y_pred = [str(v) for v in y_pred]
    labels = [str(v) for v in labels] if labels is not None else sorted(set(y_true))
    extra = sorted(set(y_pred) - set(labels))
    cm_labels = list(labels) + extra
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": {
            "labels": cm_labels,
            "matrix": confusion_matrix(y_true, y_pred, labels=cm_labels).tolist(),
        },
    }


def probability_metrics(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str], n_bins: int = 10) -> dict:
    """Log-loss and expected calibration error (top label, equal-width bins) of predicted probabilities.

    Parameters
    ----------
    y_true : sequence of str
    proba : ndarray of shape (n_samples, n_classes)
        Rows follow ``classes``.
    classes : sequence of str
    n_bins : int, default 10

    Returns
    -------
    dict
        ``log_loss`` (natural log; a true label outside ``classes`` gets probability
        1e-15) and ``ece``.
    """
    index = {str(c): k for k, c in enumerate(classes)}
    proba = np.asarray(proba, dtype=np.float64)
    rows = np.arange(len(proba))
    cols = np.array([index.get(str(v), -1) for v in y_true])
    p_true = np.where(cols >= 0, proba[rows, np.maximum(cols, 0)], 0.0)
    log_loss = float(-np.mean(np.log(np.clip(p_true, 1e-15, 1.0))))
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == cols
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
              for b in range(n_bins) if (bins == b).any())
    return {"log_loss": log_loss, "ece": float(ece)}


def to_jsonable(obj):
    """Convert numpy scalars/arrays, paths, sets and tuples so ``json.dump`` accepts them."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def write_json(payload: dict, out_dir: str | Path) -> Path:
    """Write ``payload`` to ``<out_dir>/results.json`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def load_results(out_dir: str | Path) -> dict:
    """Read ``<out_dir>/results.json``."""
    return json.loads((Path(out_dir) / RESULTS_FILE).read_text(encoding="utf-8"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def plot_confusion(record: dict, path: str | Path) -> Path:
    """Save the confusion matrix of one task x method record as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = record["metrics"]["confusion"]["labels"]
    cm = np.asarray(record["metrics"]["confusion"]["matrix"], dtype=float)
    n = len(labels)
    size = min(18.0, max(4.0, 0.45 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    row = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, row, out=np.zeros_like(cm), where=row > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=labels, rotation=60 if n > 4 else 0, ha="right" if n > 4 else "center",
                  fontsize=8 if n > 12 else 9)
    ax.set_yticks(range(n), labels=labels, fontsize=8 if n > 12 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 25:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7 if n > 12 else 9,
                            color="white" if norm[i, j] > 0.5 else "black")
    m = record["metrics"]
    ax.set_title(f"{record['task']} / {record['method']}: acc {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}",
                 fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return _save_figure(fig, path)


def _save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_macro_f1(records: list[dict], path: str | Path) -> Path:
    """Grouped bar chart: macro-F1 per task (groups) and method (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("status") == "ok"]
    tasks = list(dict.fromkeys(r["task"] for r in ok))
    methods = list(dict.fromkeys(r["method"] for r in ok))
    value = {(r["task"], r["method"]): r["metrics"]["macro_f1"] for r in ok}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks) * max(1, len(methods)) / 3 + 3), 4.5))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(tasks))
    for j, method in enumerate(methods):
        ys = [value.get((t, method), np.nan) for t in tasks]
        bars = ax.bar(x + (j - (len(methods) - 1) / 2) * width, ys, width, label=method)
        for b, yv in zip(bars, ys):
            if not np.isnan(yv):
                ax.text(b.get_x() + b.get_width() / 2, yv + 0.01, f"{yv:.2f}", ha="center", va="bottom",
                        fontsize=7, rotation=90 if len(methods) > 3 else 0)
    ax.set_xticks(x, labels=tasks, rotation=20 if len(tasks) > 3 else 0)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("macro-F1")
    ax.set_title("macro-F1 per task and method")
    ax.legend(fontsize=8, ncol=min(len(methods), 4), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return _save_figure(fig, path)


def _fmt(v, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(v, spec)


def merge_results(payloads: Sequence[dict]) -> dict:
    """One payload from several runs: a later run's record replaces an earlier one's for the same task x method.

    The merged ``run`` section keeps every source run (``merged_from``: command, dates,
    git commit, machine, versions) so the report says where each figure came from.
    """
    records: dict[tuple[str, str], dict] = {}
    tasks: dict[str, dict] = {}
    for index, payload in enumerate(payloads):
        tasks.update(payload.get("tasks", {}))
        run_device = payload.get("run", {}).get("device")
        for record in payload.get("results", []):
            merged = {**record, "run_index": index}
            if run_device and not record_device(record):
                merged["device"] = run_device
            records[(record["task"], record["method"])] = merged
    runs = [payload.get("run", {}) for payload in payloads]
    first = runs[0] if runs else {}
    merged_run = {
        "command": " + ".join(r.get("command", "?") for r in runs),
        "started": min((r["started"] for r in runs if r.get("started")), default=None),
        "finished": max((r["finished"] for r in runs if r.get("finished")), default=None),
        **{key: first[key] for key in ("n_train", "n_test", "seed", "machine", "versions") if key in first},
        "merged_from": [{key: r.get(key) for key in ("command", "started", "finished", "git_commit", "n_train",
                                                   "n_test", "seed", "versions", "machine", "device")} for r in runs],
    }
    task_order = list(dict.fromkeys(task for task, _ in records))
    method_order = list(dict.fromkeys(method for _, method in records))
    ordered = sorted(records.values(), key=lambda r: (task_order.index(r["task"]), method_order.index(r["method"])))
    return {"run": merged_run, "tasks": tasks, "results": ordered}


def record_device(record: dict) -> str | None:
    """The device an LLM record ran on (``extra.device``, or the run's ``device`` after a merge)."""
    return (record.get("extra") or {}).get("device") or record.get("device")


def _machine(machine: dict | None) -> str:
    m = machine or {}
    return (f"{m.get('cpu', '?')}, {m.get('cpus', '?')} cores, {m.get('memory_gb', '?')} GB, "
            f"{m.get('platform', '')}, Python {m.get('python', '')}")


def _versions(versions: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def _overview(records: list[dict]) -> list[str]:
    """A task x method table of ``accuracy / macro-F1``."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("metrics")]
    tasks = list(dict.fromkeys(r["task"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    cell = {(r["task"], r["method"]): r["metrics"] for r in ok}
    lines = ["| task | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for task in tasks:
        values = [f"{cell[(task, m)]['accuracy']:.3f} / {cell[(task, m)]['macro_f1']:.3f}" if (task, m) in cell else "—"
                  for m in methods]
        lines.append(f"| {task} | " + " | ".join(values) + " |")
    return lines


#: compared with LLMClassifier as baselines: the usual alternatives to label scoring
NON_LLM_ALTERNATIVES = ["setfit", "llm-seqcls"]


def _versus_best_baseline(records: list[dict]) -> list[str]:
    """Per task: the best baseline's (or SetFit's, or the head's) macro-F1 and each LLM method's difference to it."""
    from .methods import METHOD_GROUPS

    ok = {(r["task"], r["method"]): r["metrics"]["macro_f1"] for r in records
          if r.get("status") == "ok" and r.get("metrics")}
    llm = [m for m in ("llm-qlora", "llm-generate", "llm-zero-shot", "llm-few-shot", "llm-channel", "llm-channel-zero-shot",
                       "llm-gemma", "llm-gemma-zero-shot")
           if any(k[1] == m for k in ok)]
    tasks = list(dict.fromkeys(r["task"] for r in records))
    rows = []
    for task in tasks:
        baselines = {m: ok[(task, m)] for m in METHOD_GROUPS["baselines"] + NON_LLM_ALTERNATIVES if (task, m) in ok}
        if not baselines or not any((task, m) in ok for m in llm):
            continue
        best = max(baselines, key=baselines.get)
        cells = [f"{ok[(task, m)]:.3f} ({ok[(task, m)] - baselines[best]:+.3f})" if (task, m) in ok else "—"
                 for m in llm]
        rows.append(f"| {task} | {baselines[best]:.3f} ({best}) | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return (["Macro-F1 against the best baseline (difference in brackets):", "",
             "| task | best baseline | " + " | ".join(llm) + " |", "|---" * (len(llm) + 2) + "|"] + rows + [""])


#: the method every other is compared with task by task: ``LLMClassifier()`` at its defaults
REFERENCE_METHOD = "llm-qlora"
#: a macro-F1 difference under this counts as a tie (200 test texts give about +-.05; the training seed .03-.04)
TIE_MARGIN = 0.02


def _ranking(records: list[dict]) -> list[str]:
    """Per task the best method by macro-F1; per method its mean rank over the tasks it was run on.

    Ranks are taken among the methods measured on each task (1 = best, ties share the mean
    rank); a method run on fewer tasks is ranked on those only, so the table says how many.
    Multi-label records (ranked by a different metric) are left out.
    """
    ok = {(r["task"], r["method"]): r["metrics"]["macro_f1"] for r in records
          if r.get("status") == "ok" and r.get("metrics") and "samples_f1" not in r["metrics"]}
    tasks = list(dict.fromkeys(task for task, _ in ok))
    methods = list(dict.fromkeys(method for _, method in ok))
    if len(methods) < 2:
        return []
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    best_lines = []
    for task in tasks:
        scores = {m: ok[(task, m)] for m in methods if (task, m) in ok}
        for method, score in scores.items():
            better = sum(other > score for other in scores.values())
            tied = sum(other == score for other in scores.values())
            ranks[method].append(better + (tied + 1) / 2)
        top = max(scores.values())
        winners = ", ".join(m for m, v in scores.items() if v == top)
        best_lines.append(f"| {task} | {winners} | {top:.3f} | {len(scores)} |")
    order = sorted(methods, key=lambda m: (sum(ranks[m]) / len(ranks[m]), -len(ranks[m])))
    lines = ["Best method per task (macro-F1) and each method's mean rank over the tasks it ran on:", "",
             "| task | best method | macro-F1 | methods run |", "|---|---|---|---|"] + best_lines
    reference = REFERENCE_METHOD if REFERENCE_METHOD in methods else None
    header = "| method | mean rank | tasks | best on |" + (f" against {reference} on the same tasks (wins / ties / "
                                                         "losses, mean macro-F1 difference) |" if reference else "")
    lines += ["", header, "|---|---|---|---|" + ("---|" if reference else "")]
    for method in order:
        wins = sum(rank <= 1.0 for rank in ranks[method])
        row = f"| {method} | {sum(ranks[method]) / len(ranks[method]):.2f} | {len(ranks[method])} | {wins} |"
        if reference:
            row += f" {_head_to_head(ok, tasks, method, reference)} |"
        lines.append(row)
    return lines + [""]


def _head_to_head(scores: dict[tuple[str, str], float], tasks: list[str], method: str, reference: str) -> str:
    """``method`` against ``reference`` on the tasks both ran: wins / ties / losses (ties within
    :data:`TIE_MARGIN`) and the mean macro-F1 difference; a mean rank alone compares methods run on
    different tasks."""
    if method == reference:
        return "—"
    shared = [t for t in tasks if (t, method) in scores and (t, reference) in scores]
    if not shared:
        return "no task in common"
    diffs = [scores[(t, method)] - scores[(t, reference)] for t in shared]
    won = sum(d > TIE_MARGIN for d in diffs)
    lost = sum(d < -TIE_MARGIN for d in diffs)
    return f"{won} / {len(diffs) - won - lost} / {lost}, {sum(diffs) / len(diffs):+.3f} over {len(shared)}"


def _against_chance(records: list[dict], tasks: dict) -> list[str]:
    """Zero-shot accuracy and macro-F1 next to the majority-class accuracy and 1 / classes."""
    rows = []
    for r in records:
        meta = tasks.get(r["task"], {})
        counts = meta.get("test_class_counts")
        if not r["method"].endswith(("zero-shot", "few-shot")) or r.get("status") != "ok" or not counts:
            continue
        m = r["metrics"]
        majority = max(counts.values()) / sum(counts.values())
        n_classes = meta.get("n_classes") or len(counts)  # classes of train and test, not only those tested
        rows.append(f"| {r['task']} ({n_classes}) | {r['method']} | {m['accuracy']:.3f} | {majority:.3f} | "
                    f"{m['macro_f1']:.3f} | {1 / n_classes:.3f} |")
    if not rows:
        return []
    return (["Untrained (zero- and few-shot) against chance:", "",
             "| task (classes) | method | accuracy | majority-class accuracy | macro-F1 | 1 / classes |",
             "|---|---|---|---|---|---|"] + rows + [""])


def _multilabel_table(records: list[dict]) -> list[str]:
    """Multi-label tasks: micro, macro and samples F1 (the main table's accuracy is subset accuracy)."""
    rows = [r for r in records if r.get("status") == "ok" and "samples_f1" in (r.get("metrics") or {})]
    if not rows:
        return []
    lines = ["", "Multi-label tasks (accuracy above is subset accuracy):", "",
             "| task | method | micro-F1 | macro-F1 | samples-F1 | subset accuracy | Hamming loss | labels/text "
             "(true / predicted) | fit s | predict s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['task']} | {r['method']} | {_fmt(m['micro_f1'])} | {_fmt(m['macro_f1'])} | "
                     f"{_fmt(m['samples_f1'])} | {_fmt(m['accuracy'])} | {_fmt(m['hamming_loss'])} | "
                     f"{_fmt(m['labels_per_text_true'], '.2f')} / {_fmt(m['labels_per_text_predicted'], '.2f')} | "
                     f"{_fmt(r.get('fit_time_s'), '.1f')} | {_fmt(r.get('predict_time_s'), '.1f')} |")
    return lines


def write_markdown(payload: dict, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/summary.md``: the main table, LLM training figures, per-class tables."""
    run = payload.get("run", {})
    records = payload.get("results", [])
    lines = ["# Benchmark results", ""]
    lines.append(f"- command: `{run.get('command', '')}`")
    for key in ("started", "finished", "n_train", "n_test", "seed", "preset"):
        if key in run:
            lines.append(f"- {key}: {run[key]}")
    if run.get("machine") and not run.get("merged_from"):
        lines.append(f"- machine: {_machine(run['machine'])}")
    if run.get("device"):
        lines.append(f"- device: {run['device']}")
    if run.get("versions") and not run.get("merged_from"):
        lines.append("- versions: " + _versions(run["versions"]))
    for source in run.get("merged_from", []):
        where = _machine(source.get("machine")) if source.get("machine") else "machine not recorded"
        if source.get("device"):
            where += f", device {source['device']}"
        if source.get("versions"):
            where += f"; {_versions(source['versions'])}"
        lines.append(f"- merged from: `{source.get('command')}` ({source.get('started')} to {source.get('finished')}, "
                     f"commit {source.get('git_commit')}; {where})")
    lines += ["", "## Summary", "", "Accuracy / macro-F1:", ""]
    lines += _overview(records)
    lines.append("")
    if run.get("macro_f1_png"):
        lines += [f"![macro-F1 per task and method]({run['macro_f1_png']})", ""]
    lines += _versus_best_baseline(records)
    lines += _ranking(records)
    lines += _against_chance(records, payload.get("tasks", {}))
    lines.append("| task | method | accuracy | macro-F1 | weighted-F1 | log-loss | ECE | fit s | predict s | predict ex/s "
                 "| peak RSS MB | note |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        m = r.get("metrics") or {}
        extra = r.get("extra") or {}
        device = record_device(r)
        parts = [f"on {device}" if device and not device.startswith("cpu") else "",
                 f"model reused from {r['fit_reused_from']}" if r.get("fit_reused_from") else "",
                 f"{extra['n_unparseable']} unparseable" if "n_unparseable" in extra else "",
                 f"capped at {extra['max_steps']} steps" if (extra.get("max_steps") or -1) > 0 else "",
                 (r.get("error") or r.get("reason") or "").strip()]
        note = "; ".join(part for part in parts if part)
        note = note.splitlines()[0][:120] if note else ""
        if r.get("status") != "ok":
            note = f"**{r.get('status')}**: {note}"
        lines.append(
            f"| {r['task']} | {r['method']} | {_fmt(m.get('accuracy'))} | {_fmt(m.get('macro_f1'))} | "
            f"{_fmt(m.get('weighted_f1'))} | {_fmt(m.get('log_loss'))} | {_fmt(m.get('ece'))} | "
            f"{_fmt(r.get('fit_time_s'), '.1f')} | "
            f"{_fmt(r.get('predict_time_s'), '.1f')} | {_fmt(r.get('predict_examples_per_s'), '.1f')} | "
            f"{_fmt(r.get('peak_rss_mb'), '.0f')} | {note.replace('|', '/')} |"
        )
    lines += _multilabel_table(records)
    trained = [r for r in records if r.get("status") == "ok" and r.get("history")]
    if trained:
        lines += ["", "## Training figures", "",
                  "| task | method | train runtime s | train loss | samples/s | steps | total FLOs |",
                  "|---|---|---|---|---|---|---|"]
        for r in trained:
            h = r["history"]
            steps = h.get("steps")
            n_steps = len(steps) if isinstance(steps, list) else steps
            lines.append(
                f"| {r['task']} | {r['method']} | {_fmt(h.get('train_runtime'), '.1f')} | "
                f"{_fmt(h.get('train_loss'), '.4f')} | {_fmt(h.get('train_samples_per_second'), '.2f')} | "
                f"{n_steps if n_steps is not None else '—'} | {_fmt(h.get('total_flos'), '.3g')} |"
            )
    tasks = payload.get("tasks", {})
    if tasks:
        lines += ["", "## Tasks", "", "| task | classes | train | test | words/text | description |",
                  "|---|---|---|---|---|---|"]
        for name, meta in tasks.items():
            if "error" in meta:
                lines.append(f"| {name} | — | — | — | — | **missing**: {meta['error']} |")
                continue
            lines.append(f"| {name} | {meta.get('n_classes')} | {meta.get('n_train')} | {meta.get('n_test')} | "
                         f"{_fmt(meta.get('words_per_text_mean'), '.0f')} | {meta.get('description', '')} |")
    lines += ["", "## Per-class results", ""]
    for r in records:
        if r.get("status") != "ok":
            continue
        lines += [f"### {r['task']} / {r['method']}", ""]
        png = r.get("confusion_png")
        if png:
            lines += [f"![confusion matrix]({png})", ""]
        lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for lab, v in r["metrics"]["per_class"].items():
            lines.append(f"| {lab} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
        lines.append("")
    path = Path(out_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_report(payload: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write the JSON file, a confusion-matrix PNG per task x method, the macro-F1 chart and the summary.

    Returns
    -------
    dict
        Paths written: ``json``, ``markdown``, ``macro_f1`` and one
        ``confusion:<task>/<method>`` per successful record.
    """
    out = Path(out_dir)
    written: dict[str, Path] = {}
    records = payload.get("results", [])
    for r in records:
        if r.get("status") == "ok" and r.get("metrics") and "confusion" in r["metrics"]:  # not multi-label
            rel = f"{PLOTS_DIR}/confusion_{_slug(r['task'])}__{_slug(r['method'])}.png"
            written[f"confusion:{r['task']}/{r['method']}"] = plot_confusion(r, out / rel)
            r["confusion_png"] = rel
    if any(r.get("status") == "ok" for r in records):
        written["macro_f1"] = plot_macro_f1(records, out / PLOTS_DIR / "macro_f1.png")
        payload.setdefault("run", {})["macro_f1_png"] = f"{PLOTS_DIR}/macro_f1.png"
    written["json"] = write_json(payload, out)
    written["markdown"] = write_markdown(payload, out)
    return written
