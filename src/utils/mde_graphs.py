"""MDE's graphs: construction from the training data and features, an on-disk cache, and sparse products.

Built once at model construction (``src/models/mde.py``), never per batch, and never as a dense users x users
or items x items matrix, so that they scale to MMRec's Elec data set (192k users, 63k items):

- :func:`normalized_bipartite_adjacency`: eq. 2's :math:`D^{-1/2} A D^{-1/2}` of the user-item graph;
- :func:`cooccurrence_topk`: eq. 4's user-user graph, top-K users by common training items;
- :func:`cosine_knn`: eq. 4's item-item graph of one modality, top-K items by cosine similarity;
- :func:`row_normalize` / :func:`row_softmax`: the homogeneous graphs' edge weights (DRAGON's);
- :func:`symmetric_product` (eq. 2) and :func:`neighbour_sum` (eq. 4): the products, with exact cheap
  backward passes;
- :func:`cached_graph`: a homogeneous graph stored beside the data set, keyed by a hash of its inputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

logger = logging.getLogger(__name__)

GRAPH_CACHE_VERSION = 1  # bump when graph construction changes, so old cache files are never reused


def normalized_bipartite_adjacency(interactions: sp.spmatrix) -> sp.csr_matrix:
    """Eq. 2: :math:`D^{-1/2} A D^{-1/2}` of the user-item graph, nodes ordered users then items."""
    r = sp.csr_matrix(interactions, dtype=np.float32)
    r.data[:] = 1.0
    r.sum_duplicates()
    r.data[:] = 1.0
    adj = sp.bmat([[None, r], [r.T, None]], format="csr")
    degree = np.asarray(adj.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    np.power(degree, -0.5, out=inv_sqrt, where=degree > 0)  # isolated nodes (users without items) keep 0
    scale = sp.diags(inv_sqrt)
    return (scale @ adj @ scale).tocsr().astype(np.float32)


def _top_counts_per_row(block: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row of a CSR block of positive integer counts; ties go to the
    smaller column id. Linear time, no sort: per row, a count histogram gives the threshold count t (the
    largest t with at least k entries >= t); entries above t are kept, and entries equal to t in column
    order until the row has k."""
    block = block.tocsr()
    block.sort_indices()
    n_rows, nnz = block.shape[0], block.nnz
    if nnz == 0:
        return block
    counts = block.data.astype(np.int64)
    rows = np.repeat(np.arange(n_rows), np.diff(block.indptr))
    levels = int(counts.max()) + 2
    at_least = np.bincount(rows * levels + counts, minlength=n_rows * levels).reshape(n_rows, levels)
    at_least = np.cumsum(at_least[:, ::-1], axis=1)[:, ::-1]  # at_least[r, t] = #entries >= t
    threshold = (levels - 1) - np.argmax((at_least >= k)[:, ::-1], axis=1)
    threshold[at_least[:, 1] < k] = 1  # short rows keep everything
    above = np.take_along_axis(at_least, (threshold + 1)[:, None], axis=1).ravel()
    t = threshold[rows]
    tied = counts == t
    tied_rank = np.cumsum(tied) - 1
    first_tied = np.concatenate([[0], np.cumsum(tied)])[block.indptr[:-1]]
    tied_rank -= first_tied[rows]
    keep = (counts > t) | (tied & (tied_rank < (k - above)[rows]))
    return sp.csr_matrix(
        (
            block.data[keep],
            block.indices[keep],
            np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=n_rows))]),
        ),
        shape=block.shape,
    )


def cooccurrence_topk(interactions: sp.spmatrix, k: int, block_rows: int = 8192) -> sp.csr_matrix:
    """Eq. 4 (users): number of common training items between users, top-k per user, no self-loops.

    Computed as a sparse product :math:`R R^\\top` in row blocks, so no dense users x users matrix exists.
    """
    r = sp.csr_matrix(interactions, dtype=np.float32)
    r.sum_duplicates()
    r.data[:] = 1.0
    rt = r.T.tocsr()
    n_users = r.shape[0]
    blocks = []
    for start in range(0, n_users, block_rows):
        stop = min(start + block_rows, n_users)
        counts = (r[start:stop] @ rt).tocsr()
        own = np.repeat(np.arange(start, stop), np.diff(counts.indptr))
        counts.data[counts.indices == own] = 0  # no self-loops
        counts.eliminate_zeros()
        blocks.append(_top_counts_per_row(counts, k))
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0), dtype=np.float32)


KNN_CANDIDATE_MARGIN = 10  # extra candidates per row kept by the fast bf16 pass, re-ranked exactly
BF16_SIMILARITY_ERROR = 0.008  # bound on |bf16 cosine - exact cosine| for unit rows (2^-8 + 2^-9, rounded up)


def cosine_knn(features: torch.Tensor, k: int, block_rows: int = 4096) -> sp.csr_matrix:
    """Eq. 4 (items): top-k items by cosine similarity of the raw features, no self-loops, 0/1 entries.

    Exact, in row blocks (memory ``block_rows^2``, never items x items), each pair of blocks computed once
    (the similarity is symmetric). On a CPU with fast bf16 matrix units the block products run in bf16 to
    collect ``k + KNN_CANDIDATE_MARGIN`` candidates per row, which are then re-ranked with exact fp32
    similarities; a row whose k-th exact similarity does not beat the best excluded candidate's by more than
    the bf16 error bound is recomputed exactly, so the result equals the fp32 top-k. On CUDA (or without fast
    bf16) the products are fp32. All-zero feature rows have no neighbours and are nobody's neighbour;
    ``k`` larger than the number of candidates keeps every candidate.
    """
    x = features.detach().float()
    norms = x.norm(dim=1, keepdim=True)
    valid = norms.squeeze(1) > 0
    x = x / norms.clamp_min(1e-12)
    n, n_valid = x.shape[0], int(valid.sum())
    k_eff = min(k, n_valid - 1)
    if k_eff <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    width = min(k_eff + KNN_CANDIDATE_MARGIN, n_valid - 1)
    low_precision = x.device.type == "cpu" and width < n_valid - 1 and fast_cpu_bf16()
    candidates = _knn_candidates(x.bfloat16() if low_precision else x, valid, width, block_rows)
    candidates.index[~valid] = torch.arange(width, device=x.device)  # any distinct columns: dropped below
    top_index, top_sim = _rerank(x, candidates.index, k_eff)
    rows = torch.nonzero(valid).squeeze(1)
    if low_precision:  # certify each row against the best candidate the bf16 pass left out
        uncertain = rows[top_sim[rows, -1] <= candidates.sim[rows, -1] + BF16_SIMILARITY_ERROR]
        if len(uncertain):
            exact = _knn_candidates(x, valid, k_eff, block_rows, only_rows=uncertain)
            top_index[uncertain] = exact.index[uncertain]
    rows_np = rows.cpu().numpy().repeat(k_eff)
    cols_np = top_index[rows].reshape(-1).cpu().numpy()
    return sp.csr_matrix((np.ones(len(rows_np), dtype=np.float32), (rows_np, cols_np)), shape=(n, n))


class _Candidates(NamedTuple):
    sim: torch.Tensor  # [n, width] similarities, descending per row (-inf where fewer candidates)
    index: torch.Tensor  # [n, width]


def _knn_candidates(
    x: torch.Tensor, valid: torch.Tensor, width: int, block_rows: int, only_rows: torch.Tensor | None = None
) -> _Candidates:
    """The ``width`` most similar other valid items of every row, by block products of ``x`` (any dtype)."""
    n = x.shape[0]
    best = _Candidates(
        torch.full((n, width), -float("inf"), device=x.device),
        torch.zeros((n, width), dtype=torch.long, device=x.device),
    )
    starts = list(range(0, n, block_rows))
    if only_rows is not None:  # plain row blocks of the given rows against everything
        for part in only_rows.split(block_rows):
            sim = (x[part] @ x.T).float()
            sim[:, ~valid] = -float("inf")
            sim[torch.arange(len(part), device=x.device), part] = -float("inf")
            _merge_candidates(best, part, sim, 0)
        return best
    for bi, a in enumerate(starts):
        rows_a = torch.arange(a, min(a + block_rows, n), device=x.device)
        for b in starts[bi:]:
            rows_b = torch.arange(b, min(b + block_rows, n), device=x.device)
            sim = (x[rows_a] @ x[rows_b].T).float()
            sim[:, ~valid[rows_b]] = -float("inf")
            sim[~valid[rows_a], :] = -float("inf")
            if a == b:
                sim.fill_diagonal_(-float("inf"))
            _merge_candidates(best, rows_a, sim, b)
            if a != b:
                _merge_candidates(best, rows_b, sim.T, a)
    return best


def _merge_candidates(best: _Candidates, rows: torch.Tensor, sim: torch.Tensor, col_offset: int) -> None:
    """Merge a block of similarities (rows x block columns) into the running top-width of those rows."""
    width = best.sim.shape[1]
    values, index = torch.topk(sim, min(width, sim.shape[1]), dim=1)
    values = torch.cat([best.sim[rows], values], dim=1)
    index = torch.cat([best.index[rows], index + col_offset], dim=1)
    keep_values, keep = torch.topk(values, width, dim=1)
    best.sim[rows] = keep_values
    best.index[rows] = torch.gather(index, 1, keep)


def _rerank(x: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact fp32 similarities of each row to its candidates (a sampled product, no gather of rows);
    the top-k (index, similarity) per row."""
    n, width = candidates.shape
    cand = torch.sort(candidates, dim=1).values  # CSR column order
    crow = torch.arange(0, n * width + 1, width, device=x.device)
    pattern = _csr(crow, cand.reshape(-1), torch.zeros(n * width, device=x.device), (n, n))
    exact = torch.sparse.sampled_addmm(pattern, x, x.T, beta=0.0).values().view(n, width)
    top_sim, order = torch.topk(exact, k, dim=1)
    return torch.gather(cand, 1, order), top_sim


def fast_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX), where bf16 is ~2x fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def row_normalize(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    """Mean over each row's neighbours (DRAGON's normalisation of a k-regular kNN graph)."""
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv = np.zeros_like(degree)
    np.divide(1.0, degree, out=inv, where=degree > 0)
    return (sp.diags(inv) @ adjacency).tocsr().astype(np.float32)


def row_softmax(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    """Softmax over each row's stored entries (DRAGON's weighting of co-occurrence counts)."""
    a = adjacency.tocsr().astype(np.float64)
    out = a.copy()
    for_rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    if len(for_rows) == 0:
        return out.astype(np.float32)
    row_max = np.full(a.shape[0], -np.inf)
    np.maximum.at(row_max, for_rows, a.data)
    exp = np.exp(a.data - row_max[for_rows])
    row_sum = np.bincount(for_rows, weights=exp, minlength=a.shape[0])
    out.data = exp / row_sum[for_rows]
    return out.astype(np.float32)


def to_torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    """A scipy matrix as a float32 torch CSR tensor on the CPU (move it with ``.to(device)``)."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return _csr(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data.astype(np.float32)),
        matrix.shape,
    )


def symmetric_product(adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adjacency @ x`` for a symmetric sparse CSR ``adjacency``, whose backward is ``adjacency @ grad``.

    PyTorch's generic sparse backward is about 2.5x slower here.
    """
    return _SymmetricProduct.apply(adjacency, x)


class _SymmetricProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adjacency, x):
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.adjacency, grad)


class NeighbourLists(NamedTuple):
    """A homogeneous top-k graph as padded neighbour lists: row r's neighbours ``index[r]`` with ``weight[r]``.

    Rows with fewer than K neighbours are padded with their own id and weight 0. This form lets eq. 4 be
    computed for just the rows a batch needs.
    """

    index: torch.Tensor  # [n, K] long
    weight: torch.Tensor  # [n, K] float


def neighbour_lists(adjacency: sp.csr_matrix) -> NeighbourLists:
    """Convert a (row-normalised) top-k CSR graph to padded neighbour lists on the CPU."""
    a = adjacency.tocsr()
    n, counts = a.shape[0], np.diff(a.indptr)
    width = max(int(counts.max(initial=0)), 1)
    rows = np.repeat(np.arange(n), counts)
    slots = np.arange(a.nnz) - np.repeat(a.indptr[:-1], counts)
    index = np.repeat(np.arange(n, dtype=np.int64)[:, None], width, axis=1)
    weight = np.zeros((n, width), dtype=np.float32)
    index[rows, slots] = a.indices
    weight[rows, slots] = a.data
    return NeighbourLists(torch.from_numpy(index), torch.from_numpy(weight))


def stack_modalities(graphs: list[NeighbourLists]) -> NeighbourLists:
    """The M item graphs (one per modality) as one graph over the rows of the [n, M, d] item table viewed as
    [n * M, d]: row ``i * M + m`` has the neighbours ``j * M + m`` of item i in graph m, with their weights."""
    n_mod, width = len(graphs), max(g.index.shape[1] for g in graphs)
    index, weight = [], []
    for m, g in enumerate(graphs):
        pad = width - g.index.shape[1]  # padding: the row itself with weight 0, as in neighbour_lists
        index.append(torch.cat([g.index, g.index[:, :1].expand(-1, pad)], dim=1) * n_mod + m)
        weight.append(torch.cat([g.weight, g.weight.new_zeros(g.weight.shape[0], pad)], dim=1))
    return NeighbourLists(torch.stack(index, dim=1).reshape(-1, width), torch.stack(weight, dim=1).reshape(-1, width))


def neighbour_sum(h: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[r] = sum_k weight[r, k] * h[index[r, k]]``, with a sparse backward (see :class:`_NeighbourSum`)."""
    return _NeighbourSum.apply(h, index, weight)


class _NeighbourSum(torch.autograd.Function):
    """``out[r] = sum_k weight[r, k] * h[index[r, k]]`` as a sparse product, with a sparse backward.

    Both directions are CSR products, which are parallel and deterministic on the CPU (a scatter-add
    backward, as plain indexing has, is neither fast nor deterministic there).
    """

    @staticmethod
    def forward(ctx, h, index, weight):
        rows, width = index.shape
        ctx.save_for_backward(index, weight)
        ctx.n_source = h.shape[0]
        crow = torch.arange(0, rows * width + 1, width, device=h.device)
        return torch.sparse.mm(_csr(crow, index.reshape(-1), weight.reshape(-1), (rows, h.shape[0])), h)

    @staticmethod
    def backward(ctx, grad):
        index, weight = ctx.saved_tensors
        rows, width = index.shape
        cols = index.reshape(-1)
        sorted_cols, order = torch.sort(cols, stable=True)
        # row pointers of the transpose; searchsorted (unlike bincount) needs no device-to-host sync on CUDA
        crow = torch.searchsorted(sorted_cols, torch.arange(ctx.n_source + 1, device=grad.device))
        source_rows = torch.arange(rows, device=grad.device).repeat_interleave(width)[order]
        transpose = _csr(crow, source_rows, weight.reshape(-1)[order], (ctx.n_source, rows))
        return torch.sparse.mm(transpose, grad), None, None


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the operations used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def cached_graph(
    folder: str, kind: str, k: int, inputs: str, build: Callable[[], sp.csr_matrix], enabled: bool = True
) -> sp.csr_matrix:
    """Load a homogeneous graph from ``folder`` or build it (and store it there when ``enabled``).

    The file name covers the graph kind (and modality), k, the cache version and ``inputs``, a hash of
    everything the graph is built from (:func:`hash_sparse`, :func:`hash_tensor`).
    """
    key = hashlib.blake2b(f"{GRAPH_CACHE_VERSION}|{kind}|{k}|{inputs}".encode(), digest_size=12).hexdigest()
    path = os.path.join(folder, f"{kind}_k{k}_{key}.npz")
    if enabled and os.path.isfile(path):
        logger.info("MDE: loading %s graph from %s", kind, path)
        try:
            with open(path, "rb") as handle:  # closed even when the file is damaged
                return sp.load_npz(handle).tocsr()
        except Exception as exc:  # a cut-off or damaged file (zip, npy or format errors): build it again
            logger.warning(
                "MDE: the cached graph %s cannot be read (%s: %s); building it again", path, type(exc).__name__, exc
            )
    started = time.perf_counter()
    graph = build()
    seconds, degrees, cached = time.perf_counter() - started, np.diff(graph.indptr), False
    if enabled:
        try:
            os.makedirs(folder, exist_ok=True)
            tmp = path + f".tmp{os.getpid()}.npz"
            sp.save_npz(tmp, graph, compressed=False)
            os.replace(tmp, path)
            cached = True
        except OSError as exc:
            logger.warning(
                "MDE: could not cache the %s graph at %s (%s); it will be rebuilt next time", kind, path, exc
            )
    logger.info(
        "MDE: built %s graph (top-%d) in %.2fs: %d edges; %d of %d rows have fewer than %d neighbours (%d none)%s",
        kind,
        k,
        seconds,
        graph.nnz,
        int((degrees < k).sum()),
        graph.shape[0],
        k,
        int((degrees == 0).sum()),
        f"; cached at {path}" if cached else "",
    )
    return graph


def hash_sparse(matrix: sp.spmatrix) -> str:
    """A digest of a sparse matrix's shape and pattern (the values of a 0/1 interaction matrix add nothing)."""
    m = matrix.tocsr()
    m.sort_indices()
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(m.shape, dtype=np.int64).tobytes())
    h.update(m.indptr.astype(np.int64).tobytes())
    h.update(m.indices.astype(np.int64).tobytes())
    return h.hexdigest()


def hash_tensor(t: torch.Tensor) -> str:
    """A digest of a tensor's shape and float32 values."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(t.shape, dtype=np.int64).tobytes())
    h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------- eq. 4's graphs
def user_graph(interactions: sp.spmatrix, k: int, weighting: str, cache: str, use_cache: bool) -> sp.csr_matrix:
    """Eq. 4's user-user graph: each user's top-k co-occurring users, weighted by a row softmax of the counts
    (``softmax``, DRAGON) or the counts over their row sum (``mean``); the counts are cached in ``cache``."""
    counts = cached_graph(
        cache, "user_cooc", k, hash_sparse(interactions), lambda: cooccurrence_topk(interactions, k), use_cache
    )
    return row_softmax(counts) if weighting == "softmax" else row_normalize(counts)


def item_graph(features: torch.Tensor, k: int, modality: str, cache: str, use_cache: bool) -> sp.csr_matrix:
    """Eq. 4's item-item graph of one modality: each item's top-k cosine neighbours, rows normalised."""
    knn = cached_graph(
        cache, f"item_knn_{modality}", k, hash_tensor(features), lambda: cosine_knn(features, k), use_cache
    )
    return row_normalize(knn)
