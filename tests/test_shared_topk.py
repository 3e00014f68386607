"""Tier 1: one scoring pass for valid and test (src/utils/shared_topk.py, used by patch 0013) gives every
loader exactly the top-k lists of MMRec's own per-loader loop, and scores each user once per round.

The loaders here are ours: batches ``[users, history]`` built the way MMRec's EvalDataLoader builds them
(history = [row in batch; training item], every row of a user's training items), so no MMRec is needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mde_mmrec.mmrec import plugin_module

shared = plugin_module("shared_topk")


class ScoringModel:
    """``full_sort_predict`` as MDE's: user embeddings times item embeddings; records who was scored."""

    def __init__(self, n_users: int, n_items: int, seed: int, ties: bool):
        g = torch.Generator().manual_seed(seed)
        if ties:  # small integers: many equal scores, so tie order matters
            self.users = torch.randint(0, 3, (n_users, 4), generator=g).float()
            self.items = torch.randint(0, 3, (n_items, 4), generator=g).float()
        else:
            self.users, self.items = torch.randn(n_users, 8, generator=g), torch.randn(n_items, 8, generator=g)
        self.scored = []

    def full_sort_predict(self, interaction):
        self.scored.append(interaction[0].clone())
        return self.users[interaction[0]] @ self.items.T


def batches(users: np.ndarray, history: dict, batch_size: int) -> list:
    """MMRec's EvalDataLoader batches: users in order, with their training items as [row; item] pairs."""
    out = []
    for start in range(0, len(users), batch_size):
        part = users[start : start + batch_size]
        rows = [r for r, u in enumerate(part) for _ in history[u]]
        items = [i for u in part for i in history[u]]
        out.append([torch.as_tensor(part, dtype=torch.long), torch.tensor([rows, items], dtype=torch.long)])
    return out


def mmrec_loop(model, loader, k):
    """MMRec's Trainer.evaluate loop body (common/trainer.py at e775373), quoted as the reference."""
    lists = []
    for batched_data in loader:
        scores = model.full_sort_predict(batched_data)
        masked_items = batched_data[1]
        scores[masked_items[0], masked_items[1]] = -1e10
        _, topk_index = torch.topk(scores, k, dim=-1)
        lists.append(topk_index)
    return lists


def make_case(seed: int, n_users=150, n_items=60):
    rng = np.random.default_rng(seed)
    history = {
        u: sorted(rng.choice(n_items, size=int(rng.integers(1, 12)), replace=False).tolist()) for u in range(n_users)
    }
    valid_users = rng.permutation(n_users)[: int(n_users * 0.9)]
    test_users = rng.permutation(n_users)[: int(n_users * 0.8)]  # other users, another order
    return history, valid_users, test_users


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_shared_lists_equal_mmrec_loop_for_valid_and_test(seed, ties):
    history, valid_users, test_users = make_case(seed)
    k, batch_size = 20, int(np.random.default_rng(seed).integers(7, 64))
    valid, test = batches(valid_users, history, batch_size), batches(test_users, history, batch_size)
    reference = ScoringModel(150, 60, seed, ties)
    expected = [mmrec_loop(reference, valid, k), mmrec_loop(reference, test, k)]

    model, ranked, source = ScoringModel(150, 60, seed, ties), shared.SharedTopk(), object()
    got = [[ranked.topk(model, b, source, k) for b in loader] for loader in (valid, test)]
    for exp_loader, got_loader in zip(expected, got):
        assert len(exp_loader) == len(got_loader)
        for e, g in zip(exp_loader, got_loader):
            assert torch.equal(e, g)
    scored = torch.cat(model.scored)
    assert len(scored) == len(set(valid_users) | set(test_users)) == len(set(scored.tolist()))  # each user once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_shared_lists_on_cuda_equal_mmrec_loop():
    history, valid_users, test_users = make_case(3)
    to_cuda = lambda loader: [[part.cuda() for part in b] for b in loader]  # noqa: E731
    valid, test = to_cuda(batches(valid_users, history, 40)), to_cuda(batches(test_users, history, 40))
    reference, model = ScoringModel(150, 60, 3, False), ScoringModel(150, 60, 3, False)
    for m in (reference, model):
        m.users, m.items = m.users.cuda(), m.items.cuda()
    ranked, source = shared.SharedTopk(), object()
    for loader in (valid, test):
        expected = mmrec_loop(reference, loader, 20)
        got = [ranked.topk(model, b, source, 20) for b in loader]
        assert len(got) == len(expected) and all(g.is_cuda and torch.equal(e, g) for e, g in zip(expected, got))


def test_valid_calls_are_exactly_mmrecs_and_test_makes_none_when_users_match():
    history, valid_users, _ = make_case(0)
    valid = batches(valid_users, history, 32)
    test = batches(valid_users, history, 32)  # the same users in the same order (Amazon data sets)
    model, ranked, source = ScoringModel(150, 60, 0, False), shared.SharedTopk(), object()
    for b in valid:
        ranked.topk(model, b, source, 10)
    assert [s.tolist() for s in model.scored] == [b[0].tolist() for b in valid]
    model.scored.clear()
    for b in test:
        ranked.topk(model, b, source, 10)
    assert model.scored == []


def test_another_history_or_k_is_never_served_from_stored_lists():
    history, users, _ = make_case(1)
    loader = batches(users, history, 40)
    model, ranked = ScoringModel(150, 60, 1, False), shared.SharedTopk()
    first, second = object(), object()
    for b in loader:
        ranked.topk(model, b, first, 10)
    n = len(model.scored)
    for b in loader:  # other training history: other masks, rank again
        ranked.topk(model, b, second, 10)
    assert len(model.scored) == 2 * n
    lists = [ranked.topk(model, b, second, 5) for b in loader]  # other k: rank again
    assert len(model.scored) == 3 * n and all(t.shape[1] == 5 for t in lists)


def test_select_rows_renumbers_the_history_of_the_kept_rows():
    users = torch.tensor([7, 3, 9, 4])
    history = torch.tensor([[0, 0, 1, 2, 2, 3], [5, 6, 1, 2, 8, 0]])
    sub = shared.select_rows([users, history], torch.tensor([1, 3]))
    assert sub[0].tolist() == [3, 4]
    assert sub[1].tolist() == [[0, 1], [1, 0]]


def test_mask_and_rank_never_recommends_a_training_item():
    scores = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    lists = shared.mask_and_rank(scores, torch.tensor([[0, 0, 1], [5, 4, 5]]), 3)
    assert lists.tolist() == [[3, 2, 1], [4, 3, 2]]


def test_an_empty_batch_gives_empty_lists_before_and_after_others():
    model, ranked, source = ScoringModel(10, 8, 0, False), shared.SharedTopk(), object()
    empty = [torch.zeros(0, dtype=torch.long), torch.zeros((2, 0), dtype=torch.long)]
    assert ranked.topk(model, empty, source, 3).shape == (0, 3)
    ranked.topk(model, [torch.tensor([1, 2]), torch.tensor([[0], [5]])], source, 3)
    assert ranked.topk(model, empty, source, 3).shape == (0, 3)
