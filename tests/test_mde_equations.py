"""Tier 1: each equation of MDE's Section II against a value worked out independently on a toy graph."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from mde_support import graphs, mde

# A toy graph: 3 users, 4 items. u0-{i0,i1}, u1-{i1,i2}, u2-{i1,i2,i3}
TOY = sp.csr_matrix((np.ones(7), ([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 2, 1, 2, 3])), shape=(3, 4))


def test_normalized_adjacency_matches_hand_computation():
    a = graphs.normalized_bipartite_adjacency(TOY).toarray()
    # degrees: users 2, 2, 3; items 1, 3, 2, 1 (nodes u0 u1 u2 i0 i1 i2 i3)
    assert a.shape == (7, 7)
    assert a[0, 3] == pytest.approx(1 / math.sqrt(2 * 1))  # u0 - i0
    assert a[0, 4] == pytest.approx(1 / math.sqrt(2 * 3))  # u0 - i1
    assert a[6, 2] == pytest.approx(1 / math.sqrt(1 * 3))  # i3 - u2
    assert a[0, 1] == 0 and a[3, 4] == 0  # no user-user or item-item edges
    np.testing.assert_allclose(a, a.T)


def test_normalized_adjacency_user_without_items_is_isolated():
    r = sp.csr_matrix((np.ones(2), ([0, 0], [0, 1])), shape=(2, 2))  # user 1 has no training items
    a = graphs.normalized_bipartite_adjacency(r).toarray()
    assert np.isfinite(a).all() and a[1].sum() == 0


def test_normalized_adjacency_counts_a_repeated_interaction_once():
    """A CSR with an unsummed duplicate (u0, i1) gives the same graph as the deduplicated TOY."""
    coo = TOY.tocoo()
    rows, cols = np.append(coo.row, 0), np.append(coo.col, 1)
    order = np.lexsort((cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=3))])
    repeated = sp.csr_matrix((np.ones(len(rows)), cols[order], indptr), shape=(3, 4))
    assert repeated.nnz == TOY.nnz + 1 and not repeated.has_canonical_format
    np.testing.assert_allclose(
        graphs.normalized_bipartite_adjacency(repeated).toarray(), graphs.normalized_bipartite_adjacency(TOY).toarray()
    )


def test_layer_mean_propagation_matches_dense_powers():
    a = graphs.normalized_bipartite_adjacency(TOY)
    e0 = torch.randn(7, 5, dtype=torch.float32)
    out = mde.layer_mean_propagation(graphs.to_torch_csr(a), e0, 2)
    dense = a.toarray().astype(np.float64)
    expected = (e0.numpy() + dense @ e0.numpy() + dense @ dense @ e0.numpy()) / 3
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_symmetric_product_backward_is_the_same_product():
    a = sp.random(6, 6, density=0.5, random_state=1, format="csr", dtype=np.float32)
    a = (a + a.T).tocsr()
    x = torch.randn(6, 3, dtype=torch.float32, requires_grad=True)
    w = torch.randn(6, 3)
    (graphs.symmetric_product(graphs.to_torch_csr(a), x) * w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a.toarray().T @ w.numpy(), rtol=1e-5, atol=1e-6)


def test_cooccurrence_topk_counts_common_items_and_keeps_top_k():
    # common items: u0-u1 {i1}=1, u0-u2 {i1}=1, u1-u2 {i1,i2}=2
    full = graphs.cooccurrence_topk(TOY, k=5).toarray()
    np.testing.assert_array_equal(full, [[0, 1, 1], [1, 0, 2], [1, 2, 0]])
    top1 = graphs.cooccurrence_topk(TOY, k=1).toarray()
    np.testing.assert_array_equal(top1, [[0, 1, 0], [0, 0, 2], [0, 2, 0]])  # u0: tie -> smaller id


def test_cooccurrence_topk_blocks_equal_one_block():
    r = sp.random(50, 30, density=0.15, random_state=3, format="csr")
    one = graphs.cooccurrence_topk(r, k=4)
    blocked = graphs.cooccurrence_topk(r, k=4, block_rows=7)
    assert (one != blocked).nnz == 0
    dense = (r > 0).astype(np.float32)
    counts = (dense @ dense.T).toarray()
    np.fill_diagonal(counts, 0)
    for u in range(50):  # each kept neighbour count is among the k largest of that row
        kept = one[u].toarray().ravel()
        assert (kept > 0).sum() == min(4, (counts[u] > 0).sum())
        if (kept > 0).any():
            assert kept[kept > 0].min() >= np.sort(counts[u])[::-1][min(4, 50) - 1]


def test_cosine_knn_matches_brute_force_and_skips_self_and_zero_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    x[4] = 0.0  # an all-zero feature row
    knn = graphs.cosine_knn(torch.from_numpy(x), k=3, block_rows=5).toarray()
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    sim[:, 4] = -np.inf
    for i in range(12):
        if i == 4:
            assert knn[i].sum() == 0
            continue
        assert set(np.flatnonzero(knn[i])) == set(np.argsort(-sim[i])[:3])
    assert knn[:, 4].sum() == 0 and np.trace(knn) == 0


def test_cosine_knn_k_larger_than_candidates_keeps_all():
    x = torch.eye(4)
    knn = graphs.cosine_knn(x, k=10).toarray()
    np.testing.assert_array_equal(knn, 1 - np.eye(4))


def test_row_normalize_and_row_softmax():
    a = sp.csr_matrix(np.array([[0, 2.0, 1.0], [0, 0, 0], [3.0, 0, 0]]))
    np.testing.assert_allclose(
        graphs.row_normalize((a > 0).astype(np.float32)).toarray(), [[0, 0.5, 0.5], [0, 0, 0], [1, 0, 0]]
    )
    s = graphs.row_softmax(a).toarray()
    e = np.exp([2.0, 1.0])
    np.testing.assert_allclose(s[0], [0, e[0] / e.sum(), e[1] / e.sum()], rtol=1e-6)
    np.testing.assert_allclose(s[1], 0)
    np.testing.assert_allclose(s[2], [1, 0, 0])


def test_neighbour_lists_pad_and_keep_weights():
    a = sp.csr_matrix(np.array([[0, 0.25, 0.75], [0, 0, 0], [1.0, 0, 0]], dtype=np.float32))
    lists = graphs.neighbour_lists(a)
    np.testing.assert_array_equal(lists.index.numpy(), [[1, 2], [1, 1], [0, 2]])
    np.testing.assert_allclose(lists.weight.numpy(), [[0.25, 0.75], [0, 0], [1, 0]])


def test_homogeneous_convolution_replace_or_residual_for_selected_rows():
    a = sp.csr_matrix(np.array([[0, 1.0, 0], [0.5, 0, 0.5], [0, 0, 0]], dtype=np.float32))
    graph = graphs.neighbour_lists(a)
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    rows = torch.tensor([0, 1, 2])
    np.testing.assert_allclose(
        mde.homogeneous_convolution(h, graph, rows, residual=False).numpy(), a.toarray() @ h.numpy()
    )
    np.testing.assert_allclose(
        mde.homogeneous_convolution(h, graph, rows, residual=True).numpy(), h.numpy() + a.toarray() @ h.numpy()
    )
    h.requires_grad_(True)
    some = mde.homogeneous_convolution(h, graph, torch.tensor([2, 0]), residual=True)
    np.testing.assert_allclose(some.detach().numpy(), (h.detach().numpy() + a.toarray() @ h.detach().numpy())[[2, 0]])
    w = torch.tensor([[1.0, -1.0], [2.0, 0.5]])
    (some * w).sum().backward()
    dense = np.eye(3)[[2, 0]] + a.toarray()[[2, 0]]  # d out / d h
    np.testing.assert_allclose(h.grad.numpy(), dense.T @ w.numpy(), rtol=1e-6)


def test_stacked_modality_graphs_convolve_each_modality_with_its_own_graph():
    """The item graphs of M modalities as one graph over rows item * M + m: eq. 4 per modality, in one product."""
    rng = np.random.default_rng(5)
    dense = [rng.random((6, 6)).astype(np.float32) * (rng.random((6, 6)) < p) for p in (0.5, 0.2)]  # widths differ
    lists = [graphs.neighbour_lists(sp.csr_matrix(a)) for a in dense]
    stacked = graphs.stack_modalities(lists)
    h = torch.tensor(rng.standard_normal((6, 2, 3)), dtype=torch.float32)  # [items, M, d]
    rows = torch.tensor([5, 0, 5, 2])
    for residual in (False, True):
        item_modality_rows = (rows[:, None] * 2 + torch.arange(2)).reshape(-1)  # item i, modality m: i * 2 + m
        together = mde.homogeneous_convolution(h.reshape(-1, 3), stacked, item_modality_rows, residual).view(-1, 2, 3)
        for m in range(2):
            alone = mde.homogeneous_convolution(h[:, m], lists[m], rows, residual)
            np.testing.assert_allclose(together[:, m].numpy(), alone.numpy(), rtol=1e-6, atol=1e-6)


def test_homogeneous_convolution_gradient_on_a_random_graph_with_unreferenced_nodes():
    # nodes 7-9 are nobody's neighbour and not among the rows: their gradient rows must be exactly zero
    rng = np.random.default_rng(3)
    dense = rng.random((10, 10)).astype(np.float32) * (rng.random((10, 10)) < 0.4)
    dense[:, 7:] = 0
    graph = graphs.neighbour_lists(sp.csr_matrix(dense))
    rows = torch.tensor([4, 0, 4, 6, 2])  # repeated rows too
    h = torch.tensor(rng.standard_normal((10, 3)), dtype=torch.float32, requires_grad=True)
    w = torch.tensor(rng.standard_normal((5, 3)), dtype=torch.float32)
    (mde.homogeneous_convolution(h, graph, rows, residual=True) * w).sum().backward()
    d_out_d_h = np.eye(10)[rows.numpy()] + dense[rows.numpy()]
    np.testing.assert_allclose(h.grad.numpy(), d_out_d_h.T @ w.numpy(), rtol=1e-5, atol=1e-6)
    assert not h.grad[7:].any()


def test_preference_and_fusion():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    p = mde.preference(logits)
    np.testing.assert_allclose(p.numpy(), [[0.5, 0.5], [0.75, 0.25]], rtol=1e-6)
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [2.0, 2.0]]])  # [n=2, M=2, d=2]
    np.testing.assert_allclose(mde.fuse(h, p).numpy(), [[0.5, 1, 1.5, 2], [0.75, 0.75, 0.5, 0.5]], rtol=1e-6)


def test_tradeoff_weights():
    w_diff, w_cl = mde.tradeoff_weights(torch.tensor([0.9, 0.5]), torch.tensor([0.1, 0.5]))
    np.testing.assert_allclose(w_diff.numpy(), [0.8, 0.0], atol=1e-6)
    np.testing.assert_allclose(w_cl.numpy(), [0.2, 1.0], atol=1e-6)


def test_bpr_loss():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    i = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    j = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    expected = (-math.log(1 / (1 + math.exp(-2.0))) - math.log(1 / (1 + math.exp(2.0)))) / 2
    assert mde.bpr_loss((u * i).sum(-1), (u * j).sum(-1)).item() == pytest.approx(expected, rel=1e-6)


def test_modality_gap_loss_literal_value():
    h_v = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    h_t = torch.tensor([[0.0, 0.0], [3.0, -1.0]])
    w = torch.tensor([0.5, 1.0])
    # node 0: (0.5^2)(1 + 4) = 1.25 ; node 1: 1 * (9 + 1) = 10 ; mean 5.625
    assert mde.modality_gap_loss(h_v, h_t, w, "literal").item() == pytest.approx(5.625)


def test_modality_gap_loss_bounded_value():
    h_v = torch.tensor([[2.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    h_t = torch.tensor([[0.0, 5.0], [2.0, 2.0], [0.0, 3.0]])
    w = torch.tensor([1.0, 0.5, 0.5])
    # unit rows: nodes 0 and 2 orthogonal -> squared gap 2 ; node 1 parallel -> 0 ;
    # eq. 6 squares the weight: -(1^2 * 2 + 0.5^2 * 0 + 0.5^2 * 2) / 3 = -2.5 / 3
    assert mde.modality_gap_loss(h_v, h_t, w, "bounded").item() == pytest.approx(-2.5 / 3)


def _gap_after_step(form):
    torch.manual_seed(0)
    h_v = torch.randn(16, 8, requires_grad=True)
    h_t = (h_v.detach() + 0.3 * torch.randn(16, 8)).requires_grad_(True)
    w = torch.rand(16)

    def gap():
        return (
            (torch.nn.functional.normalize(h_v, dim=1) - torch.nn.functional.normalize(h_t, dim=1)).norm(dim=1).mean()
        )

    before = gap().item()
    mde.modality_gap_loss(h_v, h_t, w, form).backward()
    with torch.no_grad():
        h_v -= 0.5 * h_v.grad
        h_t -= 0.5 * h_t.grad
    return before, gap().item()


def test_gradient_step_on_default_modality_gap_loss_increases_the_gap():
    before, after = _gap_after_step("bounded")
    assert after > before


def test_gradient_step_on_literal_modality_gap_loss_decreases_the_gap():
    before, after = _gap_after_step("literal")  # eq. 6 as printed pulls the modalities together
    assert after < before


def _direct_infonce(a_v, a_t, c_v, c_t, pos, w, tau, cosine=True):
    """Eq. 7 written out term by term with Python loops (cosine similarities, or raw dot products)."""

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True) if cosine else x

    a_v, a_t, c_v, c_t = map(unit, (a_v, a_t, c_v, c_t))
    total = 0.0
    for n in range(len(a_v)):
        v2t = -math.log(math.exp(a_v[n] @ c_t[pos[n]] / tau) / sum(math.exp(a_v[n] @ c / tau) for c in c_t))
        t2v = -math.log(math.exp(a_t[n] @ c_v[pos[n]] / tau) / sum(math.exp(a_t[n] @ c / tau) for c in c_v))
        total += w[n] * (v2t + t2v)
    return total / len(a_v)


def test_alignment_loss_in_batch_matches_direct_computation():
    rng = np.random.default_rng(1)
    v, t, w = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.random(5)
    got = mde.alignment_loss(torch.tensor(v), torch.tensor(t), torch.tensor(w), 0.3).item()
    assert got == pytest.approx(_direct_infonce(v, t, v, t, list(range(5)), w, 0.3), rel=1e-6)


def test_alignment_loss_all_items_matches_direct_computation():
    rng = np.random.default_rng(2)
    all_v, all_t = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    nodes = np.array([1, 4, 7])
    w = rng.random(3)
    got = mde.alignment_loss(
        torch.tensor(all_v[nodes]),
        torch.tensor(all_t[nodes]),
        torch.tensor(w),
        0.5,
        torch.tensor(all_v),
        torch.tensor(all_t),
        torch.tensor(nodes),
    ).item()
    assert got == pytest.approx(_direct_infonce(all_v[nodes], all_t[nodes], all_v, all_t, nodes, w, 0.5), rel=1e-6)


def test_alignment_loss_dot_similarity_matches_direct_computation():
    """cl_similarity: dot, eq. 7 as printed: raw h_v . h_t over tau, no normalisation."""
    rng = np.random.default_rng(3)
    all_v, all_t = 2.0 * rng.normal(size=(9, 4)), rng.normal(size=(9, 4))  # rows of unequal norms
    nodes, w = np.array([0, 3, 5, 8]), rng.random(4)
    in_batch = mde.alignment_loss(
        torch.tensor(all_v[nodes]), torch.tensor(all_t[nodes]), torch.tensor(w), 0.4, similarity="dot"
    ).item()
    assert in_batch == pytest.approx(
        _direct_infonce(all_v[nodes], all_t[nodes], all_v[nodes], all_t[nodes], range(4), w, 0.4, cosine=False),
        rel=1e-6,
    )
    every_item = mde.alignment_loss(
        torch.tensor(all_v[nodes]),
        torch.tensor(all_t[nodes]),
        torch.tensor(w),
        0.4,
        torch.tensor(all_v),
        torch.tensor(all_t),
        torch.tensor(nodes),
        similarity="dot",
    ).item()
    assert every_item == pytest.approx(
        _direct_infonce(all_v[nodes], all_t[nodes], all_v, all_t, nodes, w, 0.4, cosine=False), rel=1e-6
    )
    with pytest.raises(ValueError, match="similarity must be cosine or dot"):
        mde.alignment_loss(torch.tensor(all_v), torch.tensor(all_t), torch.ones(9), 0.4, similarity="cos")


def _brute_force_knn(x: np.ndarray, k: int) -> list:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit.astype(np.float64) @ unit.T.astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    return [set(np.argsort(-row, kind="stable")[:k]) for row in sim]


@pytest.mark.parametrize("bf16", [False, True])
def test_cosine_knn_blocked_symmetric_pass_is_exact(monkeypatch, bf16):
    monkeypatch.setattr(graphs, "fast_cpu_bf16", lambda: bf16)
    x = np.random.default_rng(5).normal(size=(300, 48)).astype(np.float32)
    knn = graphs.cosine_knn(torch.from_numpy(x), k=5, block_rows=64)
    expected = _brute_force_knn(x, 5)
    assert [set(np.flatnonzero(row)) for row in knn.toarray()] == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cosine_knn_on_cuda_is_exact_and_skips_zero_rows():
    x = np.random.default_rng(7).normal(size=(300, 48)).astype(np.float32)
    x[17] = 0.0  # an item without features
    knn = graphs.cosine_knn(torch.from_numpy(x).cuda(), k=5, block_rows=64).toarray()
    expected = _brute_force_knn(np.delete(x, 17, axis=0), 5)
    got = [set(np.flatnonzero(np.delete(row, 17))) for row in np.delete(knn, 17, axis=0)]
    assert got == expected and knn[17].sum() == 0 and knn[:, 17].sum() == 0


def test_cosine_knn_bf16_pass_falls_back_to_exact_where_it_cannot_certify(monkeypatch):
    """Near-duplicate items: similarities differ by less than bf16 can resolve, so every row is recomputed."""
    monkeypatch.setattr(graphs, "fast_cpu_bf16", lambda: True)
    rng = np.random.default_rng(6)
    base = rng.normal(size=64)
    x = (base + 0.05 * rng.normal(size=(200, 64))).astype(np.float32)
    calls = []
    original = graphs._knn_candidates
    monkeypatch.setattr(graphs, "_knn_candidates", lambda *a, **kw: calls.append(kw) or original(*a, **kw))
    knn = graphs.cosine_knn(torch.from_numpy(x), k=4, block_rows=50)
    assert any(kw.get("only_rows") is not None for kw in calls)  # the exact fallback ran
    unit = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    sim = unit @ unit.T  # the contract: the fp32 top-k
    sim.fill_diagonal_(-float("inf"))
    expected = [set(row.tolist()) for row in torch.topk(sim, 4).indices]
    assert [set(np.flatnonzero(row)) for row in knn.toarray()] == expected
