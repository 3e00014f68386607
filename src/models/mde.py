r"""MDE: Modality Discrimination Enhancement for Multi-modal Recommendation (Zhou, Wang, Zhan).

A plugin model for MMRec (``python main.py -m MDE -d baby``), written to be read beside Section II of the
paper. For each modality :math:`m \in \{v, t\}` (image, text):

.. math::
    E_m^0 = E_m^u \| E_m^i, \qquad E_m^{l+1} = D^{-1/2} A D^{-1/2} E_m^l, \qquad
    \bar H_m = \frac{1}{L+1} \sum_{l=0}^{L} E_m^l                                  \quad (2, 3)

    H^*_m = A_m \bar H_m \quad \text{(user co-occurrence / item kNN graph of } m\text{)}    \quad (4)

    P = \mathrm{softmax}(W), \qquad h = P_v H^*_v \| P_t H^*_t, \qquad \hat y_{ui} = h_u^\top h_i  \quad (5)

    L_{diff} = \sigma_{diff} \| -|H^*_v - H^*_t| \odot W_{diff} \|^2                 \quad (6)

    L_{cl} = \sigma_{cl} (L_{cl}^{v \to t} + L_{cl}^{t \to v}) \text{ (InfoNCE, weighted by } W_{cl})  \quad (7)

    W_{diff} = |P_v - P_t|, \qquad W_{cl} = 1 - |P_v - P_t|                           \quad (8)

    L = L_g + L_v + L_t + L_{diff} + L_{cl} + \sigma_{reg} \|\Theta\|^2            \quad (9\text{-}11)

The item features :math:`E^i_m` are projected to ``embedding_size`` by a learned projection; the user
features :math:`E^u_m` are free and Xavier-initialised. Where the paper is ambiguous, a key of MDE.yaml
chooses the reading (``HYPERPARAMETERS`` below lists each; docs/paper-to-code.md of mde-mmrec gives the
reasons). The graphs are built once, at construction, by ``utils/mde_graphs.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from common.abstract_recommender import GeneralRecommender
from utils import mde_graphs as graphs
from utils import model_settings
from utils.data_checks import check_feature_tensors
from utils.model_settings import Setting

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Hyperparameters: one table (utils/model_settings.py reads and checks it and words every error)
# ----------------------------------------------------------------------------------------------------------

HYPERPARAMETERS: dict[str, Setting] = {
    "embedding_size": Setting(int, "d", least=1),
    "n_layers": Setting(int, "L, LightGCN layers on the user-item graph (eq. 2-3)", least=0),
    "user_knn_k": Setting(int, "K of the user co-occurrence graph (eq. 4)", least=1),
    "item_knn_k": Setting(int, "K of the item similarity graphs (eq. 4)", least=1),
    "cl_weight": Setting(float, "sigma_cl (eq. 7)", least=0),
    "diff_weight": Setting(float, "sigma_diff (eq. 6)", least=0),
    "reg_weight": Setting(float, "sigma_reg (eq. 11)", least=0),
    "cl_temperature": Setting(float, "tau (eq. 7); smaller values blow its logits up", least=1e-3),
    "use_mda": Setting(bool, "False: Table II's w/o MDA"),
    "use_msa": Setting(bool, "False: Table II's w/o MSA"),
    "use_nlt": Setting(bool, "False: Table II's w/o NLT (no node-level trade-off)"),
    # w/o NLT: W_diff = W_cl = the constant; null: every node gets the mean W_diff of all nodes, 1 minus it as W_cl
    "constant_tradeoff_weight": Setting(float, "w/o NLT's trade-off weight", least=0, nullable=True),
    "fixed_text_weight": Setting(float, "Fig. 2 variant A: P_t = w_t for every node", least=0, most=1, nullable=True),
    "tradeoff": Setting(str, "eq. 8, or Fig. 2 variant B's learned weights", choices=("preference", "independent")),
    "tradeoff_grad": Setting(bool, "let L_diff and L_cl reach the preferences through W_diff and W_cl"),
    "diff_form": Setting(str, "eq. 6 pushing normalised rows apart, or as printed", choices=("bounded", "literal")),
    "cl_negatives": Setting(str, "eq. 7's negatives: the batch's items, or every item", choices=("batch", "all")),
    "cl_similarity": Setting(str, "eq. 7's similarity", choices=("cosine", "dot")),
    "align_users": Setting(bool, "apply MDA and MSA to the batch's users too"),
    "homogeneous_residual": Setting(bool, "eq. 4 as H* = H + A H (DRAGON) instead of H* = A H"),
    "user_graph_weighting": Setting(
        str, "softmax of co-occurrence counts, or counts / sum", choices=("softmax", "mean")
    ),
    "feature_projection": Setting(str, "mlp: DRAGON's d_m -> 4d -> d", choices=("linear", "mlp")),
    "reg_scope": Setting(str, "eq. 11's Theta: the batch's rows, or all", choices=("batch", "all_parameters")),
    "graph_cache": Setting(bool, "cache the homogeneous graphs in <data>/<dataset>/mde_graphs/"),
    "compile_losses": Setting(bool, "fuse eq. 6-11's batch losses with torch.compile (fewer kernel launches)"),
}


def check_grid(get) -> None:
    """Every grid point's MDE settings, checked before any data is loaded (MMRec's patched quick_start calls
    this through utils/results_log.py; ``get(key)`` reads the config)."""
    model_settings.check_grid("MDE", HYPERPARAMETERS, get)


# ----------------------------------------------------------------------------------------------------------
# The equations, as small pure functions
# ----------------------------------------------------------------------------------------------------------


def layer_mean_propagation(adjacency: torch.Tensor, e0: torch.Tensor, n_layers: int) -> torch.Tensor:
    r"""Eq. 2-3: mean of :math:`E^0 .. E^L` with :math:`E^{l+1} = \hat A E^l` (``adjacency``: :math:`\hat A`)."""
    total, e = e0, e0
    for _ in range(n_layers):
        e = graphs.symmetric_product(adjacency, e)  # eq. 2
        total = total + e
    return total / (n_layers + 1)  # eq. 3


def homogeneous_convolution(
    h: torch.Tensor, graph: graphs.NeighbourLists, rows: torch.Tensor, residual: bool
) -> torch.Tensor:
    r"""Eq. 4 for ``rows``: :math:`(A_m \bar H_m)[rows]` (``residual``: plus :math:`\bar H_m[rows]`)."""
    index, weight = graph.index.index_select(0, rows), graph.weight.index_select(0, rows)
    if residual:  # the node itself as one more neighbour of weight 1
        index = torch.cat([rows.unsqueeze(1), index], dim=1)
        weight = torch.cat([torch.ones_like(weight[:, :1]), weight], dim=1)
    return graphs.neighbour_sum(h, index, weight)


def preference(logits: torch.Tensor) -> torch.Tensor:
    r"""Eq. 5: node-level modality preferences :math:`P = \mathrm{softmax}(W)`, shape [n, M]."""
    return torch.softmax(logits, dim=-1)


def fuse(per_modality: torch.Tensor, prefs: torch.Tensor) -> torch.Tensor:
    r"""Eq. 5: :math:`h = P_v h^*_v \| P_t h^*_t` for ``per_modality`` [n, M, d] and ``prefs`` [n, M]."""
    return (per_modality * prefs.unsqueeze(-1)).flatten(1)


def tradeoff_weights(p_v: torch.Tensor, p_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Eq. 8: :math:`W_{diff} = |P_v - P_t|`, :math:`W_{cl} = 1 - |P_v - P_t|` (one weight per node)."""
    gap = (p_v - p_t).abs()
    return gap, 1.0 - gap


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    r"""Eq. 9 / 10: mean over the batch (dim 0) of :math:`-\log \sigma(\hat y_{ui} - \hat y_{ui'})`, from the
    scores of the positive and the negative items (one loss per column for [batch, M] scores)."""
    return F.softplus(neg_scores - pos_scores).mean(0)  # softplus(-x) = -log sigmoid(x), stable for large |x|


def modality_gap_loss(
    h_v: torch.Tensor, h_t: torch.Tensor, w_diff: torch.Tensor, form: str = "bounded"
) -> torch.Tensor:
    r"""Eq. 6, per node :math:`\| -|h_v - h_t| \odot w_{diff} \|^2`, averaged over the nodes.

    ``literal``: that quantity as printed. Minimising it pulls the modalities TOGETHER, the opposite of the
    paper's stated aim. ``bounded`` (default): the stated aim on L2-normalised rows, the negative squared gap
    :math:`-w^2 \|\hat h_v - \hat h_t\|^2 \in [-4 w^2, 0]`, so minimising it pushes the modalities apart
    and cannot diverge. The returned value is not yet multiplied by sigma_diff.
    """
    if form == "literal":
        h_diff = -(h_v - h_t).abs() * w_diff.unsqueeze(-1)  # eq. 6, H_diff
        return h_diff.pow(2).sum(-1).mean()
    gap = F.normalize(h_v, dim=-1) - F.normalize(h_t, dim=-1)
    return -(gap.pow(2).sum(-1) * w_diff.pow(2)).mean()


def alignment_loss(
    anchors_v: torch.Tensor, anchors_t: torch.Tensor, w_cl: torch.Tensor, temperature: float,
    candidates_v: torch.Tensor | None = None, candidates_t: torch.Tensor | None = None,
    positive_index: torch.Tensor | None = None, similarity: str = "cosine",
) -> torch.Tensor:  # fmt: skip
    r"""Eq. 7: :math:`L^{v \to t}_{cl} + L^{t \to v}_{cl}`, InfoNCE on similarities over temperature.

    Each anchor node i contributes :math:`w_{cl,i} \cdot (-\log \frac{\exp(s(h^i_v, h^i_t)/\tau)}
    {\sum_{i'} \exp(s(h^i_v, h^{i'}_t)/\tau)})` and the symmetric t->v term; the result is the mean over
    anchors. Candidates default to the anchors themselves (in-batch negatives); otherwise
    ``positive_index[a]`` is the row of anchor ``a`` in the candidates (e.g. all items).
    ``similarity`` "cosine" (default) compares L2-normalised rows; "dot" is the raw dot product
    :math:`h_v \cdot h_t` as printed. The returned value is not yet multiplied by sigma_cl.
    """
    if similarity not in HYPERPARAMETERS["cl_similarity"].choices:
        raise ValueError(f"alignment_loss: similarity must be cosine or dot, got {similarity!r}")

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

    users: torch.Tensor  # H*_u per modality [b_u, M, d] (eq. 4)
    items: torch.Tensor  # H*_i per modality [b_i, M, d]
    users_fused: torch.Tensor  # h_u [b_u, M*d] (eq. 5)
    items_fused: torch.Tensor  # h_i [b_i, M*d]
    user_prefs: torch.Tensor  # P_u [b_u, M]
    item_prefs: torch.Tensor  # P_i [b_i, M]
    item_e0: torch.Tensor  # projected item features E^0_i [b_i, M*d] (eq. 1), for the regulariser
    users_bar: torch.Tensor  # H-bar_u per modality [b_u, M, d] (eq. 3)
    items_bar: torch.Tensor  # H-bar_i per modality [b_i, M, d] (eq. 3)


class BatchRows(NamedTuple):
    """A training batch's (user, positive, negative) triples and the rows of them that ``forward`` computes."""

    users: torch.Tensor  # [B] user ids
    pos: torch.Tensor  # [B] positive item ids
    neg: torch.Tensor  # [B] negative item ids
    user_rows: torch.Tensor  # the batch's distinct users
    item_rows: torch.Tensor  # the batch's distinct items (all items for cl_negatives: all)
    u: torch.Tensor  # [B] each triple's row in user_rows
    ij: torch.Tensor  # [2B] each positive's, then each negative's row in item_rows
    anchors: torch.Tensor  # the rows of the batch's distinct positive items: MDA / MSA's item anchors
    anchor_items: torch.Tensor  # their item ids


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------


class MDE(GeneralRecommender):
    r"""MDE for MMRec: eq. 1-5 in :meth:`forward`, eq. 6-11 in :meth:`batch_losses`.

    Args:
        config: MMRec's config; the keys of ``HYPERPARAMETERS`` (MDE.yaml) plus MMRec's data keys.
        dataset: MMRec's training data loader (its ``inter_matrix`` gives the training interactions).

    ``calculate_loss`` returns ``(L_g, L_v, L_t, sigma_diff L_diff, sigma_cl L_cl, sigma_reg ||Theta||^2)``,
    the terms of eq. 11, which MMRec's trainer sums.
    """

    MODALITIES = (("v", "vision_feature_file"), ("t", "text_feature_file"))
    MODALITY_NAMES = {"v": "image", "t": "text"}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hp = hp = model_settings.read_settings("MDE", HYPERPARAMETERS, config)  # checked, named as in the table
        data_dir = os.path.abspath(str(config["data_path"]) + str(config["dataset"]))
        features = self._checked_features(config, data_dir)  # {modality: item features}, as MMRec loaded them
        self.modalities = tuple(features)
        two_modalities = len(self.modalities) == 2
        self.use_mda = hp.use_mda and two_modalities
        self.use_msa = hp.use_msa and two_modalities
        d, n_mod = hp.embedding_size, len(self.modalities)

        # eq. 1: item feature projections and free user features, per modality
        self.register_buffer("item_features_v", features.get("v"), persistent=False)
        self.register_buffer("item_features_t", features.get("t"), persistent=False)
        self.projections = nn.ModuleDict({m: self._projection(features[m].shape[1], d) for m in self.modalities})
        self.user_features = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, n_mod * d)))
        # eq. 5: preference logits W (absent in Fig. 2 variant A, where P is fixed)
        if hp.fixed_text_weight is None and two_modalities:
            self.user_pref_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_users, n_mod)))
            self.item_pref_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(self.n_items, n_mod)))
        if hp.tradeoff == "independent":  # Fig. 2 variant B: trade-off weights learned apart from P
            self.user_tradeoff_logits = nn.Parameter(torch.zeros(self.n_users))
            self.item_tradeoff_logits = nn.Parameter(torch.zeros(self.n_items))

        # eq. 2-4: the graphs, built once here (the homogeneous ones cached beside the data set)
        interactions = dataset.inter_matrix(form="csr").astype(np.float32)
        ui_graph = graphs.to_torch_csr(graphs.normalized_bipartite_adjacency(interactions))
        self.register_buffer("ui_graph", ui_graph.to(self.device), persistent=False)
        cache, k_u, k_i = os.path.join(data_dir, "mde_graphs"), hp.user_knn_k, hp.item_knn_k
        user_graph = graphs.user_graph(interactions, k_u, hp.user_graph_weighting, cache, hp.graph_cache)
        self._register_neighbours("user_graph", user_graph)
        for m, feat in features.items():
            self._register_neighbours(f"item_graph_{m}", graphs.item_graph(feat, k_i, m, cache, hp.graph_cache))
        item_graphs = [self.neighbours(f"item_graph_{m}") for m in self.modalities]
        stacked = graphs.stack_modalities(item_graphs)  # eq. 4 for every modality in one product
        self.register_buffer("item_graphs_index", stacked.index, persistent=False)
        self.register_buffer("item_graphs_weight", stacked.weight, persistent=False)
        self._eval_embeddings = None
        self._losses = self._compiled(self.batch_losses) if hp.compile_losses else self.batch_losses
        logger.info("MDE: train_loss1..6 are L_g, L_v, L_t, sigma_diff L_diff, sigma_cl L_cl, sigma_reg ||Theta||^2")

    # ---- construction helpers ----

    def _checked_features(self, config, data_dir: str) -> dict[str, torch.Tensor]:
        """The item feature tensors MMRec loaded, by modality, each checked against the item count."""
        files = {m: os.path.join(data_dir, str(config[key])) for m, key in self.MODALITIES}
        features = {m: f for m, f in (("v", self.v_feat), ("t", self.t_feat)) if f is not None}
        check_feature_tensors(features, files, self.n_items, os.path.join(data_dir, config["inter_file_name"]), logger)
        if len(features) == 1:
            [(m, key)] = [(m, key) for m, key in self.MODALITIES if m not in features]
            why = f"{files[m]} missing" if config[key] else f"no {key} in the data set's yaml"
            logger.warning(
                "MDE: only the %s modality is available (%s); running as a single-modality model with MDA and "
                "MSA off (fixed_text_weight and tradeoff have no effect)",
                self.MODALITY_NAMES[next(iter(features))],
                why,
            )
        return features

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

    def _compiled(self, losses):
        """``losses`` fused by torch.compile: one graph (``fullgraph``) whose sizes may change from batch to batch.
        Each model compiles afresh: the graphs of a grid's earlier points (other readings are other graphs) would
        otherwise count towards torch.compile's limit of recompilations, an error under ``fullgraph``."""
        torch.compiler.reset()
        compiled = torch.compile(losses, fullgraph=True, dynamic=True)
        if self.device.type != "cpu":
            return compiled
        compiler = os.environ.get("CXX", "g++")  # the one torch.compile calls on the CPU
        if shutil.which(compiler) is None:
            raise ValueError(
                f"MDE: compile_losses: True needs a C++ compiler on the CPU, and {compiler} was not found; "
                "install g++ (or name yours in $CXX), or set compile_losses: False in MDE.yaml"
            )

        def deterministic(*args):  # on the CPU, scatter-adds compiled without atomics: same seed, same numbers
            enabled, warn_only = (
                torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
            )
            torch.use_deterministic_algorithms(True, warn_only=True)
            try:
                return compiled(*args)
            finally:
                torch.use_deterministic_algorithms(enabled, warn_only=warn_only)

        return deterministic

    def _register_neighbours(self, name: str, adjacency) -> None:
        lists = graphs.neighbour_lists(adjacency)
        self.register_buffer(f"{name}_index", lists.index.to(self.device), persistent=False)
        self.register_buffer(f"{name}_weight", lists.weight.to(self.device), persistent=False)

    def neighbours(self, name: str) -> graphs.NeighbourLists:
        """The homogeneous graph ``user_graph`` or ``item_graph_<m>`` as neighbour lists."""
        return graphs.NeighbourLists(getattr(self, f"{name}_index"), getattr(self, f"{name}_weight"))

    # ---- forward: eq. 1-5 ----

    def _preferences(self, side: str, rows: torch.Tensor) -> torch.Tensor:
        """Eq. 5's P for some users or items (``side``), or the fixed preference of Fig. 2 variant A."""
        if len(self.modalities) == 1:
            return torch.ones(len(rows), 1, device=rows.device)
        if self.hp.fixed_text_weight is not None:
            w_t = self.hp.fixed_text_weight
            return torch.tensor([1.0 - w_t, w_t], device=rows.device).expand(len(rows), 2)
        return preference(getattr(self, f"{side}_pref_logits").index_select(0, rows))

    def forward(self, user_rows: torch.Tensor | None = None, item_rows: torch.Tensor | None = None) -> MDEEmbeddings:
        """Eq. 1-5. The graph propagation is full; eq. 4 and 5 are computed only for the requested rows."""
        d, n_mod = self.hp.embedding_size, len(self.modalities)
        device = self.user_features.device
        user_rows = torch.arange(self.n_users, device=device) if user_rows is None else user_rows
        item_rows = torch.arange(self.n_items, device=device) if item_rows is None else item_rows
        item_e0 = torch.cat(
            [self.projections[m](getattr(self, f"item_features_{m}")) for m in self.modalities], dim=1
        )  # eq. 1
        e0 = torch.cat([self.user_features, item_e0], dim=0)
        h_bar = layer_mean_propagation(self.ui_graph, e0, self.hp.n_layers)  # eq. 2-3, all modalities at once
        users_bar, items_bar = h_bar[: self.n_users], h_bar[self.n_users :]
        residual = self.hp.homogeneous_residual
        users = homogeneous_convolution(users_bar, self.neighbours("user_graph"), user_rows, residual)  # eq. 4
        # eq. 4, each modality over its own item graph, in one product: item i's modality m is row i * M + m
        item_modality_rows = (item_rows.unsqueeze(1) * n_mod + torch.arange(n_mod, device=device)).reshape(-1)
        items = homogeneous_convolution(
            items_bar.reshape(-1, d), self.neighbours("item_graphs"), item_modality_rows, residual
        )
        users, items = users.view(-1, n_mod, d), items.view(-1, n_mod, d)
        user_prefs, item_prefs = self._preferences("user", user_rows), self._preferences("item", item_rows)
        return MDEEmbeddings(
            users,
            items,
            fuse(users, user_prefs),
            fuse(items, item_prefs),  # eq. 5
            user_prefs,
            item_prefs,
            item_e0.index_select(0, item_rows),
            users_bar.index_select(0, user_rows).view(-1, n_mod, d),
            items_bar.index_select(0, item_rows).view(-1, n_mod, d),
        )

    # ---- losses: eq. 6-11 ----

    def _node_tradeoff(
        self, side: str, prefs: torch.Tensor, node_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 8's (W_diff, W_cl) for some nodes, or the ablations: a constant without NLT, variant B's own
        learned weights."""
        if not self.hp.use_nlt:
            constant = self.hp.constant_tradeoff_weight
            if constant is not None:
                w = prefs.new_full((prefs.shape[0],), constant)
                return w, w
            all_prefs = self._preferences(side, torch.arange(getattr(self, f"n_{side}s"), device=prefs.device))
            gap = tradeoff_weights(all_prefs[:, 0], all_prefs[:, 1])[0].detach().mean()  # eq. 8, mean over nodes
            return gap.expand(prefs.shape[0]), (1.0 - gap).expand(prefs.shape[0])
        if self.hp.tradeoff == "independent":  # Fig. 2 variant B
            w = torch.sigmoid(getattr(self, f"{side}_tradeoff_logits").index_select(0, node_ids))
            return w, 1.0 - w
        if not self.hp.tradeoff_grad:
            prefs = prefs.detach()
        return tradeoff_weights(prefs[:, 0], prefs[:, 1])  # eq. 8

    def _discrimination_losses(self, side: str, table, prefs, anchors, node_ids, all_candidates: bool):
        """sigma_diff * L_diff (eq. 6) and sigma_cl * L_cl (eq. 7) for the ``anchors`` rows of ``table`` [n, M, d]
        (``side`` "user" or "item"; ``prefs`` [n, M]; ``node_ids`` the anchors' user / item ids)."""
        zero = table.new_zeros(())
        w_diff, w_cl = self._node_tradeoff(side, prefs.index_select(0, anchors), node_ids)
        anchor_rows = table.index_select(0, anchors)
        h_v, h_t = anchor_rows[:, 0], anchor_rows[:, 1]
        diff = self.hp.diff_weight * modality_gap_loss(h_v, h_t, w_diff, self.hp.diff_form) if self.use_mda else zero
        if not self.use_msa:
            return diff, zero
        candidates = (table[:, 0], table[:, 1], anchors) if all_candidates else (None, None, None)
        cl = alignment_loss(h_v, h_t, w_cl, self.hp.cl_temperature, *candidates, similarity=self.hp.cl_similarity)
        return diff, self.hp.cl_weight * cl  # eq. 7

    def _regularization(self, emb: MDEEmbeddings, rows: BatchRows) -> torch.Tensor:
        r"""Eq. 11's :math:`\sigma_{reg} \|\Theta\|^2` (scope: see ``reg_scope``).

        ``batch`` (default): squared layer-0 embeddings and preference logits of the batch's (user, positive,
        negative) triples, divided by the batch size (LightGCN's convention).
        """
        if self.hp.reg_weight == 0:
            return self.user_features.new_zeros(())
        if self.hp.reg_scope == "all_parameters":
            return self.hp.reg_weight * sum(p.pow(2).sum() for p in self.parameters())

        def squares(table: torch.Tensor, *index: torch.Tensor) -> torch.Tensor:
            return sum(table.index_select(0, ids).pow(2).sum() for ids in index)

        batch, users = len(rows.users), rows.users
        total = squares(self.user_features, users) + squares(emb.item_e0, rows.ij[:batch], rows.ij[batch:])
        if hasattr(self, "user_pref_logits"):
            total = total + squares(self.user_pref_logits, users) + squares(self.item_pref_logits, rows.pos, rows.neg)
        return self.hp.reg_weight * total / batch

    def calculate_loss(self, interaction):
        rows = self.batch_rows(interaction[0], interaction[1], interaction[2])
        return self._losses(self.forward(rows.user_rows, rows.item_rows), rows)

    def batch_rows(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BatchRows:
        """Which users and items ``forward`` computes for a batch of (user, positive, negative) triples."""
        user_rows, u = torch.unique(users, return_inverse=True)
        if self.use_msa and self.hp.cl_negatives == "all":
            item_rows, ij = torch.arange(self.n_items, device=pos.device), torch.cat([pos, neg])
        else:
            item_rows, ij = torch.unique(torch.cat([pos, neg]), return_inverse=True)
        anchors = torch.unique(ij[: len(users)])  # the batch's positive items
        return BatchRows(users, pos, neg, user_rows, item_rows, u, ij, anchors, item_rows[anchors])

    def batch_losses(self, emb: MDEEmbeddings, rows: BatchRows):
        """Eq. 6-11 for one batch from ``forward``'s embeddings of ``rows``. No data-dependent shapes or sparse
        tensors: ``compile_losses`` fuses it with torch.compile."""
        batch, u, ij = len(rows.users), rows.u, rows.ij
        # index_select rather than t[idx] throughout: its backward is deterministic on multi-threaded CPUs
        users_m, items_m = emb.users.index_select(0, u), emb.items.index_select(0, ij)
        pos_m, neg_m = (users_m * items_m[:batch]).sum(-1), (users_m * items_m[batch:]).sum(-1)  # h_u,m . h_i,m
        l_modal = dict(zip(self.modalities, bpr_loss(pos_m, neg_m)))  # eq. 10 (L_v, L_t), one per modality
        p_u, p_i = emb.user_prefs.index_select(0, u), emb.item_prefs.index_select(0, ij)
        # eq. 9 on eq. 5's fused rows: h_u . h_i = sum_m P_u,m P_i,m (h_u,m . h_i,m)
        l_g = bpr_loss((p_u * p_i[:batch] * pos_m).sum(-1), (p_u * p_i[batch:] * neg_m).sum(-1))
        zero = l_g.new_zeros(())
        l_diff = l_cl = zero
        if self.use_mda or self.use_msa:
            all_items = self.hp.cl_negatives == "all"
            l_diff, l_cl = self._discrimination_losses(
                "item", emb.items, emb.item_prefs, rows.anchors, rows.anchor_items, all_items
            )
            if self.hp.align_users:  # every user of the batch
                anchors, user_rows = torch.arange(len(rows.user_rows), device=u.device), rows.user_rows
                u_diff, u_cl = self._discrimination_losses("user", emb.users, emb.user_prefs, anchors, user_rows, False)
                l_diff, l_cl = l_diff + u_diff, l_cl + u_cl
        l_reg = self._regularization(emb, rows)
        return l_g, l_modal.get("v", zero), l_modal.get("t", zero), l_diff, l_cl, l_reg  # eq. 11: MMRec sums

    # ---- evaluation ----

    def train(self, mode: bool = True):
        self._eval_embeddings = None  # entering training or evaluation never reuses old embeddings
        return super().train(mode)

    @torch.no_grad()
    def post_epoch_processing(self) -> str | None:
        """After each training epoch (MMRec logs the string): the mean trade-off weight W_diff (eq. 8) of items
        and users, and the items' mean text preference."""
        if not hasattr(self, "item_pref_logits") or self.hp.tradeoff != "preference":
            return None
        item_prefs, user_prefs = preference(self.item_pref_logits), preference(self.user_pref_logits)
        w_item, w_user = (tradeoff_weights(p[:, 0], p[:, 1])[0].mean().item() for p in (item_prefs, user_prefs))
        return (
            f"MDE: mean W_diff = |P_v - P_t| (eq. 8): items {w_item:.4f}, users {w_user:.4f}; "
            f"mean P_t: items {item_prefs[:, 1].mean().item():.4f}"
        )

    def full_sort_predict(self, interaction):
        r"""Scores :math:`h_u^\top h_i` of the given users for all items; embeddings computed once per pass
        (after changing parameters by hand, call ``train()`` or ``eval()`` to recompute them)."""
        if self._eval_embeddings is None:
            with torch.no_grad():
                emb = self.forward()
            self._eval_embeddings = (emb.users_fused, emb.items_fused)
        users_fused, items_fused = self._eval_embeddings
        return users_fused[interaction[0]] @ items_fused.T
