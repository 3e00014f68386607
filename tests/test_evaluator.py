"""Tier 1: the vectorised hit matrix (src/utils/fast_topk.py) equals the definition, MMRec's
``[i in m for i in n]`` per user, on random inputs with duplicates, users without hits, short lists."""

from __future__ import annotations

import numpy as np
import pytest

from mde_mmrec.mmrec import plugin_module

fast = plugin_module("fast_topk")


def reference_hits(pos_items, topk_index):
    return np.asarray(
        [[item in set(np.asarray(m).tolist()) for item in row] for m, row in zip(pos_items, topk_index)], dtype=bool
    ).reshape(np.shape(topk_index))


@pytest.mark.parametrize("seed", range(8))
def test_hit_matrix_equals_the_definition(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = int(rng.integers(1, 400)), int(rng.integers(2, 300)), int(rng.integers(1, 60))
    k = min(k, n_items)
    pos = [rng.choice(n_items, size=int(rng.integers(1, 20)), replace=bool(seed % 2)) for _ in range(n_users)]
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    hits = fast.hit_matrix(pos, topk)
    assert hits.dtype == bool and hits.shape == topk.shape
    assert np.array_equal(hits, reference_hits(pos, topk))


def test_hit_matrix_edge_cases():
    topk = np.array([[3, 1, 2], [0, 1, 2]])
    assert fast.hit_matrix([np.array([2, 2, 9]), np.array([], dtype=int)], topk).tolist() == [
        [False, False, True],
        [False, False, False],
    ]
    assert fast.hit_matrix([np.array([5])], np.array([[5]])).tolist() == [[True]]
    with pytest.raises(ValueError, match="recommendation lists"):
        fast.hit_matrix([np.array([1])], topk)
