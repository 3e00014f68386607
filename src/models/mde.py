# coding: utf-8
r"""MDE: Modality Discrimination Enhancement for Multi-modal Recommendation (Zhou, Wang, Zhan).

A plugin model for MMRec (``python main.py -m MDE -d baby``). Section II of the paper, equation by equation:

Inputs (eq. 1). Per modality :math:`m \in \{v, t\}` the item features :math:`E^i_m` are projected to ``d``
(``embedding_size``) by a learned projection; the user features :math:`E^u_m` are free, Xavier-initialised.

Heterogeneous graph (eq. 2-3), LightGCN over the symmetric-normalised user-item graph of the training data:

.. math::
    E_m^{l+1} = D^{-1/2} A D^{-1/2} E_m^l, \qquad E_m^0 = E_m^u \| E_m^i, \qquad
    \bar H_m = \frac{1}{L+1} \sum_{l=0}^{L} E_m^l

Homogeneous graphs (eq. 4): user-user co-occurrence (top ``user_knn_k``) and per-modality item-item cosine
kNN (top ``item_knn_k``); one convolution, :math:`H^*_m = A_m \bar H_m` (plus :math:`\bar H_m` when
``homogeneous_residual``, as DRAGON does).

Fusion (eq. 5): :math:`P = \mathrm{softmax}(W)`, :math:`h = P_v H^*_v \| P_t H^*_t`,
:math:`\hat y_{ui} = h_u^\top h_i`.

Modality Difference Amplification (eq. 6), :math:`H_{diff} = -|H^*_v - H^*_t| \odot W_{diff}`; Modality
Similarity Alignment (eq. 7), InfoNCE in both directions weighted by :math:`W_{cl}`; Node-Level Trade-off
(eq. 8), :math:`W_{diff} = |P_v - P_t|`, :math:`W_{cl} = 1 - |P_v - P_t|`.

Objective (eq. 9-11): :math:`L = L_g + L_v + L_t + L_{diff} + L_{cl} + \sigma_{reg} \|\Theta\|^2`.

Where the paper is ambiguous the choice is a config switch; README's "Paper to code" table lists each.
Everything here needs only torch, numpy and scipy, plus MMRec's ``common.abstract_recommender``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, fields
from typing import NamedTuple, Optional

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.abstract_recommender import GeneralRecommender

logger = logging.getLogger(__name__)

GRAPH_CACHE_VERSION = 1  # bump when graph construction changes, so old cache files are never reused
MIN_TEMPERATURE = 1e-3   # the smallest cl_temperature accepted


# --------------------------------------------------------------------------------------------------
# Hyperparameters: read from the config in one place
# --------------------------------------------------------------------------------------------------

_CHOICES = {
    "tradeoff": ("preference", "independent"),
    "diff_form": ("bounded", "literal"),
    "cl_negatives": ("batch", "all"),
    "cl_similarity": ("cosine", "dot"),
    "user_graph_weighting": ("softmax", "mean"),
    "feature_projection": ("linear", "mlp"),
    "reg_scope": ("batch", "all_parameters"),
}


@dataclass(frozen=True)
class MDEHyperParameters:
    """Every MDE setting, with the paper's symbol where it has one (see MDE.yaml for the documentation)."""

    embedding_size: int          # d
    n_layers: int                # L, heterogeneous LightGCN layers
    user_knn_k: int              # K for the user co-occurrence graph
    item_knn_k: int              # K for the item similarity graphs
    cl_weight: float             # sigma_cl
    diff_weight: float           # sigma_diff
    reg_weight: float            # sigma_reg
    cl_temperature: float        # tau
    use_mda: bool                # Table II: w/o MDA when False
    use_msa: bool                # Table II: w/o MSA when False
    use_nlt: bool                # Table II: w/o NLT when False (constant trade-off weights)
    constant_tradeoff_weight: float  # w/o NLT: W_diff = W_cl = this constant (1: unweighted; 0.5: even split)
    fixed_text_weight: Optional[float]  # Fig. 2 variant A: P_t = w_t, P_v = 1 - w_t for every node
    tradeoff: str                # "preference" (eq. 8) | "independent" (Fig. 2 variant B)
    tradeoff_grad: bool          # let gradients flow from L_diff / L_cl into the preferences
    diff_form: str               # "bounded" (stated intent, default) | "literal" (eq. 6 as printed)
    cl_negatives: str            # "batch" (the batch's items) | "all" (every item, as printed)
    cl_similarity: str           # "cosine" (default) | "dot" (eq. 7's h_v . h_t as printed)
    align_users: bool            # apply MDA / MSA to the batch's users too (paper: items only)
    homogeneous_residual: bool   # H* = H + A H (DRAGON) instead of H* = A H (eq. 4 as printed)
    user_graph_weighting: str    # co-occurrence edge weights: "softmax" of counts (DRAGON) | "mean"
    feature_projection: str      # "linear" | "mlp" (DRAGON's d_m -> 4d -> d)
    reg_scope: str               # "batch": the batch's layer-0 embeddings | "all_parameters": ||Theta||^2
    graph_cache: bool            # cache the homogeneous graphs on disk beside the dataset

    @classmethod
    def from_config(cls, config) -> "MDEHyperParameters":
        values = {}
        for field in fields(cls):
            name = field.name
            if name not in config:
                raise ValueError(f"MDE: hyperparameter '{name}' is missing from the configuration; "
                                 f"{where_to_set(name)} (`mde-mmrec install` copies the full MDE.yaml)")
            values[name] = _coerce(name, config[name], field.type)
        return cls(**values)

    def __post_init__(self):
        for name in ("embedding_size", "n_layers", "user_knn_k", "item_knn_k"):
            least = 0 if name == "n_layers" else 1
            if getattr(self, name) < least:
                raise ValueError(f"MDE: '{name}' must be an integer >= {least}, got {getattr(self, name)}; "
                                 f"{where_to_set(name)}")
        for name in ("cl_weight", "diff_weight", "reg_weight", "cl_temperature", "fixed_text_weight",
                     "constant_tradeoff_weight"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):   # NaN passes every < / <= check below
                raise ValueError(f"MDE: '{name}' must be a finite number, got {value}; {where_to_set(name)}")
        for name in ("cl_weight", "diff_weight", "reg_weight", "constant_tradeoff_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"MDE: '{name}' must be >= 0, got {getattr(self, name)}; {where_to_set(name)}")
        if self.cl_temperature < MIN_TEMPERATURE:   # tau 1e-30 gave a finite but meaningless 1e26 loss
            raise ValueError(f"MDE: 'cl_temperature' must be >= {MIN_TEMPERATURE} (InfoNCE temperatures in use are "
                             f"0.05-1; a smaller one blows eq. 7's logits up to meaningless sizes), got "
                             f"{self.cl_temperature}; {where_to_set('cl_temperature')}")
        if self.fixed_text_weight is not None and not 0.0 <= self.fixed_text_weight <= 1.0:
            raise ValueError(f"MDE: 'fixed_text_weight' must be null or in [0, 1], got {self.fixed_text_weight}; "
                             f"{where_to_set('fixed_text_weight')}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"MDE: '{name}' must be one of {', '.join(choices)}, got {getattr(self, name)!r}; "
                                 f"{where_to_set(name)}")


def where_to_set(name: str) -> str:
    """The fix part of an error message about hyperparameter ``name``."""
    return (f"set it in the checkout's src/configs/model/MDE.yaml or override it (main.py --{name}=VALUE; "
            f"mde-mmrec --set MDE:{name}=VALUE)")


def check_grid(get) -> None:
    """Check the hyperparameters of every grid point before any data is loaded (MMRec's patched quick_start
    calls this through utils/results_log.py); ``get(key)`` reads the config. Keys missing from the config are
    left to the model's own check at construction."""
    names = [f.name for f in fields(MDEHyperParameters)]
    base = {n: value for n in names if (value := get(n)) is not None}
    base.setdefault("fixed_text_weight", None)
    if set(base) != set(names):
        return
    keys = [k for k in (get("hyper_parameters") or []) if k in base and isinstance(base[k], list)]
    failures = []
    for combo in itertools.product(*(base[k] for k in keys)):
        point = dict(zip(keys, combo))
        try:
            MDEHyperParameters.from_config({**base, **point})
        except ValueError as exc:
            failures.append((point, str(exc)))
    if failures:   # name the grid point only when the error depends on it (some other point is valid)
        point, message = failures[0]
        some_valid = len(failures) < math.prod(len(base[k]) for k in keys)
        raise ValueError(f"{message} [grid point {point}]" if some_valid else message)


def _coerce(name, value, annotation):
    """Check one config value against its declared type; grid lists that reached the model are an error."""
    if isinstance(value, (list, tuple)):
        raise ValueError(f"MDE: '{name}' is a list {value!r}; list it in hyper_parameters to grid-search it, "
                         f"or give a single value: {where_to_set(name)}")
    kind = str(annotation)
    if isinstance(value, (bool, np.bool_)) and "bool" not in kind:     # True would read as 1
        raise ValueError(f"MDE: hyperparameter '{name}' is a boolean ({value}) where a number is expected; "
                         f"{where_to_set(name)}")
    try:
        if "Optional" in kind:
            return None if value is None else float(value)
        if kind in ("int", "<class 'int'>"):
            if float(value) != int(value):
                raise ValueError
            return int(value)
        if kind in ("float", "<class 'float'>"):
            return float(value)
        if kind in ("bool", "<class 'bool'>"):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError
            return bool(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"MDE: hyperparameter '{name}' has an invalid value {value!r} "
                         f"(expected {kind}); {where_to_set(name)}") from None


# --------------------------------------------------------------------------------------------------
# Graph construction (numpy / scipy / torch on the CPU, once at model construction)
# --------------------------------------------------------------------------------------------------

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
    at_least = np.cumsum(at_least[:, ::-1], axis=1)[:, ::-1]          # at_least[r, t] = #entries >= t
    threshold = (levels - 1) - np.argmax((at_least >= k)[:, ::-1], axis=1)
    threshold[at_least[:, 1] < k] = 1                                   # short rows keep everything
    above = np.take_along_axis(at_least, (threshold + 1)[:, None], axis=1).ravel()
    t = threshold[rows]
    tied = counts == t
    tied_rank = np.cumsum(tied) - 1
    first_tied = np.concatenate([[0], np.cumsum(tied)])[block.indptr[:-1]]
    tied_rank -= first_tied[rows]
    keep = (counts > t) | (tied & (tied_rank < (k - above)[rows]))
    return sp.csr_matrix((block.data[keep], block.indices[keep], np.concatenate([[0], np.cumsum(
        np.bincount(rows[keep], minlength=n_rows))])), shape=block.shape)


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


KNN_CANDIDATE_MARGIN = 10   # extra candidates per row kept by the fast bf16 pass, re-ranked exactly
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
    sim: torch.Tensor    # [n, width] similarities, descending per row (-inf where fewer candidates)
    index: torch.Tensor  # [n, width]


def _knn_candidates(x: torch.Tensor, valid: torch.Tensor, width: int, block_rows: int,
                    only_rows: Optional[torch.Tensor] = None) -> _Candidates:
    """The ``width`` most similar other valid items of every row, by block products of ``x`` (any dtype)."""
    n = x.shape[0]
    best = _Candidates(torch.full((n, width), -float("inf"), device=x.device),
                       torch.zeros((n, width), dtype=torch.long, device=x.device))
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


class SparseGraph:
    """A fixed sparse matrix ``A`` on a device, applied as ``A @ x`` with an exact, cheap backward.

    The backward is ``A^T @ grad``, computed with a pre-built transpose; PyTorch's generic sparse autograd
    is about 2.5x slower here.
    """

    def __init__(self, matrix: sp.csr_matrix, device: torch.device, symmetric: bool = False):
        self.shape = matrix.shape
        self.matrix = _torch_csr(matrix, device)
        self.transpose = self.matrix if symmetric else _torch_csr(matrix.T.tocsr(), device)

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return _SparseMatmul.apply(self.matrix, self.transpose, x)

    def to(self, device: torch.device) -> "SparseGraph":
        symmetric = self.transpose is self.matrix
        self.matrix = self.matrix.to(device)
        self.transpose = self.matrix if symmetric else self.transpose.to(device)
        return self


def _torch_csr(matrix: sp.csr_matrix, device) -> torch.Tensor:
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return _csr(torch.from_numpy(matrix.indptr.astype(np.int64)), torch.from_numpy(matrix.indices.astype(np.int64)),
                torch.from_numpy(matrix.data.astype(np.float32)), matrix.shape).to(device)


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix, transpose, x):
        ctx.transpose = transpose
        return torch.sparse.mm(matrix, x)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.transpose, grad)


# --------------------------------------------------------------------------------------------------
# The equations, as small pure functions
# --------------------------------------------------------------------------------------------------

def layer_mean_propagation(graph: SparseGraph, e0: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Eq. 2-3: mean of :math:`E^0 .. E^L` with :math:`E^{l+1} = \\hat A E^l`."""
    total, e = e0, e0
    for _ in range(n_layers):
        e = graph @ e  # eq. 2
        total = total + e
    return total / (n_layers + 1)  # eq. 3


class NeighbourLists(NamedTuple):
    """A homogeneous top-k graph as padded neighbour lists: row r's neighbours ``index[r]`` with ``weight[r]``.

    Rows with fewer than K neighbours are padded with their own id and weight 0. This form lets eq. 4 be
    computed for just the rows a batch needs.
    """

    index: torch.Tensor   # [n, K] long
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


def homogeneous_convolution(h: torch.Tensor, graph: NeighbourLists, rows: torch.Tensor, residual: bool
                            ) -> torch.Tensor:
    """Eq. 4 for ``rows``: :math:`(A_m \bar H_m)[rows]` (``residual``: plus :math:`\bar H_m[rows]`)."""
    index, weight = graph.index.index_select(0, rows), graph.weight.index_select(0, rows)
    if residual:  # the node itself as one more neighbour of weight 1
        index = torch.cat([rows.unsqueeze(1), index], dim=1)
        weight = torch.cat([torch.ones_like(weight[:, :1]), weight], dim=1)
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


def preference(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 5: node-level modality preferences :math:`P = \\mathrm{softmax}(W)`, shape [n, M]."""
    return torch.softmax(logits, dim=-1)


def fuse(per_modality: torch.Tensor, prefs: torch.Tensor) -> torch.Tensor:
    """Eq. 5: :math:`h = P_v h^*_v \\| P_t h^*_t` for ``per_modality`` [n, M, d] and ``prefs`` [n, M]."""
    return (per_modality * prefs.unsqueeze(-1)).flatten(1)


def tradeoff_weights(p_v: torch.Tensor, p_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8: :math:`W_{diff} = |P_v - P_t|`, :math:`W_{cl} = 1 - |P_v - P_t|` (one weight per node)."""
    gap = (p_v - p_t).abs()
    return gap, 1.0 - gap


def bpr_loss(users: torch.Tensor, pos_items: torch.Tensor, neg_items: torch.Tensor) -> torch.Tensor:
    """Eq. 9 / 10: mean over the batch of :math:`-\\log \\sigma(h_u^\\top h_i - h_u^\\top h_{i'})`."""
    margin = (users * pos_items).sum(-1) - (users * neg_items).sum(-1)
    return F.softplus(-margin).mean()  # softplus(-x) = -log sigmoid(x), stable for large |x|


def modality_gap_loss(h_v: torch.Tensor, h_t: torch.Tensor, w_diff: torch.Tensor, form: str = "bounded"
                      ) -> torch.Tensor:
    """Eq. 6, per node :math:`\\| -|h_v - h_t| \\odot w_{diff} \\|^2`, averaged over the nodes.

    ``literal``: that quantity as printed. Minimising it pulls the modalities TOGETHER, the opposite of the
    paper's stated aim. ``bounded`` (default): the stated aim on L2-normalised rows, the negative squared gap
    :math:`-w^2 \\|\\hat h_v - \\hat h_t\\|^2 \\in [-4 w^2, 0]`, so minimising it pushes the modalities apart
    and cannot diverge. The returned value is not yet multiplied by sigma_diff.
    """
    if form == "literal":
        h_diff = -(h_v - h_t).abs() * w_diff.unsqueeze(-1)  # eq. 6, H_diff
        return h_diff.pow(2).sum(-1).mean()
    gap = F.normalize(h_v, dim=-1) - F.normalize(h_t, dim=-1)
    return -(gap.pow(2).sum(-1) * w_diff.pow(2)).mean()


def alignment_loss(anchors_v: torch.Tensor, anchors_t: torch.Tensor, w_cl: torch.Tensor, temperature: float,
                   candidates_v: Optional[torch.Tensor] = None, candidates_t: Optional[torch.Tensor] = None,
                   positive_index: Optional[torch.Tensor] = None, similarity: str = "cosine") -> torch.Tensor:
    """Eq. 7: :math:`L^{v \\to t}_{cl} + L^{t \\to v}_{cl}`, InfoNCE on similarities over temperature.

    Each anchor node i contributes :math:`w_{cl,i} \\cdot (-\\log \\frac{\\exp(s(h^i_v, h^i_t)/\\tau)}
    {\\sum_{i'} \\exp(s(h^i_v, h^{i'}_t)/\\tau)})` and the symmetric t->v term; the result is the mean over
    anchors. Candidates default to the anchors themselves (in-batch negatives); otherwise
    ``positive_index[a]`` is the row of anchor ``a`` in the candidates (e.g. all items).
    ``similarity`` "cosine" (default) compares L2-normalised rows; "dot" is the raw dot product
    :math:`h_v \\cdot h_t` as printed. The returned value is not yet multiplied by sigma_cl.
    """
    if similarity not in _CHOICES["cl_similarity"]:
        raise ValueError(f"alignment_loss: similarity must be one of {_CHOICES['cl_similarity']}, got {similarity!r}")

    def rows(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if similarity == "cosine" else x

    a_v, a_t = rows(anchors_v), rows(anchors_t)
    if candidates_v is None:
        c_v, c_t = a_v, a_t
        positive_index = torch.arange(a_v.shape[0], device=a_v.device)
    else:
        c_v, c_t = rows(candidates_v), rows(candidates_t)
    v_to_t = F.cross_entropy(a_v @ c_t.T / temperature, positive_index, reduction="none")
    t_to_v = F.cross_entropy(a_t @ c_v.T / temperature, positive_index, reduction="none")
    return (w_cl * (v_to_t + t_to_v)).mean()


class MDEEmbeddings(NamedTuple):
    """What forward produces for the requested rows (all users / items unless rows were given)."""

    users: torch.Tensor          # H*_u per modality [b_u, M, d]
    items: torch.Tensor          # H*_i per modality [b_i, M, d]
    users_fused: torch.Tensor    # h_u [b_u, M*d] (eq. 5)
    items_fused: torch.Tensor    # h_i [b_i, M*d]
    user_prefs: torch.Tensor     # P_u [b_u, M]
    item_prefs: torch.Tensor     # P_i [b_i, M]
    item_e0: torch.Tensor        # projected item features E^0_i [b_i, M*d] (eq. 1), for the regulariser
    users_bar: torch.Tensor      # H-bar_u per modality [b_u, M, d] (eq. 3)
    items_bar: torch.Tensor      # H-bar_i per modality [b_i, M, d] (eq. 3)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------

class MDE(GeneralRecommender):
    """MDE for MMRec. ``calculate_loss`` returns ``(L_g, L_v, L_t, L_diff, L_cl, L_reg)`` (eq. 11's terms)."""

    MODALITIES = (("v", "vision_feature_file"), ("t", "text_feature_file"))
    MODALITY_NAMES = {"v": "image", "t": "text"}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hp = hp = MDEHyperParameters.from_config(config)
        self.dataset_path = os.path.abspath(str(config["data_path"]) + str(config["dataset"]))
        self.inter_file = os.path.join(self.dataset_path, str(config["inter_file_name"]))
        self.feature_files = {m: os.path.join(self.dataset_path, str(config[key])) for m, key in self.MODALITIES}

        features = {m: f for m, f in (("v", self.v_feat), ("t", self.t_feat)) if f is not None}
        for m, feat in features.items():
            self._check_features(m, feat)
        self.modalities = tuple(features)
        self.two_modalities = len(self.modalities) == 2
        if not self.two_modalities:
            missing = [m for m, _ in self.MODALITIES if m not in features]
            logger.warning("MDE: only the %s modality is available (%s); running as a single-modality model with "
                           "MDA and MSA off (fixed_text_weight and tradeoff have no effect)",
                           self.MODALITY_NAMES[self.modalities[0]],
                           ", ".join(self._missing_feature_text(m, config) for m in missing))
        self.use_mda = hp.use_mda and self.two_modalities
        self.use_msa = hp.use_msa and self.two_modalities
        d, n_mod = hp.embedding_size, len(self.modalities)

        # eq. 1: item feature projections and free user features, per modality
        self.register_buffer("item_features_v", features.get("v"), persistent=False)
        self.register_buffer("item_features_t", features.get("t"), persistent=False)
        self.projections = nn.ModuleDict({m: self._projection(features[m].shape[1], d) for m in self.modalities})
        self.user_features = nn.Parameter(torch.empty(self.n_users, n_mod * d))
        nn.init.xavier_uniform_(self.user_features)

        # eq. 5: preference logits W (absent in Fig. 2 variant A, where P is fixed)
        if hp.fixed_text_weight is None and n_mod > 1:
            self.user_pref_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_users, n_mod)))
            self.item_pref_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_items, n_mod)))
        # Fig. 2 variant B: trade-off weights learned independently of the preferences
        if hp.tradeoff == "independent":
            self.user_tradeoff_logits = nn.Parameter(torch.zeros(self.n_users))
            self.item_tradeoff_logits = nn.Parameter(torch.zeros(self.n_items))

        # eq. 2-4: graphs, built once here (the homogeneous ones cached on disk)
        interactions = dataset.inter_matrix(form="csr").astype(np.float32)
        self.ui_graph = SparseGraph(normalized_bipartite_adjacency(interactions), self.device, symmetric=True)
        user_graph = self._cached_graph("user_cooc", hp.user_knn_k, _hash_sparse(interactions),
                                        lambda: cooccurrence_topk(interactions, hp.user_knn_k))
        weighting = row_softmax if hp.user_graph_weighting == "softmax" else row_normalize
        self._register_neighbours("user_graph", weighting(user_graph))
        for m in self.modalities:
            knn = self._cached_graph(f"item_knn_{m}", hp.item_knn_k, _hash_tensor(features[m]),
                                     lambda f=features[m]: cosine_knn(f, hp.item_knn_k))
            self._register_neighbours(f"item_graph_{m}", row_normalize(knn))
        self._eval_cache = None
        logger.info("MDE: MMRec's train_loss1..6 are L_g, L_v, L_t (eq. 9, 10), sigma_diff * L_diff (eq. 6), "
                    "sigma_cl * L_cl (eq. 7) and sigma_reg * ||Theta||^2 (eq. 11), already weighted: the loss is "
                    "their sum")

    # ---- construction helpers ----

    def _missing_feature_text(self, modality: str, config) -> str:
        key = dict(self.MODALITIES)[modality]
        if not config[key]:
            return f"no {key} in the data set's yaml"
        return f"{self.feature_files[modality]} missing"

    def _check_features(self, modality: str, feat: torch.Tensor) -> None:
        path = self.feature_files[modality]
        if feat.dim() != 2 or feat.shape[0] != self.n_items or feat.shape[1] == 0:
            raise ValueError(f"MDE: {path} has shape {tuple(feat.shape)}, expected ({self.n_items}, dim >= 1): one row "
                             f"per item id 0..{self.n_items - 1}, since MMRec counts items as the largest itemID in "
                             f"{self.inter_file} + 1. If the ids there are offset, or the last items have no "
                             f"interaction, renumber them 0..n-1 like the feature rows; else regenerate this file")
        if not torch.isfinite(feat).all():
            bad = int((~torch.isfinite(feat)).any(dim=1).sum())
            raise ValueError(f"MDE: {path} contains NaN or inf in {bad} item rows; replace them (e.g. with zeros) "
                             f"and rerun")
        if self.n_items > 1 and torch.equal(feat.amin(dim=0), feat.amax(dim=0)):   # every row the same vector
            what = "all zero" if not feat[0].any() else "identical"
            logger.warning("MDE: every row of %s is %s: this modality tells no two items apart, and its item-item "
                           "graph (eq. 4) %s; check the file, or leave the modality out (remove its key from the data "
                           "set's yaml: MDE then runs on the other one)", path, what,
                           "has no edges" if what == "all zero" else "links arbitrary items")

    def _projection(self, in_dim: int, d: int) -> nn.Module:
        if self.hp.feature_projection == "mlp":  # DRAGON's projection
            module = nn.Sequential(nn.Linear(in_dim, 4 * d), nn.LeakyReLU(), nn.Linear(4 * d, d))
        else:
            module = nn.Linear(in_dim, d)
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        return module

    def _register_neighbours(self, name: str, adjacency: sp.csr_matrix) -> None:
        lists = neighbour_lists(adjacency)
        self.register_buffer(f"{name}_index", lists.index.to(self.device), persistent=False)
        self.register_buffer(f"{name}_weight", lists.weight.to(self.device), persistent=False)

    def neighbours(self, name: str) -> NeighbourLists:
        """The homogeneous graph ``user_graph`` or ``item_graph_<m>`` as neighbour lists."""
        return NeighbourLists(getattr(self, f"{name}_index"), getattr(self, f"{name}_weight"))

    def _cached_graph(self, kind: str, k: int, input_hash: str, build) -> sp.csr_matrix:
        """Load a homogeneous graph from ``<dataset>/mde_graphs/`` or build and store it.

        The key covers the graph kind (and modality), k, the cache version and a hash of every input.
        """
        key = hashlib.blake2b(f"{GRAPH_CACHE_VERSION}|{kind}|{k}|{input_hash}".encode(), digest_size=12).hexdigest()
        path = os.path.join(self.dataset_path, "mde_graphs", f"{kind}_k{k}_{key}.npz")
        if self.hp.graph_cache and os.path.isfile(path):
            logger.info("MDE: loading %s graph from %s", kind, path)
            try:
                with open(path, "rb") as handle:   # closed even when the file is damaged
                    return sp.load_npz(handle).tocsr()
            except Exception as exc:  # a cut-off or damaged file (zip, npy or format errors): build it again
                logger.warning("MDE: the cached graph %s cannot be read (%s: %s); building it again",
                               path, type(exc).__name__, exc)
        started = time.perf_counter()
        graph = build()
        seconds, degrees, cached = time.perf_counter() - started, np.diff(graph.indptr), False
        if self.hp.graph_cache:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = path + f".tmp{os.getpid()}.npz"
                sp.save_npz(tmp, graph, compressed=False)
                os.replace(tmp, path)
                cached = True
            except OSError as exc:
                logger.warning("MDE: could not cache the %s graph at %s (%s); it will be rebuilt next time",
                               kind, path, exc)
        logger.info("MDE: built %s graph (top-%d) in %.2fs: %d edges; %d of %d rows have fewer than %d neighbours "
                    "(%d none)%s", kind, k, seconds, graph.nnz, int((degrees < k).sum()), graph.shape[0], k,
                    int((degrees == 0).sum()), f"; cached at {path}" if cached else "")
        return graph

    # ---- forward: eq. 1-5 ----

    def _item_features(self, modality: str) -> torch.Tensor:
        return self.item_features_v if modality == "v" else self.item_features_t

    def _preferences(self, logits_name: str, rows: torch.Tensor) -> torch.Tensor:
        """Eq. 5's P for some users or items, or the fixed preference of Fig. 2 variant A."""
        if len(self.modalities) == 1:
            return torch.ones(len(rows), 1, device=rows.device)
        if self.hp.fixed_text_weight is not None:
            w_t = self.hp.fixed_text_weight
            return torch.tensor([1.0 - w_t, w_t], device=rows.device).expand(len(rows), 2)
        return preference(getattr(self, logits_name).index_select(0, rows))

    def forward(self, user_rows: Optional[torch.Tensor] = None, item_rows: Optional[torch.Tensor] = None
                ) -> MDEEmbeddings:
        """Eq. 1-5. The graph propagation is full; eq. 4 and 5 are computed only for the requested rows."""
        d, n_mod = self.hp.embedding_size, len(self.modalities)
        device = self.user_features.device
        user_rows = torch.arange(self.n_users, device=device) if user_rows is None else user_rows
        item_rows = torch.arange(self.n_items, device=device) if item_rows is None else item_rows
        item_e0 = torch.cat([self.projections[m](self._item_features(m)) for m in self.modalities], dim=1)  # eq. 1
        e0 = torch.cat([self.user_features, item_e0], dim=0)
        h_bar = layer_mean_propagation(self.ui_graph, e0, self.hp.n_layers)  # eq. 2-3, all modalities at once
        users_bar, items_bar = h_bar[:self.n_users], h_bar[self.n_users:]
        residual = self.hp.homogeneous_residual
        users = homogeneous_convolution(users_bar, self.neighbours("user_graph"), user_rows, residual)  # eq. 4
        items = torch.cat([homogeneous_convolution(items_bar[:, j * d:(j + 1) * d], self.neighbours(f"item_graph_{m}"),
                                                   item_rows, residual)
                           for j, m in enumerate(self.modalities)], dim=1)  # eq. 4, per modality
        users, items = users.view(-1, n_mod, d), items.view(-1, n_mod, d)
        user_prefs = self._preferences("user_pref_logits", user_rows)
        item_prefs = self._preferences("item_pref_logits", item_rows)
        return MDEEmbeddings(users, items, fuse(users, user_prefs), fuse(items, item_prefs),  # eq. 5
                             user_prefs, item_prefs, item_e0.index_select(0, item_rows),
                             users_bar.index_select(0, user_rows).view(-1, n_mod, d),
                             items_bar.index_select(0, item_rows).view(-1, n_mod, d))

    # ---- losses: eq. 6-11 ----

    def _node_tradeoff(self, prefs: torch.Tensor, tradeoff_logits: Optional[torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 8 for some nodes (or the ablations: a constant without NLT; variant B's own weights)."""
        if not self.hp.use_nlt:
            constant = prefs.new_full((prefs.shape[0],), self.hp.constant_tradeoff_weight)
            return constant, constant
        if tradeoff_logits is not None:  # Fig. 2 variant B
            w = torch.sigmoid(tradeoff_logits)
            return w, 1.0 - w
        if not self.hp.tradeoff_grad:
            prefs = prefs.detach()
        return tradeoff_weights(prefs[:, 0], prefs[:, 1])

    def _discrimination_losses(self, side: str, table: torch.Tensor, prefs: torch.Tensor, anchors: torch.Tensor,
                               node_ids: torch.Tensor, all_candidates: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """sigma_diff * L_diff (eq. 6) and sigma_cl * L_cl (eq. 7) for the ``anchors`` rows of ``table``
        (``side`` "user" or "item"; ``node_ids`` are the anchors' user / item ids)."""
        zero = table.new_zeros(())
        logits = getattr(self, f"{side}_tradeoff_logits", None)
        w_diff, w_cl = self._node_tradeoff(prefs.index_select(0, anchors),
                                           None if logits is None else logits.index_select(0, node_ids))
        anchor_rows = table.index_select(0, anchors)
        h_v, h_t = anchor_rows[:, 0], anchor_rows[:, 1]
        diff = self.hp.diff_weight * modality_gap_loss(h_v, h_t, w_diff, self.hp.diff_form) if self.use_mda else zero
        if not self.use_msa:
            return diff, zero
        candidates = (table[:, 0], table[:, 1], anchors) if all_candidates else (None, None, None)
        cl = alignment_loss(h_v, h_t, w_cl, self.hp.cl_temperature, *candidates,  # eq. 7
                            similarity=self.hp.cl_similarity)
        return diff, self.hp.cl_weight * cl

    def _regularization(self, emb: MDEEmbeddings, users, pos, neg, i, j) -> torch.Tensor:
        r"""Eq. 11's :math:`\sigma_{reg} \|\Theta\|^2` (scope: see ``reg_scope``).

        ``batch`` (default): squared layer-0 embeddings and preference logits of the batch's (user, positive,
        negative) triples, divided by the batch size (LightGCN's convention). ``i``/``j`` index ``emb``'s rows.
        """
        if self.hp.reg_weight == 0:
            return self.user_features.new_zeros(())
        if self.hp.reg_scope == "all_parameters":
            return self.hp.reg_weight * sum(p.pow(2).sum() for p in self.parameters())

        def squares(table: torch.Tensor, *index: torch.Tensor) -> torch.Tensor:
            return sum(table.index_select(0, rows).pow(2).sum() for rows in index)

        total = squares(self.user_features, users) + squares(emb.item_e0, i, j)
        if hasattr(self, "user_pref_logits"):
            total = total + squares(self.user_pref_logits, users) + squares(self.item_pref_logits, pos, neg)
        return self.hp.reg_weight * total / users.shape[0]

    def calculate_loss(self, interaction):
        users, pos, neg = interaction[0], interaction[1], interaction[2]
        batch = users.shape[0]
        user_rows, u = torch.unique(users, return_inverse=True)
        if self.use_msa and self.hp.cl_negatives == "all":
            item_rows, ij = torch.arange(self.n_items, device=pos.device), torch.cat([pos, neg])
        else:
            item_rows, ij = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        i, j = ij[:batch], ij[batch:]
        emb = self.forward(user_rows, item_rows)
        # index_select rather than t[idx] throughout: its backward is deterministic on multi-threaded CPUs
        users_fused, items_fused = emb.users_fused.index_select(0, u), emb.items_fused.index_select(0, ij)
        l_g = bpr_loss(users_fused, items_fused[:batch], items_fused[batch:])  # eq. 9
        users_m, items_m = emb.users.index_select(0, u), emb.items.index_select(0, ij)
        l_modal = {m: bpr_loss(users_m[:, k], items_m[:batch, k], items_m[batch:, k])  # eq. 10 (L_v, L_t)
                   for k, m in enumerate(self.modalities)}
        zero = l_g.new_zeros(())
        l_diff = l_cl = zero
        if self.use_mda or self.use_msa:
            anchors = torch.unique(i)  # the batch's positive items
            l_diff, l_cl = self._discrimination_losses("item", emb.items, emb.item_prefs, anchors, item_rows[anchors],
                                                       all_candidates=self.hp.cl_negatives == "all")
            if self.hp.align_users:
                anchors = torch.arange(len(user_rows), device=users.device)
                u_diff, u_cl = self._discrimination_losses("user", emb.users, emb.user_prefs, anchors, user_rows,
                                                           all_candidates=False)
                l_diff, l_cl = l_diff + u_diff, l_cl + u_cl
        l_reg = self._regularization(emb, users, pos, neg, i, j)
        return l_g, l_modal.get("v", zero), l_modal.get("t", zero), l_diff, l_cl, l_reg  # eq. 11: MMRec sums

    # ---- evaluation ----

    def train(self, mode: bool = True):
        self._eval_cache = None  # entering training (or re-entering eval) never reuses old embeddings
        if mode and hasattr(self, "item_pref_logits") and self.hp.tradeoff == "preference":   # once per epoch
            self._log_tradeoff()
        return super().train(mode)

    @torch.no_grad()
    def _log_tradeoff(self) -> None:
        """The mean trade-off weight W_diff (eq. 8) of items and users, and the items' mean text preference."""
        item_prefs, user_prefs = preference(self.item_pref_logits), preference(self.user_pref_logits)
        w_item, w_user = (tradeoff_weights(p[:, 0], p[:, 1])[0].mean().item() for p in (item_prefs, user_prefs))
        logger.info("MDE: mean W_diff = |P_v - P_t| (eq. 8): items %.4f, users %.4f; mean P_t: items %.4f",
                    w_item, w_user, item_prefs[:, 1].mean().item())

    def _parameters_version(self) -> tuple:
        return tuple(p._version for p in self.parameters())

    def full_sort_predict(self, interaction):
        """Scores :math:`h_u^\top h_i` of the given users for all items; embeddings computed once per pass."""
        version = self._parameters_version()
        if self._eval_cache is None or self._eval_cache[0] != version:
            with torch.no_grad():
                emb = self.forward()
            self._eval_cache = (version, emb.users_fused, emb.items_fused)
        _, users_fused, items_fused = self._eval_cache
        return users_fused[interaction[0]] @ items_fused.T

    def _apply(self, fn, *args, **kwargs):
        """Move the sparse user-item graph along with the parameters and buffers on ``.to(device)``."""
        result = super()._apply(fn, *args, **kwargs)
        if hasattr(self, "ui_graph"):
            self.ui_graph.to(self.user_features.device)
            self.device = self.user_features.device
            self._eval_cache = None
        return result


def _hash_sparse(matrix: sp.csr_matrix) -> str:
    m = matrix.tocsr()
    m.sort_indices()
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(m.shape, dtype=np.int64).tobytes())
    h.update(m.indptr.astype(np.int64).tobytes())
    h.update(m.indices.astype(np.int64).tobytes())
    return h.hexdigest()


def _hash_tensor(t: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(t.shape, dtype=np.int64).tobytes())
    h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
