"""Tier 2: patch 0024, MMRec's training loader drawing a batch's negative items at once, inside a patched
checkout on the synthetic ``tiny`` data set: never a training positive, the same batches for the same seed,
and per user (fewest, median, most training items) the distribution of the loop it replaced."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from .mmrec_support import run_in_src

pytestmark = pytest.mark.mmrec

SETUP = """
    import json, random
    import numpy as np, pandas as pd
    from utils.configurator import Config
    from utils.dataset import RecDataset
    from utils.dataloader import TrainDataLoader
    from utils.utils import init_seed

    def loader():
        config = Config("FREEDOM", "{data}", {{"gpu_id": -1, "use_gpu": False}})
        init_seed(999)
        train, _, _ = RecDataset(config).split()
        str(train)                              # as quick_start does: RecDataset.__str__ sets inter_num
        data = TrainDataLoader(config, train, batch_size=256, shuffle=True)
        data.pretrain_setup()
        return data
"""


def test_negatives_are_never_training_positives_and_the_same_seed_gives_the_same_batches(patched_mmrec, tiny_data):
    result = run_in_src(
        patched_mmrec,
        SETUP.format(data=tiny_data)
        + """
    data = loader()
    positives = {(u, i) for u, items in data.history_items_per_u.items() for i in items}
    passes = [[batch.tolist() for batch in data] for _ in range(3)]
    hits = sum((u, n) in positives for one in passes for batch in one for u, n in zip(batch[0], batch[2]))
    negatives = sum(len(batch[2]) for one in passes for batch in one)
    again = [batch.tolist() for batch in loader()]
    print(json.dumps({"hits": hits, "negatives": negatives, "same": again == passes[0],
                      "passes_differ": passes[0] != passes[1]}))
    """,
        timeout=180,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["negatives"] > 3000 and out["hits"] == 0
    assert out["same"] and out["passes_differ"]


def test_each_users_negatives_follow_the_replaced_loops_distribution(patched_mmrec, tiny_data):
    result = run_in_src(
        patched_mmrec,
        SETUP.format(data=tiny_data)
        + """
    def original(data, users):   # MMRec's _sample_neg_ids and _random before patch 0024
        neg_ids = []
        for u in users:
            iid = random.sample(data.all_items, 1)[0]
            while iid in data.history_items_per_u[u]:
                iid = random.sample(data.all_items, 1)[0]
            neg_ids.append(iid)
        return neg_ids

    data = loader()
    by_size = sorted(data.history_items_per_u, key=lambda u: (len(data.history_items_per_u[u]), u))
    out = {}
    for user in (by_size[0], by_size[len(by_size) // 2], by_size[-1]):
        users = pd.Series([user] * 8000)
        allowed = sorted(set(data.all_items) - data.history_items_per_u[user])
        out[str(user)] = {"allowed": [int(i) for i in allowed], "n_items": int(max(data.all_items)) + 1,
                          "original": original(data, users), "patched": data._sample_neg_ids(users).tolist()}
    print(json.dumps(out))
    """,
        timeout=180,
    )
    users = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(users) == 3
    for user, draws in users.items():
        counts = {k: np.bincount(draws[k], minlength=draws["n_items"]) for k in ("original", "patched")}
        allowed = draws["allowed"]
        assert all(counts[k][allowed].sum() == 8000 for k in counts), user  # only items the user never had
        _, p, _, _ = chi2_contingency(np.stack([counts["original"][allowed], counts["patched"][allowed]]))
        assert p > 1e-3, (user, len(allowed), p)
