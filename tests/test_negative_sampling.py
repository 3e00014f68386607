"""Tier 1: the batch negative sampler (src/utils/negative_sampling.py, used by patch 0024) draws from the
distribution of MMRec's per-user loop: uniform over the training items the user has not interacted with;
never a training positive; the same negatives for the same seed."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from mde_mmrec.mmrec import plugin_module

negative_sampling = plugin_module("negative_sampling")


def interactions(seed: int, n_users: int = 30, n_items: int = 40):
    """Users with 1 .. n_items - 1 distinct training items; item 0 is never a training item."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        chosen = rng.choice(np.arange(1, n_items), size=int(rng.integers(1, n_items - 1)), replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
    return np.array(users), np.array(items)


def original_sample(history: dict, all_items: list, users) -> list:
    """MMRec's TrainDataLoader._sample_neg_ids (with its _random), as it was before patch 0024."""
    neg_ids = []
    for u in users:
        iid = random.sample(all_items, 1)[0]
        while iid in history[u]:
            iid = random.sample(all_items, 1)[0]
        neg_ids.append(iid)
    return neg_ids


def test_no_negative_is_a_training_positive_and_every_one_is_a_candidate():
    users, items = interactions(0)
    sampler = negative_sampling.NegativeSampler(users, items, np.unique(items))
    batch = np.repeat(np.arange(30), 200)
    negatives = sampler.sample(batch, np.random.RandomState(1))
    assert negatives.dtype == np.int64 and negatives.shape == batch.shape
    positives = set(zip(users.tolist(), items.tolist()))
    assert not any((u, i) in positives for u, i in zip(batch.tolist(), negatives.tolist()))
    assert set(negatives.tolist()) <= set(items.tolist())  # item 0 is in no training row: never drawn
    assert sampler.is_positive(users, items).all()


def test_the_same_seed_gives_the_same_negatives_and_another_seed_other_ones():
    users, items = interactions(1)
    sampler = negative_sampling.NegativeSampler(users, items, np.unique(items))
    batch = np.arange(30).repeat(10)
    first, again = (sampler.sample(batch, np.random.RandomState(7)) for _ in range(2))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, sampler.sample(batch, np.random.RandomState(8)))
    np.random.seed(3)
    global_first = sampler.sample(batch)  # default: NumPy's global state, which MMRec's init_seed seeds
    np.random.seed(3)
    assert np.array_equal(global_first, sampler.sample(batch))


@pytest.mark.parametrize("rank", [0, 0.5, 1])  # the user with the fewest, a median, the most training items
def test_each_users_negatives_follow_the_original_samplers_distribution(rank):
    users, items = interactions(2)
    history = {u: set(items[users == u].tolist()) for u in range(30)}
    by_size = sorted(history, key=lambda u: len(history[u]))
    user = by_size[int(rank * (len(by_size) - 1))]
    all_items = np.unique(items).tolist()
    draws = 6000
    random.seed(0)
    original = np.bincount(original_sample(history, all_items, [user] * draws), minlength=40)
    sampler = negative_sampling.NegativeSampler(users, items, all_items)
    vectorised = np.bincount(sampler.sample(np.full(draws, user), np.random.RandomState(0)), minlength=40)
    allowed = sorted(set(all_items) - history[user])
    assert original[allowed].sum() == vectorised[allowed].sum() == draws  # nothing outside the allowed items
    if len(allowed) > 1:
        _, p, _, _ = chi2_contingency(np.stack([original[allowed], vectorised[allowed]]))
        assert p > 1e-3, (user, len(allowed), p)
        expected = draws / len(allowed)  # and uniform: each allowed item within 6 sigma of its expectation
        assert np.all(np.abs(vectorised[allowed] - expected) < 6 * np.sqrt(expected))


def test_a_user_with_every_candidate_item_is_refused_instead_of_looping_forever():
    users, items = np.array([0, 0, 0, 1]), np.array([1, 2, 3, 1])
    with pytest.raises(ValueError, match=r"user\(s\) 0 interacted with every one of the 3 candidate items"):
        negative_sampling.NegativeSampler(users, items, [1, 2, 3])
    with pytest.raises(ValueError, match="expected one item per user"):
        negative_sampling.NegativeSampler(users, items[:2], [1, 2, 3])
