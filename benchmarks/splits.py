"""Reproducible, stratified, group-aware train/test sampling.

The benchmark tasks cut some documents into chunks (novel chapters into
passages) or contain parallel texts (a gettext message and its translations).
Such related examples share a *group*; a group never straddles train and test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["allocate", "group_split", "sample_split"]


def allocate(counts: dict[Hashable, int], n: int, minimum: int = 0) -> dict[Hashable, int]:
    """Share ``n`` examples among classes in proportion to ``counts``.

    Uses the largest-remainder method, gives every class at least ``minimum``
    (if it has that many) and never more than it has.

    Parameters
    ----------
    counts : dict
        Available examples per class.
    n : int
        Total to allocate. If ``n`` exceeds the total available, every class
        gets all it has.
    minimum : int, default 0
        Lower bound per class (capped by availability).

    Returns
    -------
    dict
        Allocated number per class (same keys as ``counts``).
    """
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    keys = sorted(counts, key=str)
    alloc = {k: min(counts[k], minimum) for k in keys}
    rest = n - sum(alloc.values())
    if rest < 0:  # more classes than n: keep the largest classes
        alloc = dict.fromkeys(keys, 0)
        for k in sorted(keys, key=lambda k: (-counts[k], str(k)))[:n]:
            alloc[k] = 1
        return alloc
    while rest > 0:
        room = {k: counts[k] - alloc[k] for k in keys if counts[k] > alloc[k]}
        if not room:
            break
        weight = sum(counts[k] for k in room)
        exact = {k: rest * counts[k] / weight for k in room}
        give = {k: min(room[k], int(np.floor(exact[k]))) for k in room}
        leftover = rest - sum(give.values())
        # largest remainder first (ties: larger class, then name)
        order = sorted((k for k in room if give[k] < room[k]),
                       key=lambda k: (-(exact[k] - np.floor(exact[k])), -counts[k], str(k)))
        for k in order[:leftover]:
            give[k] += 1
        for k, g in give.items():
            alloc[k] += g
        rest = n - sum(alloc.values())
    return alloc


def group_split(
    labels: Sequence[Hashable],
    groups: Sequence[Hashable],
    test_fraction: float,
    seed: int = 0,
) -> np.ndarray:
    """Assign whole groups to test so that each class's test share is near ``test_fraction``.

    Groups are visited in a seeded random order; a group goes to the test side
    when the classes it contains are, on balance, still short of their test
    quota. Works for single-class groups (chapters of one novel) and
    multi-class groups (a message and its translations).

    Parameters
    ----------
    labels, groups : sequence
        Class and group of each example.
    test_fraction : float
        Target share of each class on the test side (0 < f < 1).
    seed : int, default 0
        Seed of the group order.

    Returns
    -------
    numpy.ndarray of bool
        ``True`` where the example is on the test side.
    """
    labels = list(labels)
    groups = list(groups)
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    totals = Counter(labels)
    in_test: Counter = Counter()
    rng = np.random.default_rng(seed)
    keys = list(members)
    order = rng.permutation(len(keys))
    is_test = np.zeros(len(labels), dtype=bool)
    for j in order:
        idx = members[keys[j]]
        need = sum(test_fraction * totals[labels[i]] - in_test[labels[i]] for i in idx)
        # small groups should not overshoot a nearly full class
        overshoot = sum(
            max(0.0, in_test[labels[i]] + 1 - test_fraction * totals[labels[i]]) for i in idx
        )
        if need > 0 and overshoot <= len(idx) / 2:
            is_test[idx] = True
            for i in idx:
                in_test[labels[i]] += 1
    return is_test


def sample_split(
    labels: Sequence[Hashable],
    groups: Sequence[Hashable] | None = None,
    n_train: int | None = 500,
    n_test: int | None = 200,
    seed: int = 0,
    fixed_side: Sequence[str | None] | None = None,
    min_train_per_class: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a stratified train and test sample; groups never straddle the two.

    Parameters
    ----------
    labels : sequence
        Class of each example.
    groups : sequence, optional
        Group of each example (defaults to one group per example). Every
        member of a group lands on the same side.
    n_train, n_test : int or None
        Sample sizes; ``None`` takes every example available on that side.
    seed : int, default 0
        Random seed (group assignment and sampling).
    fixed_side : sequence of {"train", "test", None}, optional
        A predefined split (e.g. the official 20 Newsgroups one). Examples
        with a side stay on it; a group that has members on both sides is
        kept on the test side only.
    min_train_per_class : int, default 1
        Lower bound of training examples per class (so rare classes of a long
        tail are still seen in training).

    Returns
    -------
    train_idx, test_idx : numpy.ndarray of int
        Indices into ``labels``, each sorted by class then random order.
        Test classes are restricted to classes present in the training sample.
    """
    labels = list(labels)
    n = len(labels)
    groups = list(range(n)) if groups is None else list(groups)
    if len(groups) != n:
        raise ValueError("labels and groups differ in length")
    rng = np.random.default_rng(seed)

    if fixed_side is not None:
        side = np.asarray([s or "" for s in fixed_side], dtype=object)
        is_test = side == "test"
        free = side == ""
        if free.any():
            sub = np.flatnonzero(free)
            f = _test_fraction(n_train, n_test)
            is_test[sub] = group_split([labels[i] for i in sub], [groups[i] for i in sub], f, seed)
        # a group with members on both sides stays on the test side only
        test_groups = {groups[i] for i in np.flatnonzero(is_test)}
        keep = np.array([is_test[i] or groups[i] not in test_groups for i in range(n)])
    else:
        f = _test_fraction(n_train, n_test)
        is_test = group_split(labels, groups, f, seed)
        keep = np.ones(n, dtype=bool)

    train_pool = np.flatnonzero(keep & ~is_test)
    test_pool = np.flatnonzero(keep & is_test)
    overall = Counter(labels[i] for i in np.flatnonzero(keep))

    def draw(pool: np.ndarray, size: int | None, minimum: int, classes: set | None) -> np.ndarray:
        by_class: dict[Hashable, list[int]] = defaultdict(list)
        for i in rng.permutation(pool):
            if classes is None or labels[i] in classes:
                by_class[labels[i]].append(int(i))
        if size is None:
            return np.asarray(sorted(i for v in by_class.values() for i in v), dtype=int)
        # proportional to the overall class distribution, capped by what the pool has
        want = allocate({k: overall[k] for k in by_class}, size, minimum)
        have = {k: len(v) for k, v in by_class.items()}
        got = {k: min(want[k], have[k]) for k in by_class}
        short = size - sum(got.values())
        if short > 0:  # fill from classes with room, proportionally
            room = {k: have[k] - got[k] for k in by_class if have[k] > got[k]}
            extra = allocate(room, short) if room else {}
            for k, e in extra.items():
                got[k] += e
        out = [i for k in sorted(by_class, key=str) for i in by_class[k][: got[k]]]
        return np.asarray(out, dtype=int)

    train_idx = draw(train_pool, n_train, min_train_per_class, None)
    seen = {labels[i] for i in train_idx}
    test_idx = draw(test_pool, n_test, 0, seen)
    return train_idx, test_idx


def _test_fraction(n_train: int | None, n_test: int | None) -> float:
    """Share of the data to put in the test pool."""
    if n_train is None or n_test is None:
        return 0.3
    return min(max(n_test / (n_train + n_test), 0.05), 0.95)
