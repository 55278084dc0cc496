"""The continuations' token sequences as a prefix tree: one trie, for every engine (numpy only).

An engine that scores several continuations after one context can compute each shared
prefix once: the transformers engine feeds the trie's nodes after the prompt in one forward
pass (:mod:`llm_classifier.engines.hf.scoring`), the vLLM engine asks for the children of
each inner node (:mod:`llm_classifier.engines.vllm.engine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LabelTrie"]


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

    Examples
    --------
    >>> trie = LabelTrie.build([[5, 6], [5, 7], [9]])
    >>> trie.tokens, trie.parents, trie.paths
    ([5, 6, 7, 9], [-1, 0, 0, -1], [[0, 1], [0, 2], [3]])
    >>> trie.inner_nodes()
    [0]
    """

    tokens: list[int]
    parents: list[int]
    depths: list[int]
    paths: list[list[int]]

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> LabelTrie:
        """The trie of ``sequences`` (each at least one token), nodes in order of first appearance."""
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

    def ancestry(self) -> np.ndarray:
        """``[n_nodes, n_nodes]`` bool: entry (i, j) is true if node j is i or an ancestor of i."""
        n = self.n_nodes
        matrix = np.zeros((n, n), dtype=bool)
        for node in range(n):
            current = node
            while current >= 0:
                matrix[node, current] = True
                current = self.parents[current]
        return matrix
