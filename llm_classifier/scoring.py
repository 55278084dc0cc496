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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class LabelTrie:
    """The answers' token sequences as a prefix tree, flattened for one forward pass.

    Attributes
    ----------
    tokens : list of int
        Token id of each node (nodes are ordered parents before children).
    parents : list of int
        Parent node of each node, ``-1`` for children of the root (the prompt's end).
    depths : list of int
        1 for the first answer token, 2 for the second, ...
    paths : list of list of int
        For each class, the nodes of its answer from first token to last.
    """

    tokens: list[int]
    parents: list[int]
    depths: list[int]
    paths: list[list[int]]

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> LabelTrie:
        tokens: list[int] = []
        parents: list[int] = []
        depths: list[int] = []
        index: dict[tuple[int, int], int] = {}
        paths = []
        for sequence in sequences:
            if not sequence:
                raise ValueError("Every answer needs at least one token.")
            parent, path = -1, []
            for depth, token in enumerate(sequence, start=1):
                key = (parent, int(token))
                if key not in index:
                    index[key] = len(tokens)
                    tokens.append(int(token))
                    parents.append(parent)
                    depths.append(depth)
                parent = index[key]
                path.append(parent)
            paths.append(path)
        return cls(tokens, parents, depths, paths)

    @property
    def n_nodes(self) -> int:
        return len(self.tokens)

    def inner_nodes(self) -> list[int]:
        """Nodes that have children (their output predicts the next answer token)."""
        return sorted({p for p in self.parents if p >= 0})

    def ancestry(self) -> torch.Tensor:
        """``[n_nodes, n_nodes]`` bool: entry (i, j) is true if node j is i or an ancestor of i."""
        n = self.n_nodes
        matrix = torch.zeros(n, n, dtype=torch.bool)
        for node in range(n):
            current = node
            while current >= 0:
                matrix[node, current] = True
                current = self.parents[current]
        return matrix


def _decoder_and_head(model: Any) -> tuple[Any, Any]:
    return model.get_decoder(), model.get_output_embeddings()


def _logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden).float()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first), to limit padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _tree_batch(
    prompts: Sequence[Sequence[int]], trie: LabelTrie, ancestry: torch.Tensor, pad_id: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Input ids, 4-D additive mask and position ids for prompts followed by the trie."""
    batch, width = len(prompts), max(len(p) for p in prompts)
    n_nodes = trie.n_nodes
    total = width + n_nodes
    ids = torch.full((batch, total), pad_id, dtype=torch.long)
    positions = torch.zeros((batch, total), dtype=torch.long)
    allowed = torch.zeros((batch, total, total), dtype=torch.bool)
    causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
    node_tokens = torch.tensor(trie.tokens, dtype=torch.long)
    depths = torch.tensor(trie.depths, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        length, start = len(prompt), width - len(prompt)
        ids[row, start:width] = torch.tensor(prompt, dtype=torch.long)
        ids[row, width:] = node_tokens
        positions[row, start:width] = torch.arange(length)
        positions[row, width:] = length - 1 + depths
        valid = torch.zeros(width, dtype=torch.bool)
        valid[start:] = True
        allowed[row, :width, :width] = causal & valid[None, :] & valid[:, None]
        allowed[row, width:, :width] = valid[None, :]
        allowed[row, width:, width:] = ancestry
        pad_rows = torch.arange(start)
        allowed[row, pad_rows, pad_rows] = True  # padding attends to itself: no empty softmax rows
    mask = torch.zeros((batch, 1, total, total), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return ids, mask, positions, width


@torch.inference_mode()
def score_labels(
    model: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    progress: Any = None,
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

    Returns
    -------
    ndarray of shape (n_prompts, n_classes), float64
    """
    trie = LabelTrie.build(answers)
    ancestry = trie.ancestry()
    inner = trie.inner_nodes()
    # Output rows: 0 is the last prompt token (predicts depth-1 tokens); 1.. the inner nodes.
    row_of_node = {node: i + 1 for i, node in enumerate(inner)}
    edge_rows = torch.tensor([0 if p < 0 else row_of_node[p] for p in trie.parents], dtype=torch.long)
    edge_tokens = torch.tensor(trie.tokens, dtype=torch.long)
    paths = torch.zeros(trie.n_nodes, len(answers), dtype=torch.float64)
    for label, path in enumerate(trie.paths):
        paths[path, label] = 1.0
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    decoder = model.get_decoder()
    out = np.empty((len(prompts), len(answers)), dtype=np.float64)
    for batch in length_batches([len(p) for p in prompts], batch_size):
        ids, mask, positions, width = _tree_batch([prompts[i] for i in batch], trie, ancestry, pad_id, dtype)
        hidden = decoder(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        ).last_hidden_state
        keep = torch.tensor([width - 1] + [width + node for node in inner], device=device)
        log_probs = torch.log_softmax(_logits(model, hidden[:, keep]), dim=-1)  # [B, rows, V]
        edges = log_probs[:, edge_rows.to(device), edge_tokens.to(device)].double().cpu()  # [B, nodes]
        out[batch] = (edges @ paths).numpy()
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
