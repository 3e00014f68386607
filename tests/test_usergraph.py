"""Tier 1: the sparse user graph equals the definition (MMRec's dualgnn-gen-u-u-matrix.py: shared-item
counts, torch.topk of each dense row, at most 200 neighbours). Tier 2 runs the script itself
(tests/integration/test_mmrec_usergraph.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mde_mmrec import usergraph
from mde_mmrec.errors import MdeMmrecError
from mde_mmrec.mmrec import MMREC_MARKERS
from mde_mmrec.synthetic import make_dataset


def reference(users, items, n_users, cap):
    """The original algorithm on a dense matrix: pairwise set intersections, then torch.topk per row."""
    sets = {}
    for u, i in zip(users.tolist(), items.tolist()):
        sets.setdefault(u, set()).add(i)
    dense = torch.zeros(n_users, n_users)
    keys = sorted(sets)
    for a_pos, a in enumerate(keys):
        for b in keys[a_pos + 1 :]:
            shared = len(sets[a] & sets[b])
            if shared:
                dense[a][b] = dense[b][a] = shared
    graph = {}
    for u in range(n_users):
        top = torch.topk(dense[u], min(len(torch.nonzero(dense[u])), cap))
        graph[u] = [top.indices.numpy().tolist(), top.values.numpy().tolist()]
    return graph


@pytest.mark.parametrize("seed, cap", [(0, 200), (1, 200), (2, 7), (3, 1)])
def test_same_dict_as_the_definition(seed, cap, monkeypatch):
    rng = np.random.default_rng(seed)
    n_users, n_items, n = 150, 40, 900
    users = rng.integers(0, n_users - 5, n)  # the last users have no training interactions
    items = rng.integers(0, n_items, n)  # with repeats: counted once
    monkeypatch.setattr(usergraph, "BLOCK_BYTES", 4 * n_users * 16)  # several blocks of 16 rows
    graph = usergraph.build_user_graph_dict(users, items, n_users, cap=cap)
    assert graph == reference(users, items, n_users, cap)
    assert graph[n_users - 1] == [[], []]
    assert all(len(v[0]) <= cap for v in graph.values())


def test_user_ids_must_be_dense():
    with pytest.raises(MdeMmrecError, match="dense user ids"):
        usergraph.build_user_graph_dict(np.array([0, 7]), np.array([1, 1]), n_users=2)


@pytest.mark.parametrize("cap", [20, 200])
def test_long_rows_with_many_ties_equal_one_topk_per_row(cap, monkeypatch):
    """Rows long enough for both of torch.topk's CPU strategies (partial sort when 64 k <= row length),
    few items so that counts tie a lot: grouping rows by k gives each row's own torch.topk result."""
    rng = np.random.default_rng(5)
    n_users, n_items, n = 2500, 30, 9000
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    matrix = usergraph.co_interaction_matrix(users, items, n_users).toarray()
    dense = torch.from_numpy(matrix @ matrix.T)
    dense.fill_diagonal_(0)
    expected = {}
    for u in range(n_users):
        top = torch.topk(dense[u], min(int(torch.count_nonzero(dense[u])), cap))
        expected[u] = [top.indices.tolist(), top.values.tolist()]
    monkeypatch.setattr(usergraph, "BLOCK_BYTES", 4 * n_users * 300)  # blocks of 300 rows
    assert usergraph.build_user_graph_dict(users, items, n_users, cap=cap) == expected


def _checkout(root):
    """A stand-in checkout (MMRec's marker files, empty) with MMRec's data_path."""
    for marker in MMREC_MARKERS:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    (root / "src" / "configs" / "overall.yaml").write_text("data_path: '../data/'\n")
    (root / "src" / "configs" / "dataset").mkdir()
    return root


def test_write_user_graph_writes_exactly_the_output_asked_for(tmp_path):
    root = _checkout(tmp_path / "MMRec")
    make_dataset(root, "tiny", preset="tiny", seed=0)
    target = tmp_path / "graph_without_suffix"
    assert usergraph.write_user_graph(root, "tiny", target) == target
    assert not target.with_suffix(".npy").exists() and len(np.load(target, allow_pickle=True).item()) > 0
    with pytest.raises(MdeMmrecError, match="is a folder; give the file to write"):
        usergraph.write_user_graph(root, "tiny", tmp_path)
    with pytest.raises(MdeMmrecError, match="unknown data set 'nosuch'.*make-data"):
        usergraph.write_user_graph(root, "nosuch")


def test_write_user_graph_uses_training_interactions_only_and_every_user(tmp_path):
    root = _checkout(tmp_path / "MMRec")
    make_dataset(root, "g", preset="tiny", seed=0)
    rows = [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 1), (2, 2, 0), (3, 2, 1), (3, 0, 2)]  # user 3: no training
    frame = pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).assign(rating=5, timestamp=1)
    frame.to_csv(root / "data" / "g" / "g.inter", sep="\t", index=False)
    graph = np.load(usergraph.write_user_graph(root, "g"), allow_pickle=True).item()
    assert graph == {0: [[1], [1.0]], 1: [[0], [1.0]], 2: [[], []], 3: [[], []]}


def test_progress_is_throttled():
    now = [0.0]
    seen = []
    report = usergraph.throttled(seen.append, 10.0, clock=lambda: now[0])
    for t, step in [(0, 1), (3, 2), (9.9, 3), (10.0, 4), (12, 5), (25, 6)]:
        now[0] = t
        report(step)
    assert seen == [1, 4, 6]  # the first call, then the first one at least 10 s after the last report
