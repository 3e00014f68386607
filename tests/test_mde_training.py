"""Tier 1: a few epochs of MDE on the `tiny` synthetic preset (planted multimodal structure) learn.

The loop below mimics MMRec's trainer (Adam, BPR batches with uniform negatives, summed loss tuple) through
our stand-in loader; the real MMRec trainer runs in the tier-2 tests.
"""

import numpy as np
import torch
from mde_support import make_model

from mde_mmrec.synthetic import generate


def _recall_at_20(scores: torch.Tensor, train: dict, test: dict) -> float:
    recalls = []
    for u, held_out in test.items():
        s = scores[u].clone()
        s[list(train.get(u, ()))] = -np.inf
        top = set(torch.topk(s, 20).indices.tolist())
        recalls.append(len(top & held_out) / len(held_out))
    return float(np.mean(recalls))


def test_few_epochs_on_tiny_lift_recall_well_above_random(tmp_path):
    inter, image, text = generate("tiny", seed=0)
    n_users, n_items = int(inter.userID.max()) + 1, int(inter.itemID.max()) + 1
    train_df = inter[inter.x_label == 0]
    test_df = inter[inter.x_label != 0]
    model, loader = make_model(
        tmp_path, train_df.userID.values, train_df.itemID.values, n_users, n_items, image, text, learning_rate=0.001
    )
    train = train_df.groupby("userID").itemID.apply(set).to_dict()
    test = test_df.groupby("userID").itemID.apply(set).to_dict()

    model.eval()
    before = _recall_at_20(model.full_sort_predict((torch.arange(n_users),)), train, test)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    rng = np.random.default_rng(0)
    for _ in range(15):
        model.train()
        for batch in loader.batches(256, rng):
            optimizer.zero_grad()
            loss = sum(model.calculate_loss(batch))
            assert torch.isfinite(loss)
            loss.backward()
            optimizer.step()
    model.eval()
    after = _recall_at_20(model.full_sort_predict((torch.arange(n_users),)), train, test)

    generator = torch.Generator().manual_seed(0)
    random_scores = torch.rand(n_users, n_items, generator=generator)
    random_recall = _recall_at_20(random_scores, train, test)
    print(f"Recall@20: random {random_recall:.4f}, untrained {before:.4f}, after 15 epochs {after:.4f}")
    assert after > 2.0 * random_recall
    assert after > before
