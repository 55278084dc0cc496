"""The vLLM engine (inference only): label scoring and generation on vLLM's continuous batching.

It computes what the transformers engine computes: the same tokenizer (:class:`HFTokenizer` on
the base's own files), the same base weights (a quantised base is quantised and dequantised as
the transformers engine does it) and the fitted adapter merged into them (see
:mod:`.checkpoint`). Fit with ``backend="transformers"``, then predict or serve with vLLM:
``LLMClassifier.load(path, backend="vllm")`` or ``clf.with_backend("vllm")``.

Scoring routes (both exact; :func:`choose_route` takes the one that computes fewer tokens):

* ``"trie"`` - one request per (context, inner node of the continuations' trie) asking for the
  log-probabilities of that node's children only (``logprob_token_ids``), with prefix caching,
  so a context is computed once and each node costs its last partial block and its path;
* ``"pairs"`` - one request per (context, continuation) with ``prompt_logprobs``, for long
  continuations (the channel direction's texts). vLLM never reads the prefix cache for
  these requests (reading it with prompt log-probabilities was measured to return wrong
  values), so each pair is computed in full.
"""

from __future__ import annotations

import importlib.util
import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base import Capabilities, EngineState
from ..trie import LabelTrie

__all__ = ["INSTALL", "VLLMEngine", "choose_route"]

INSTALL = 'pip install "llm-label-classifier[vllm]"'
#: Prefix-cache block size: prompts share every full block of this many tokens.
BLOCK_SIZE = 32
#: Requests handed to vLLM at a time (progress advances after each group).
REQUESTS_PER_CALL = 512
#: The KV cache on CPU unless ``engine_args`` or ``VLLM_CPU_KVCACHE_SPACE`` size it.
CPU_KV_CACHE_BYTES = 1 << 30
#: Tokens one request costs besides those it computes (scheduling, sampling), in the route's cost model.
REQUEST_OVERHEAD = 16
ROUTES = ("auto", "trie", "pairs")

#: Most token ids whose log-probabilities one request may ask for (vllm.sampling_params.MAX_LOGPROB_TOKEN_IDS).
MAX_LOGPROB_TOKEN_IDS = 128
#: Running vLLM models by (checkpoint, dtype, engine arguments): engines that load the same one share it.
_RUNNING: weakref.WeakValueDictionary[tuple, Any] = weakref.WeakValueDictionary()


def vllm_installed() -> bool:
    """Whether the vllm package is importable (a folder named ``vllm`` on the path, a namespace package, is not it)."""
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


def _require_vllm() -> None:
    if not vllm_installed():
        raise ImportError(f"The 'vllm' engine needs vLLM, which is not installed. Install it with:\n    {INSTALL}")


def resolve_vllm_dtype(dtype: str) -> str:
    """``"auto"`` -> what the transformers engine would compute in on this machine (see its ``resolve_dtype``)."""
    if dtype != "auto":
        return dtype
    from ..hf_models import cpu_supports_bf16

    try:
        import torch

        if torch.cuda.is_available():
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    except ImportError:  # pragma: no cover - vLLM depends on torch
        pass
    return "bfloat16" if cpu_supports_bf16() else "float32"


def _trie_cost(contexts: Sequence[Sequence[int]], trie: Any) -> int:
    inner = trie.inner_nodes()
    per_context = sum(trie.depths[node] for node in inner) + len(inner) * (BLOCK_SIZE // 2 + REQUEST_OVERHEAD)
    return sum(len(c) + REQUEST_OVERHEAD + per_context for c in contexts)


def _pairs_cost(contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> int:
    return sum(len(c) + REQUEST_OVERHEAD for c in contexts) * len(continuations) + len(contexts) * sum(map(len, continuations))


def choose_route(contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> str:
    """``"trie"`` or ``"pairs"``: the route that computes fewer tokens (continuations non-empty)."""
    trie = LabelTrie.build(continuations)
    return "trie" if _trie_cost(contexts, trie) <= _pairs_cost(contexts, continuations) else "pairs"


class VLLMEngine:
    """Predict with vLLM: score labels and generate, with a fitted adapter merged into the base.

    An inference engine: it cannot fine-tune (``capabilities.fit`` is false), so it predicts
    zero-shot, few-shot, or with an adapter fitted by the transformers engine and handed over
    as an :class:`~llm_classifier.engines.base.EngineState` (``LLMClassifier.load(path,
    backend="vllm")``, ``clf.with_backend("vllm")``).

    Parameters
    ----------
    route : {"auto", "trie", "pairs"}, default="auto"
        How :meth:`score` asks vLLM for log-probabilities (see the module docstring); "auto"
        takes the one that computes fewer tokens.
    engine_args : dict or None, default=None
        Extra keyword arguments for ``vllm.LLM`` (``tensor_parallel_size``,
        ``gpu_memory_utilization``, ``kv_cache_memory_bytes``, ``max_num_seqs``, ...); plain JSON values.
    """

    name = "vllm"
    capabilities = Capabilities(fit=False, sample_weight=False, generate=True, state=True,
                                options=("quantization", "dtype"))
    #: read by the artifact loader: the constructor options a file may set. ``engine_args`` go to ``vllm.LLM``
    #: (``trust_remote_code``, ``worker_extension_cls``, ``hf_overrides``, ...): only the caller passes them.
    file_params = ("route",)

    def __init__(self, route: str = "auto", engine_args: dict[str, Any] | None = None) -> None:
        _require_vllm()
        self.route = route
        self.engine_args = engine_args

    # -- loading -------------------------------------------------------------------------
    def load(self, model: str, *, quantization: str | None = "4bit", dtype: str = "auto") -> None:
        """Name the base model ``model`` and load its tokenizer; vLLM starts on first use."""
        from transformers import AutoTokenizer

        from ..hf_checkpoints import resolve_model
        from ..hf_models import quiet_transformers
        from ..hf_tokenizer import HFTokenizer

        if self.route not in ROUTES:
            raise ValueError(f"The 'route' parameter of VLLMEngine must be one of {list(ROUTES)}. Got {self.route!r} instead.")
        if quantization not in (None, "4bit", "8bit"):
            raise ValueError(f"The 'quantization' parameter of LLMClassifier must be None, '4bit' or '8bit'. "
                             f"Got {quantization!r} instead.")
        self.resolved = resolve_model(model)
        self.quantization = quantization
        self.dtype = resolve_vllm_dtype(dtype)
        with quiet_transformers():
            self.tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(self.resolved.path))
        self._adapter: dict[str, np.ndarray] | None = None
        self._adapter_config: dict[str, Any] | None = None
        self._llm: Any = None

    def fit(self, request: Any) -> dict[str, Any]:
        """Not available: fit with ``backend="transformers"`` and hand the state over (see the class docstring)."""
        raise TypeError("The 'vllm' engine cannot fine-tune (capabilities.fit=False): fit with backend='transformers', "
                        "then predict with LLMClassifier.load(path, backend='vllm') or clf.with_backend('vllm').")

    def state(self) -> EngineState:
        """The base model's identity and the adapter, as the transformers engine records them."""
        from ..hf_checkpoints import absolute_model_name

        return EngineState(engine=self.name, model=absolute_model_name(self.resolved.name),
                           fingerprint=self.resolved.fingerprint, adapter=self._adapter,
                           adapter_config=self._adapter_config,
                           files=[list(pair) for pair in self.resolved.files])

    def load_state(self, state: EngineState, *, model: str | None = None, **options: Any) -> None:
        """Load the base named by ``state`` (or the moved copy ``model``) after checking its content; keep the adapter."""
        from ..hf_checkpoints import check_same_model, resolve_model
        from ..hf_models import check_lora_adapter

        name = model if model is not None else state.model
        check_same_model({"fingerprint": state.fingerprint, "files": state.files}, resolve_model(name),
                         legacy=state.legacy_fingerprint)
        check_lora_adapter(state.adapter, state.adapter_config)
        self.load(name, **options)
        self._adapter, self._adapter_config = state.adapter, state.adapter_config

    @property
    def checkpoint(self) -> str:
        """The dense checkpoint directory vLLM serves (the base, or the cached merge with the adapter)."""
        from .checkpoint import serving_checkpoint

        return serving_checkpoint(self.resolved, self.quantization, self._adapter, self._adapter_config)

    @property
    def llm(self) -> Any:
        """The running ``vllm.LLM``, started on first use (shared with engines that serve the same checkpoint)."""
        if self._llm is None:
            self._llm = start_llm(self.checkpoint, self.dtype, self.engine_args or {})
        return self._llm

    # -- inference -----------------------------------------------------------------------
    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *, batch_size: int,
              progress: Any = None) -> np.ndarray:
        """``log p(continuation | context)`` for every pair, float64 (see the module docstring for the routes)."""
        out = np.zeros((len(contexts), len(continuations)))
        scored = [k for k, continuation in enumerate(continuations) if len(continuation)]
        if not len(contexts) or not scored:
            if progress is not None:
                progress.update(max(len(contexts), len(continuations)))
            return out
        kept = [list(continuations[k]) for k in scored]
        contexts = [list(c) for c in contexts]
        along_contexts = len(contexts) >= len(continuations)
        items = len(contexts) if along_contexts else len(continuations)
        other = len(kept) if along_contexts else len(contexts)
        step = max(1, REQUESTS_PER_CALL // max(1, other))
        for start in range(0, items, step):
            stop = min(items, start + step)
            if along_contexts:
                out[start:stop, scored] = self._score_block(contexts[start:stop], kept)
            else:
                block = [k for k in scored if start <= k < stop]
                if block:
                    out[:, block] = self._score_block(contexts, [list(continuations[k]) for k in block])
            if progress is not None:
                progress.update(stop - start)
        return out

    def _score_block(self, contexts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
        route = self.route if self.route != "auto" else choose_route(contexts, continuations)
        if route == "trie":
            return score_trie(self.llm, contexts, continuations)
        return score_pairs(self.llm, contexts, continuations)

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int,
                 progress: Any = None) -> list[str]:
        """Greedy continuation of each prompt, stopping at the tokenizer's end id."""
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=[self.tokenizer.end_id],
                                detokenize=False)
        texts: list[str] = []
        for start in range(0, len(prompts), REQUESTS_PER_CALL):
            chunk = [list(p) for p in prompts[start:start + REQUESTS_PER_CALL]]
            outputs = self.llm.generate([_prompt(p) for p in chunk], params, use_tqdm=False)
            texts += [self.tokenizer.decode(list(o.outputs[0].token_ids)) for o in outputs]
            if progress is not None:
                progress.update(len(chunk))
        return texts

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_llm"] = None  # restarted on first use
        return state


def _prompt(ids: list[int]) -> dict[str, Any]:
    return {"prompt_token_ids": ids}


def _cpu_memory(engine_args: dict[str, Any]) -> dict[str, Any]:
    """On CPU, a fixed KV cache (:data:`CPU_KV_CACHE_BYTES`) unless the caller sized it.

    vLLM's CPU backend otherwise reserves ``gpu_memory_utilization`` (0.92) of the machine's
    memory and refuses to start when less is free.
    """
    import torch

    sized = {"kv_cache_memory_bytes", "gpu_memory_utilization"} & set(engine_args)
    if sized or torch.cuda.is_available() or os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        return {}
    return {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES}


def start_llm(checkpoint: str, dtype: str, engine_args: dict[str, Any]) -> Any:
    """A ``vllm.LLM`` on ``checkpoint`` with prefix caching, run in this process; reused while one is alive."""
    key = (checkpoint, dtype, tuple(sorted((k, repr(v)) for k, v in engine_args.items())))
    running = _RUNNING.get(key)
    if running is not None:
        return running
    _require_vllm()
    # In-process engine core: no worker process to spawn (which would re-import the caller's __main__).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from vllm import LLM

    args = {"dtype": dtype, "enable_prefix_caching": True, "block_size": BLOCK_SIZE, "skip_tokenizer_init": True,
            "seed": 0, **_cpu_memory(engine_args), **engine_args}
    llm = LLM(model=checkpoint, **args)
    _RUNNING[key] = llm
    return llm


def score_trie(llm: Any, contexts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
    """Every pair's log-probability from one request per (context, inner trie node); exact, prefix-cached.

    Each context's request at the trie's root runs first, so the requests for deeper nodes find the
    context's blocks in the prefix cache.
    """
    from vllm import SamplingParams

    trie = LabelTrie.build(continuations)
    children: dict[int, list[int]] = {}
    for node, parent in enumerate(trie.parents):
        children.setdefault(parent, []).append(node)
    paths = {-1: []}
    for node, parent in enumerate(trie.parents):  # parents come before children
        paths[node] = paths[parent] + [trie.tokens[node]]
    # vLLM returns the log-probabilities of at most MAX_LOGPROB_TOKEN_IDS given ids per request:
    # a node with more children asks in several requests (the same prompt, so prefix-cached).
    asks = [(node, group) for node in [-1] + trie.inner_nodes()
            for group in _groups(children[node], MAX_LOGPROB_TOKEN_IDS)]
    params = [SamplingParams(max_tokens=1, temperature=0.0, detokenize=False,
                             logprob_token_ids=[trie.tokens[c] for c in group]) for _, group in asks]
    node_logprob = np.zeros((len(contexts), trie.n_nodes))
    roots = [a for a, (node, _) in enumerate(asks) if node == -1]
    for phase in (roots, [a for a in range(len(asks)) if asks[a][0] != -1]):
        if not phase:
            continue
        requests = [(i, a) for i in range(len(contexts)) for a in phase]
        outputs = llm.generate([_prompt(contexts[i] + paths[asks[a][0]]) for i, a in requests],
                               [params[a] for _, a in requests], use_tqdm=False)
        for (i, a), output in zip(requests, outputs):
            logprobs = output.outputs[0].logprobs[0]
            for child in asks[a][1]:
                node_logprob[i, child] = logprobs[trie.tokens[child]].logprob
    return np.stack([node_logprob[:, path].sum(axis=1) for path in trie.paths], axis=1)


def _groups(items: list[int], size: int) -> list[list[int]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def score_pairs(llm: Any, contexts: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
    """Every pair's log-probability from its own request with ``prompt_logprobs`` (never prefix-cached)."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, temperature=0.0, detokenize=False, prompt_logprobs=0)
    pairs = [(i, k) for i in range(len(contexts)) for k in range(len(continuations))]
    outputs = llm.generate([_prompt(contexts[i] + continuations[k]) for i, k in pairs], params, use_tqdm=False)
    out = np.zeros((len(contexts), len(continuations)))
    for (i, k), output in zip(pairs, outputs):
        ids, logprobs = output.prompt_token_ids, output.prompt_logprobs
        start = len(contexts[i])
        if start == 0:
            raise ValueError("The 'vllm' engine cannot score a continuation after an empty context.")
        out[i, k] = sum(logprobs[position][ids[position]].logprob for position in range(start, len(ids)))
    return out
