"""Label scoring: ``log p(answer_k | prompt)`` for every class, under a causal LM.

Two implementations share one contract (``[n_prompts, n_classes]`` float64 log-probs):

* :func:`score_labels` - the fast path. The answers' token sequences form a trie
  (common prefixes shared). Each prompt is followed by the trie's nodes in a single
  sequence with a tree-shaped attention mask: a node sees the prompt and its own
  ancestors only, at the position it would have after the prompt. One forward pass
  per batch then serves every class, and the output layer is applied only where a
  label token is predicted (the last prompt token and the trie's inner nodes).
* :func:`score_labels_naive` - the plain way (one full sequence per prompt and class,
  full-vocabulary logits everywhere). It is the reference in tests and the baseline
  of the speed benchmark.

Every prompt of a classifier starts with the same tokens (the system line, the
instruction, the class list): :class:`SharedPrefix` runs them once per call and
every batch attends to their keys and values instead of recomputing them
(``shared_prefix=True``, the default of both scoring routes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..trie import LabelTrie


#: Most float32 logits held at once when scoring (about 1 GB).
LOGIT_ELEMENTS = 256 * 1024 * 1024


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens that every sequence starts with, leaving each sequence at least one token of its own."""
    if not sequences:
        return 0
    first = list(sequences[0])
    length = min(len(s) for s in sequences) - 1
    for sequence in sequences[1:]:
        if length <= 0:
            return 0
        head = list(sequence[:length])
        if head != first[:length]:
            length = next(i for i, (a, b) in enumerate(zip(head, first)) if a != b)
    return max(0, length)


#: On a CPU, forward passes whose attention has at most this many (query, key) pairs per head,
#: summed over the batch, run the "eager" attention kernel (``TransformersBackend(attn_implementation=
#: "auto")``): faster than PyTorch's fused one with a mask at classifier prompt lengths (16 prompts
#: of 256 tokens), as fast for a batch of 8 texts of 512 tokens but holding 2.9 GB more there.
EAGER_MAX_SCORES = 16 * 256 * 256


@contextlib.contextmanager
def attention_for(model: Any, batch: int, queries: int, keys: int) -> Iterator[None]:
    """Run the block with the model's short-sequence attention kernel when the attention is small enough.

    The kernel is the model's ``short_sequence_attention`` attribute (set by the engine at
    load; absent or ``None``: nothing changes), used up to :data:`EAGER_MAX_SCORES`
    ``batch * queries * keys``.
    """
    short = getattr(model, "short_sequence_attention", None)
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    if short is None or batch * queries * keys > EAGER_MAX_SCORES or previous == short:
        yield
        return
    config._attn_implementation = short
    try:
        yield
    finally:
        config._attn_implementation = previous


def additive_mask(model: Any, allowed: torch.Tensor) -> torch.Tensor:
    """``allowed`` (bool, query may attend to key) as the additive float mask the decoder takes, in its compute dtype."""
    device = allowed.device
    dtype = model.get_output_embeddings().weight.dtype
    if torch.is_autocast_enabled(device.type):
        dtype = torch.get_autocast_dtype(device.type)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def cache_keyword(decoder: Any) -> str:
    """``"cache"`` (transformers >= 5.2x) or ``"past_key_values"``: what ``decoder.forward`` calls its KV cache."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


class SharedPrefix:
    """The keys and values of the tokens every sequence of a call starts with, computed once.

    ``inputs(batch)`` gives a fresh :class:`transformers.DynamicCache` holding them for a
    batch of ``batch`` sequences (an expanded view: no copy per sequence), so each batch
    runs only what follows the prefix. Built under ``torch.no_grad`` at prediction and
    with gradients at training, where every example's gradient flows into the prefix's
    single computation.
    """

    def __init__(self, model: Any, prefix: Sequence[int] | torch.Tensor):
        device = next(model.parameters()).device
        ids = torch.as_tensor(prefix, dtype=torch.long, device=device).reshape(1, -1)
        self.length = int(ids.shape[1])
        decoder = model.get_decoder()
        with attention_for(model, 1, self.length, self.length):
            output = decoder(input_ids=ids, use_cache=True)
        cache = getattr(output, "cache", None)
        cache = output.past_key_values if cache is None else cache
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]
        self.keyword = cache_keyword(decoder)

    def inputs(self, batch: int) -> dict[str, Any]:
        """The decoder's keyword arguments that put the prefix before a batch of ``batch`` sequences."""
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=[(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
                                             for keys, values in self.layers])
        return {self.keyword: cache, "use_cache": True}

    def attention(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` (``[B, T]`` or ``[B, 1, T, T]``) with the prefix's keys, visible to every query, put in front."""
        if mask.ndim == 2:
            return torch.cat([mask.new_ones(mask.shape[0], self.length), mask], dim=1)
        front = mask.new_ones(*mask.shape[:-1], self.length)
        return torch.cat([front, mask], dim=-1)


def split_prefix(model: Any, sequences: Sequence[Sequence[int]], enabled: bool) -> tuple[SharedPrefix | None, int]:
    """The call's :class:`SharedPrefix` (``None`` when off or when the sequences share no token) and its length."""
    length = common_prefix_length(sequences) if enabled else 0
    if not length:
        return None, 0
    return SharedPrefix(model, sequences[0][:length]), length


def _logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden).float()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


@dataclass
class TrieTensors:
    """What a forward pass over a trie needs to turn hidden states into per-class scores.

    Only the trie's inner nodes go into the model: a leaf (an answer's last token, most
    often the end token) predicts nothing, so its score is read from its parent's output
    and it is never computed. ``inner``'s ancestors are inner nodes too.
    """

    trie: LabelTrie
    inner: list[int]  # nodes whose output predicts a child: the nodes fed to the model, in this order
    ancestry: torch.Tensor  # [inner, inner] bool: (i, j) true if inner node j is i or an ancestor of i
    fed_tokens: torch.Tensor  # token of each inner node
    fed_depths: torch.Tensor  # depth of each inner node (1 = an answer's first token)
    edge_rows: torch.Tensor  # for each node, the output row predicting it (0 = last prompt token)
    edge_tokens: torch.Tensor  # for each node, its token
    paths: torch.Tensor  # [nodes, classes] 0/1: node lies on the class's answer

    @classmethod
    def build(cls, answers: Sequence[Sequence[int]]) -> TrieTensors:
        trie = LabelTrie.build(answers)
        inner = trie.inner_nodes()
        row_of_node = {node: i + 1 for i, node in enumerate(inner)}
        edge_rows = torch.tensor([0 if p < 0 else row_of_node[p] for p in trie.parents], dtype=torch.long)
        paths = torch.zeros(trie.n_nodes, len(answers))
        for label, path in enumerate(trie.paths):
            paths[path, label] = 1.0
        tokens = torch.tensor(trie.tokens, dtype=torch.long)
        ancestry = torch.from_numpy(trie.ancestry()[np.ix_(inner, inner)])
        depths = torch.tensor(trie.depths, dtype=torch.long)[inner]
        return cls(trie, inner, ancestry, tokens[inner], depths, edge_rows, tokens, paths)

    @property
    def n_fed(self) -> int:
        """Trie positions that follow each prompt in the model's input."""
        return len(self.inner)


def tree_inputs(prompts: Sequence[Sequence[int]], tensors: TrieTensors, pad_id: int, offset: int = 0) -> dict[str, torch.Tensor]:
    """Left-padded prompts followed by the trie's inner nodes, with a tree-shaped attention pattern.

    Returns ``input_ids`` and ``position_ids`` ``[B, T]`` and ``allowed`` ``[B, 1, T, T]`` (bool:
    query may attend to key). A node sees the valid prompt tokens and its own ancestors, at
    the position it would have right after its prompt. With ``offset`` the prompts are what
    follows a shared prefix of that many tokens, and positions count from its end.
    """
    ancestry, depths = tensors.ancestry, tensors.fed_depths
    batch, width = len(prompts), max(len(p) for p in prompts)
    total = width + tensors.n_fed
    ids = torch.full((batch, total), pad_id, dtype=torch.long)
    positions = torch.zeros((batch, total), dtype=torch.long)
    allowed = torch.zeros((batch, total, total), dtype=torch.bool)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    for row, prompt in enumerate(prompts):
        length, start = len(prompt), width - len(prompt)
        ids[row, start:width] = torch.as_tensor(list(prompt), dtype=torch.long)
        ids[row, width:] = tensors.fed_tokens
        positions[row, start:width] = offset + torch.arange(length)
        positions[row, width:] = offset + length - 1 + depths
        valid = torch.zeros(width, dtype=torch.bool)
        valid[start:] = True
        allowed[row, :width, :width] = causal & valid[None, :] & valid[:, None]
        allowed[row, width:, :width] = valid[None, :]
        allowed[row, width:, width:] = ancestry
        pad_rows = torch.arange(start)
        allowed[row, pad_rows, pad_rows] = True  # padding attends to itself: no empty softmax rows
    return {"input_ids": ids, "position_ids": positions, "allowed": allowed[:, None], "width": torch.tensor(width)}


def tree_scores(model: Any, inputs: dict[str, torch.Tensor], tensors: TrieTensors,
                prefix: SharedPrefix | None = None) -> torch.Tensor:
    """``[B, n_classes]`` sequence log-probabilities of every answer (differentiable).

    With ``prefix`` the inputs (from ``tree_inputs(..., offset=prefix.length)``) follow it.
    """
    device = inputs["input_ids"].device
    allowed = inputs["allowed"] if prefix is None else prefix.attention(inputs["allowed"])
    mask = additive_mask(model, allowed)
    cache = {"use_cache": False} if prefix is None else prefix.inputs(len(inputs["input_ids"]))
    batch, _, queries, keys = allowed.shape
    with attention_for(model, batch, queries, keys):
        hidden = model.get_decoder()(
            input_ids=inputs["input_ids"], attention_mask=mask, position_ids=inputs["position_ids"], **cache
        ).last_hidden_state
    width = int(inputs["width"])
    keep = torch.arange(width - 1, width + tensors.n_fed, device=device)  # the last prompt token, the inner nodes
    edge_rows, edge_tokens = tensors.edge_rows.to(device), tensors.edge_tokens.to(device)
    # Full-vocabulary log-softmax only at the rows that predict a label token, a chunk of rows
    # at a time so that thousands of classes do not hold [B, rows, V] logits at once.
    chunk = max(1, LOGIT_ELEMENTS // (hidden.shape[0] * model.config.vocab_size))
    nodes, values = [], []
    for start in range(0, len(keep), chunk):
        log_probs = torch.log_softmax(_logits(model, hidden[:, keep[start : start + chunk]]), dim=-1)
        selected = torch.nonzero((edge_rows >= start) & (edge_rows < start + chunk))[:, 0]
        nodes.append(selected)
        values.append(log_probs[:, edge_rows[selected] - start, edge_tokens[selected]])
    order = torch.cat(nodes)
    edges = torch.cat(values, dim=1)[:, torch.argsort(order)]  # [B, nodes] in node order
    return edges @ tensors.paths.to(device=device, dtype=edges.dtype)


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first), to limit padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@torch.inference_mode()
def score_labels(
    model: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    progress: Any = None,
    shared_prefix: bool = True,
) -> np.ndarray:
    """Log-probability of every answer after every prompt, one forward pass per batch.

    Parameters
    ----------
    model : transformers causal LM
    prompts : sequence of token-id lists
    answers : sequence of token-id lists, one per class (end-of-answer token included)
    pad_id : int
        Id used for padding (always masked out).
    batch_size : int, default=8
    progress : tqdm-like or None
        Updated with the number of prompts scored.
    shared_prefix : bool, default=True
        Run the tokens that all prompts start with once (:class:`SharedPrefix`).

    Returns
    -------
    ndarray of shape (n_prompts, n_classes), float64
    """
    tensors = TrieTensors.build(answers)
    device = next(model.parameters()).device
    out = np.empty((len(prompts), len(answers)), dtype=np.float64)
    prefix, skip = split_prefix(model, prompts, shared_prefix)
    for batch in length_batches([len(p) for p in prompts], batch_size):
        rest = [prompts[i][skip:] for i in batch]
        inputs = {key: value.to(device) for key, value in tree_inputs(rest, tensors, pad_id, offset=skip).items()}
        out[batch] = tree_scores(model, inputs, tensors, prefix).double().cpu().numpy()
        if progress is not None:
            progress.update(len(batch))
    return out


@torch.inference_mode()
def score_labels_naive(
    model: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
) -> np.ndarray:
    """The plain way: one right-padded sequence per (prompt, class), full logits everywhere."""
    device = next(model.parameters()).device
    pairs = [(i, k) for i in range(len(prompts)) for k in range(len(answers))]
    out = np.empty((len(prompts), len(answers)), dtype=np.float64)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        sequences = [list(prompts[i]) + list(answers[k]) for i, k in chunk]
        width = max(len(s) for s in sequences)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            attention[row, : len(sequence)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=attention.to(device), use_cache=False).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for row, (i, k) in enumerate(chunk):
            first = len(prompts[i])
            targets = torch.tensor(answers[k])
            steps = torch.arange(first - 1, first - 1 + len(targets))
            out[i, k] = float(log_probs[row, steps, targets].double().sum())
    return out


def continuation_log_probs(model: Any, sequences: Sequence[Sequence[int]], starts: Sequence[int], *, pad_id: int,
                           prefix: SharedPrefix | None = None) -> torch.Tensor:
    """``[B]`` summed log-probability of each sequence's tokens from ``starts[b]`` on (differentiable).

    The sequences are right-padded into one batch; the output layer is applied only at
    the positions that predict a scored token, a chunk of rows at a time. With ``prefix``
    the sequences (and ``starts``) are what follows it.
    """
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
        attention[row, : len(sequence)] = 1
    ids, attention = ids.to(device), attention.to(device)
    with attention_for(model, len(sequences), width, width + (prefix.length if prefix is not None else 0)):
        if prefix is None:
            hidden = model.get_decoder()(input_ids=ids, attention_mask=attention, use_cache=False).last_hidden_state
        else:
            hidden = model.get_decoder()(input_ids=ids, attention_mask=prefix.attention(attention),
                                         **prefix.inputs(len(sequences))).last_hidden_state
    hidden = hidden[:, :-1]
    positions = torch.arange(width - 1, device=device)[None, :]  # position t predicts token t + 1
    first = torch.as_tensor(list(starts), device=device)[:, None] - 1
    last = attention.sum(dim=1, keepdim=True) - 1
    where = (positions >= first) & (positions < last)  # [B, T-1]
    rows, columns = where.nonzero(as_tuple=True)
    targets = ids[:, 1:][rows, columns]
    chunk = max(1, LOGIT_ELEMENTS // model.config.vocab_size)
    values = []
    for start in range(0, len(rows), chunk):
        logits = _logits(model, hidden[rows[start : start + chunk], columns[start : start + chunk]])
        values.append(-torch.nn.functional.cross_entropy(logits, targets[start : start + chunk], reduction="none"))
    token_log_probs = torch.cat(values) if values else torch.zeros(0, device=device)
    return torch.zeros(len(sequences), dtype=token_log_probs.dtype, device=device).index_add(0, rows, token_log_probs)


@torch.inference_mode()
def score_channel(
    model: Any,
    texts: Sequence[Sequence[int]],
    class_prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    progress: Any = None,
    shared_prefix: bool = True,
) -> np.ndarray:
    """The noisy-channel scores ``log p(text_i | class_prompt_k)`` for every text and class.

    Each text (its end token included) is scored after each class's prompt: one
    sequence per (text, class) pair, batched by length.

    Parameters
    ----------
    model : transformers causal LM
    texts : sequence of token-id lists
        The encoded texts, each ending with the end-of-text token.
    class_prompts : sequence of token-id lists
        The prompt that introduces a text of each class.
    pad_id : int
    batch_size : int, default=8
        Sequences per forward pass: ``batch_size // n_classes`` texts (at least one).
    progress : tqdm-like or None
        Updated with the number of texts scored.
    shared_prefix : bool, default=True
        Run the tokens that all class prompts start with once (:class:`SharedPrefix`).

    Returns
    -------
    ndarray of shape (n_texts, n_classes), float64
    """
    n_classes = len(class_prompts)
    out = np.empty((len(texts), n_classes), dtype=np.float64)
    prefix, skip = split_prefix(model, class_prompts, shared_prefix)
    for batch in length_batches([len(t) for t in texts], max(1, batch_size // n_classes)):
        sequences = [list(class_prompts[k][skip:]) + list(texts[i]) for i in batch for k in range(n_classes)]
        starts = [len(class_prompts[k]) - skip for _ in batch for k in range(n_classes)]
        scores = continuation_log_probs(model, sequences, starts, pad_id=pad_id, prefix=prefix)
        out[batch] = scores.double().cpu().numpy().reshape(len(batch), n_classes)
        if progress is not None:
            progress.update(len(batch))
    return out


#: :func:`score_pairs` scores the continuations as one label trie after each context up to
#: this many trie nodes (answers: a few per class), and one sequence per pair beyond it
#: (the channel direction's texts after a few class prompts).
TRIE_MAX_NODES = 4096


def score_pairs(model: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
                pad_id: int, batch_size: int = 8, progress: Any = None, shared_prefix: bool = True) -> np.ndarray:
    """``log p(continuation_k | context_i)`` for every pair, ``[n_contexts, n_continuations]`` float64.

    The engine's one scoring call (both directions). Short continuations (class answers)
    are scored as a label trie after each context (:func:`score_labels`); long ones (texts
    scored after class prompts) one sequence per pair (:func:`score_channel`). An empty
    continuation scores 0 (``log 1``). ``progress`` advances by the longer axis's count.
    ``shared_prefix`` runs the tokens that all contexts start with once per call.
    """
    kept = [k for k, continuation in enumerate(continuations) if len(continuation)]
    if len(kept) == len(continuations):
        return _score_nonempty(model, contexts, continuations, pad_id=pad_id, batch_size=batch_size, progress=progress,
                               shared_prefix=shared_prefix)
    scores = np.zeros((len(contexts), len(continuations)), dtype=np.float64)
    if kept and len(contexts):
        scores[:, kept] = _score_nonempty(model, contexts, [continuations[k] for k in kept], pad_id=pad_id,
                                          batch_size=batch_size, shared_prefix=shared_prefix)
    if progress is not None:
        progress.update(max(len(contexts), len(continuations)))
    return scores


def _score_nonempty(model: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
                    pad_id: int, batch_size: int, progress: Any = None, shared_prefix: bool = True) -> np.ndarray:
    """:func:`score_pairs` of continuations that all have at least one token."""
    by_context = len(contexts) >= len(continuations)
    inner = progress if by_context else None
    if LabelTrie.build(continuations).n_nodes <= TRIE_MAX_NODES:
        scores = score_labels(model, contexts, continuations, pad_id=pad_id, batch_size=batch_size, progress=inner,
                              shared_prefix=shared_prefix)
    else:
        inner = None if by_context else progress
        scores = score_channel(model, continuations, contexts, pad_id=pad_id, batch_size=batch_size, progress=inner,
                               shared_prefix=shared_prefix).T
    if progress is not None and inner is None:
        progress.update(max(len(contexts), len(continuations)))
    return scores
