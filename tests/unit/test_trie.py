"""The engine-neutral label trie (llm_classifier/engines/trie.py): prefixes shared, paths and ancestry exact."""

import numpy as np
import pytest

from llm_classifier.engines.trie import LabelTrie


def test_trie_shares_prefixes():
    trie = LabelTrie.build([[5, 6, 2], [5, 7, 2], [9, 2]])
    assert trie.n_nodes == 7  # 5 6 2 | (5) 7 2 | 9 2: the first token 5 is shared
    assert trie.tokens == [5, 6, 2, 7, 2, 9, 2]
    assert trie.parents == [-1, 0, 1, 0, 3, -1, 5]
    assert trie.depths == [1, 2, 3, 2, 3, 1, 2]
    assert trie.paths == [[0, 1, 2], [0, 3, 4], [5, 6]]
    assert trie.inner_nodes() == [0, 1, 3, 5]


def test_trie_ancestry_is_each_node_and_its_ancestors():
    trie = LabelTrie.build([[5, 6, 2], [5, 7, 2], [9, 2]])
    ancestry = trie.ancestry()
    assert ancestry.dtype == bool and ancestry.shape == (7, 7)
    expected = np.zeros((7, 7), dtype=bool)
    for path in trie.paths:
        for depth, node in enumerate(path):
            expected[node, path[: depth + 1]] = True
    np.testing.assert_array_equal(ancestry, expected)


def test_trie_rejects_empty_answer():
    with pytest.raises(ValueError, match="at least one token"):
        LabelTrie.build([[1], []])
