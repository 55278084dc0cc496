"""LLM methods: ``llm_classifier.LLMClassifier`` zero-shot, fine-tuned (QLoRA), and generate-and-parse.

The library is imported lazily, so the rest of the suite works without it.
To change what a method does, edit :data:`LLM_PRESETS` (keyword arguments of
``LLMClassifier``) or pass ``--llm-kwargs '{"max_steps": 60}'`` on the
command line; the two are merged, the command line winning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LLM_PRESETS", "UNPARSEABLE", "GenerateAndParse", "llm_available", "make_llm"]

#: keyword arguments of ``LLMClassifier`` per method (merged with --llm-kwargs)
LLM_PRESETS: dict[str, dict] = {
    "llm-zero-shot": {"max_steps": 0},
    # one demonstration per class in the prompt; room for them beside a long text
    "llm-few-shot": {"max_steps": 0, "few_shot": 1, "max_length": 1024},
    "llm-qlora": {},  # the library's defaults
    # the noisy channel: log p(text | class), untrained and fine-tuned
    "llm-channel-zero-shot": {"direction": "channel", "max_steps": 0},
    "llm-channel": {"direction": "channel"},
    "llm-gemma-zero-shot": {"model": "gemma-3-270m", "max_steps": 0},
    "llm-gemma": {"model": "gemma-3-270m"},  # the library's defaults but the model
}
#: settings a method must keep whatever --llm-kwargs says
LLM_FORCED: dict[str, dict] = {m: LLM_PRESETS[m] for m in ("llm-zero-shot", "llm-gemma-zero-shot", "llm-gemma",
                                                            "llm-channel-zero-shot", "llm-channel")}
LLM_FORCED["llm-few-shot"] = {"max_steps": 0, "few_shot": 1}
#: label recorded for an answer the parser could not map to a class
UNPARSEABLE = "<unparseable>"


def llm_available() -> tuple[bool, str]:
    """Whether ``llm_classifier.LLMClassifier`` can be imported, and why not."""
    try:
        from llm_classifier import LLMClassifier  # noqa: F401
    except Exception as exc:  # ImportError, or a half-written package
        return False, f"llm_classifier is not importable ({type(exc).__name__}: {exc})"
    return True, ""


def make_llm(method: str, overrides: dict | None = None):
    """A fresh ``LLMClassifier`` for ``method`` (a key of :data:`LLM_PRESETS`).

    Parameters
    ----------
    method : str
        Key of :data:`LLM_PRESETS`.
    overrides : dict, optional
        Keyword arguments that replace the preset's (from ``--llm-kwargs``).
    """
    from llm_classifier import LLMClassifier

    kwargs = {**LLM_PRESETS.get(method, {}), **(overrides or {}), **LLM_FORCED.get(method, {})}
    return LLMClassifier(**kwargs)


class GenerateAndParse:
    """Predict with a fitted ``LLMClassifier`` by generating an answer and parsing it.

    Parameters
    ----------
    clf : LLMClassifier
        A fitted classifier (``classes_``, ``answers_``, ``generate``).
    parser : object, optional
        Has ``parse(text, answers) -> int | None``; default
        ``llm_classifier.DefaultParser()``.

    Attributes
    ----------
    raw_answers_ : list of str
        The generated answers of the last :meth:`predict` call.
    n_unparseable_ : int
        How many of them matched no class (predicted as :data:`UNPARSEABLE`).
    """

    def __init__(self, clf, parser=None) -> None:
        self.clf = clf
        self.parser = parser

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.clf.classes_)

    def fit(self, X: Sequence[str], y: Sequence[str]) -> GenerateAndParse:
        """Fit the wrapped classifier (only when it is not reused from llm-qlora)."""
        self.clf.fit(list(X), list(y))
        return self

    @property
    def history_(self) -> dict | None:
        return getattr(self.clf, "history_", None)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """Generate, parse, and map each answer to its class (or :data:`UNPARSEABLE`)."""
        parser = self.parser
        if parser is None:
            from llm_classifier import DefaultParser

            parser = DefaultParser()
        answers = list(self.clf.answers_)
        classes = list(self.clf.classes_)
        self.raw_answers_ = [str(a) for a in self.clf.generate(list(X))]
        preds = []
        for text in self.raw_answers_:
            idx = parser.parse(text, answers)
            preds.append(UNPARSEABLE if idx is None else classes[int(idx)])
        self.n_unparseable_ = sum(p == UNPARSEABLE for p in preds)
        return np.asarray(preds, dtype=object)

    def report_extra(self) -> dict:
        """Unparseable count and a few raw answers."""
        raw = getattr(self, "raw_answers_", [])
        return {"n_unparseable": int(getattr(self, "n_unparseable_", 0)),
                "unparseable_rate": (getattr(self, "n_unparseable_", 0) / len(raw)) if raw else None,
                "raw_answer_examples": raw[:10]}


def llm_extra(clf) -> dict:
    """Settings of a fitted ``LLMClassifier`` worth keeping in the result file."""
    out: dict = {}
    try:
        params = clf.get_params(deep=False)
    except Exception:  # noqa: BLE001 - any estimator-like object
        params = {}
    for k, v in params.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
    answers = getattr(clf, "answers_", None)
    if answers is not None:
        out["answers"] = [str(a) for a in answers]
    extra: dict = {"params": out}
    device = getattr(getattr(clf, "backend_", None), "device", None)
    if device is not None:
        extra["device"] = _describe_device(str(device))
    return extra


def _describe_device(device: str) -> str:
    """``"cpu"``, or ``"cuda (NVIDIA H200)"``: the device a fitted classifier ran on."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)})"
    return device
