"""Tier 1: MDE's whole forward pass (eq. 1-5), its scores and its ranking losses (eq. 9-10) against an
independent dense reference written from Section II of the paper.

The reference builds every graph itself, from the training interactions and the raw item features: the
normalised user-item adjacency (eq. 2), the layer mean (eq. 3), the user co-occurrence top-k graph and one
cosine kNN graph per modality (eq. 4), the softmax preferences and the fusion (eq. 5). From the model it reads
only the parameters (projection weights, user features, preference logits), so a model that propagates a
modality over the wrong graph, weights a modality with the other's preference, or cuts a gradient disagrees
with it. It never calls mde.py's helpers; everything is dense float64 on a toy data set of a few dozen nodes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mde_support import batch_for, default_hyperparameters, make_model

MODALITIES = ("v", "t")  # the order of the modalities in the model's tensors: visual, then text
N_USERS, N_ITEMS, FEATURE_DIM = 36, 28, 10
SMALL = {"embedding_size": 16, "user_knn_k": 5, "item_knn_k": 4}  # k small enough that top-k selects


class ToyData(NamedTuple):
    users: np.ndarray  # training interactions (user, item), no duplicates
    items: np.ndarray
    features: dict  # modality -> [N_ITEMS, FEATURE_DIM] float32 array


def toy_data(seed: int = 3) -> ToyData:
    """Every user has 2-6 items and every item a user (no isolated node); the two modalities have the same
    feature width, so a projection or feature table applied to the other modality changes values, not shapes."""
    rng = np.random.default_rng(seed)
    pairs = {(u, int(i)) for u in range(N_USERS) for i in rng.choice(N_ITEMS, size=rng.integers(2, 7), replace=False)}
    for i in set(range(N_ITEMS)) - {i for _, i in pairs}:
        pairs.add((int(rng.integers(N_USERS)), i))
    users, items = np.array(sorted(pairs)).T
    features = {m: rng.normal(size=(N_ITEMS, FEATURE_DIM)).astype(np.float32) for m in MODALITIES}
    return ToyData(users, items, features)


# --------------------------------------------------------------------------------------------------
# The reference, dense, from the paper's equations
# --------------------------------------------------------------------------------------------------


def interaction_matrix(data: ToyData) -> torch.Tensor:
    r = torch.zeros(N_USERS, N_ITEMS, dtype=torch.float64)
    r[data.users, data.items] = 1.0
    return r


def normalized_adjacency(r: torch.Tensor) -> torch.Tensor:
    """Eq. 2: D^-1/2 A D^-1/2 of the user-item graph, users first (the toy data has no isolated node)."""
    n_users, n_items = r.shape
    a = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.float64)
    a[:n_users, n_users:] = r
    a[n_users:, :n_users] = r.T
    scale = a.sum(dim=1).pow(-0.5)
    return scale[:, None] * a * scale[None, :]


def layer_mean(a: torch.Tensor, e0: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Eq. 3: the mean of E^0 .. E^L, E^{l+1} = A E^l."""
    layers = [e0]
    for _ in range(n_layers):
        layers.append(a @ layers[-1])
    return torch.stack(layers).mean(dim=0)


def top_k_mask(scores: torch.Tensor, eligible: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the k eligible columns with the largest scores; ties go to the smaller column id."""
    keep = torch.zeros_like(eligible)
    for row in range(scores.shape[0]):
        columns = sorted(torch.nonzero(eligible[row]).flatten().tolist(), key=lambda c: (-scores[row, c].item(), c))
        keep[row, columns[:k]] = True
    return keep


def user_graph(r: torch.Tensor, k: int, weighting: str) -> torch.Tensor:
    """Eq. 4 (users): top-k users by number of common training items, no self loops; the weights of a row are
    the softmax of its kept counts (DRAGON) or, for ``mean``, the kept counts divided by their sum."""
    counts = r @ r.T
    counts.fill_diagonal_(0)
    keep = top_k_mask(counts, counts > 0, k)
    if weighting == "softmax":
        weights = torch.softmax(counts.masked_fill(~keep, -float("inf")), dim=1)
        return torch.nan_to_num(weights)  # a user without co-occurring users: a zero row
    kept = counts * keep
    return kept / kept.sum(dim=1, keepdim=True).clamp_min(1)


def cosine_similarity(features: np.ndarray) -> torch.Tensor:
    x = F.normalize(torch.from_numpy(features).double(), dim=1)
    return x @ x.T


def item_graph(features: np.ndarray, k: int) -> torch.Tensor:
    """Eq. 4 (items, one modality): top-k items by cosine similarity of the raw features, no self loops, mean."""
    others = ~torch.eye(len(features), dtype=torch.bool)
    keep = top_k_mask(cosine_similarity(features), others, k)
    return keep.double() / keep.sum(dim=1, keepdim=True)


def project(features: np.ndarray, projection, kind: str) -> torch.Tensor:
    """Eq. 1's item projection from the model's weights: one linear layer, or DRAGON's d_m -> 4d -> d MLP with
    LeakyReLU (negative slope 0.01) between its two layers."""
    x = torch.from_numpy(features).double()
    layers = [projection] if kind == "linear" else [projection[0], projection[2]]
    for n, layer in enumerate(layers):
        x = x @ layer.weight.double().T + layer.bias.double()
        if n < len(layers) - 1:
            x = torch.where(x > 0, x, 0.01 * x)
    return x


def reference_forward(model, data: ToyData, settings: dict) -> dict:
    """Eq. 1-5 for every user and item, named like MDEEmbeddings' fields."""
    d, n_layers, residual = settings["embedding_size"], settings["n_layers"], settings["homogeneous_residual"]
    r = interaction_matrix(data)
    a_ui = normalized_adjacency(r)
    a_users = user_graph(r, settings["user_knn_k"], settings["user_graph_weighting"])
    out = {name: [] for name in ("item_e0", "users_bar", "items_bar", "users", "items")}
    for j, m in enumerate(MODALITIES):
        item_e0 = project(data.features[m], model.projections[m], settings["feature_projection"])  # eq. 1
        e0 = torch.cat([model.user_features[:, j * d : (j + 1) * d].double(), item_e0])  # eq. 1: E^u_m || E^i_m
        h_bar = layer_mean(a_ui, e0, n_layers)
        users_bar, items_bar = h_bar[:N_USERS], h_bar[N_USERS:]
        users = a_users @ users_bar  # eq. 4
        items = item_graph(data.features[m], settings["item_knn_k"]) @ items_bar
        if residual:
            users, items = users + users_bar, items + items_bar
        for name, value in zip(out, (item_e0, users_bar, items_bar, users, items)):
            out[name].append(value)
    out = {
        name: torch.cat(values, dim=1) if name == "item_e0" else torch.stack(values, dim=1)
        for name, values in out.items()
    }
    for side in ("user", "item"):
        prefs = torch.softmax(getattr(model, f"{side}_pref_logits").double(), dim=1)  # eq. 5
        out[f"{side}_prefs"] = prefs
        out[f"{side}s_fused"] = torch.cat(
            [prefs[:, j : j + 1] * out[f"{side}s"][:, j] for j in range(len(MODALITIES))], dim=1
        )
    return out


def bpr(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Eq. 9 / 10, averaged over the batch: -log sigmoid(h_u . h_i - h_u . h_i')."""
    return -F.logsigmoid((users * positives).sum(1) - (users * negatives).sum(1)).mean()


# --------------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------------


def settings_of(**overrides) -> dict:
    return {**default_hyperparameters(), **overrides}


def build(tmp_path, data: ToyData, settings: dict):
    return make_model(
        tmp_path, data.users, data.items, N_USERS, N_ITEMS, data.features["v"], data.features["t"], **settings
    )[0]


def set_distinct_preferences(model, seed: int = 0) -> None:
    """Logits whose two entries differ by 0.5-2 (either sign) in every row: P_v and P_t differ by 0.25-0.75,
    so a preference applied to the other modality, or another row's preference, changes the result."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for logits in (model.user_pref_logits, model.item_pref_logits):
            base = torch.randn(len(logits), 1, generator=generator)
            gap = 0.5 + 1.5 * torch.rand(len(logits), 1, generator=generator)
            sign = torch.where(torch.rand(len(logits), 1, generator=generator) < 0.5, -1.0, 1.0)
            logits.copy_(torch.cat([base, base + sign * gap], dim=1))


def assert_matches(emb, reference: dict, user_rows: torch.Tensor, item_rows: torch.Tensor) -> None:
    for field in emb._fields:
        rows = user_rows if field.startswith("user") else item_rows
        torch.testing.assert_close(
            getattr(emb, field).detach().double(),
            reference[field][rows],
            rtol=1e-4,
            atol=1e-6,
            msg=lambda text, name=field: f"{name}: {text}",
        )


def test_the_toy_data_leaves_the_reference_no_ambiguity():
    """No isolated node, a clear k-th neighbour in every kNN row (cosine ties would make the item graphs
    ambiguous), graphs a mix-up would change, and co-occurrence ties at the k-th user, which the stated rule
    (ties to the smaller user id) decides."""
    data = toy_data()
    r = interaction_matrix(data)
    assert (r.sum(1) >= 2).all() and (r.sum(0) >= 1).all()
    k = SMALL["item_knn_k"]
    for m in MODALITIES:
        similarity = cosine_similarity(data.features[m])
        similarity.fill_diagonal_(-float("inf"))
        ranked = similarity.sort(dim=1, descending=True).values
        assert (ranked[:, k - 1] - ranked[:, k]).min() > 1e-4  # far above float32 rounding
    assert not torch.equal(item_graph(data.features["v"], k) > 0, item_graph(data.features["t"], k) > 0)
    counts = r @ r.T
    counts.fill_diagonal_(0)
    assert ((counts > 0).sum(1) > SMALL["user_knn_k"]).sum() > N_USERS // 2  # top-k selects for most users
    ranked = counts.sort(dim=1, descending=True).values
    k = SMALL["user_knn_k"]
    assert ((ranked[:, k - 1] == ranked[:, k]) & (ranked[:, k] > 0)).any()  # ties at the k-th count: the rule acts


@pytest.mark.parametrize(
    "residual, weighting, n_layers, projection",
    [
        (True, "softmax", 2, "mlp"),
        (False, "softmax", 2, "linear"),
        (True, "mean", 3, "linear"),
        (False, "mean", 1, "mlp"),
    ],
)
def test_forward_and_scores_match_the_dense_reference(tmp_path, residual, weighting, n_layers, projection):
    data = toy_data()
    settings = settings_of(
        **SMALL, homogeneous_residual=residual, user_graph_weighting=weighting, n_layers=n_layers,
        feature_projection=projection,
    )  # fmt: skip
    model = build(tmp_path, data, settings)
    set_distinct_preferences(model)
    with torch.no_grad():
        reference = reference_forward(model, data, settings)
        all_users, all_items = torch.arange(N_USERS), torch.arange(N_ITEMS)
        assert_matches(model.forward(), reference, all_users, all_items)
        user_rows, item_rows = torch.tensor([33, 0, 17, 5, 21]), torch.tensor([27, 3, 14, 8])
        assert_matches(model.forward(user_rows, item_rows), reference, user_rows, item_rows)
        assert_matches(model.forward(user_rows=user_rows), reference, user_rows, all_items)
        scores = model.full_sort_predict([user_rows])
    expected = reference["users_fused"][user_rows] @ reference["items_fused"].T  # y_ui = h_u . h_i
    torch.testing.assert_close(scores.double(), expected, rtol=1e-4, atol=1e-6)


def ranking_losses_and_gradients(model, data: ToyData, settings: dict):
    """L_g, L_v, L_t of one batch by the model and by the reference, and each one's L_g gradient per parameter."""
    batch = batch_for(data.users, data.items, N_ITEMS, size=48)
    u, i, j = batch
    model.zero_grad()
    l_g, l_v, l_t = model.calculate_loss(batch)[:3]
    l_g.backward()
    model_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    ref = reference_forward(model, data, settings)
    ref_g = bpr(ref["users_fused"][u], ref["items_fused"][i], ref["items_fused"][j])
    ref_modal = [bpr(ref["users"][u, k], ref["items"][i, k], ref["items"][j, k]) for k in range(len(MODALITIES))]
    ref_g.backward()
    ref_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return (l_g, l_v, l_t), (ref_g, *ref_modal), model_grads, ref_grads


def test_ranking_loss_alone_trains_every_parameter_group_under_the_default_configuration(tmp_path):
    """Eq. 9 on its own (no regulariser, no L_diff / L_cl through the preferences) reaches the projections of both
    modalities, the user features and the user and item preference logits."""
    data = toy_data()
    model = build(tmp_path, data, settings_of())
    batch = batch_for(data.users, data.items, N_ITEMS, size=48)
    model.calculate_loss(batch)[0].backward()
    names = [name for name, _ in model.named_parameters()]
    assert {"user_features", "user_pref_logits", "item_pref_logits"} <= set(names)
    assert {m for m in MODALITIES if any(name.startswith(f"projections.{m}.") for name in names)} == set(MODALITIES)
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []


@pytest.mark.parametrize("overrides", [{}, {**SMALL, "homogeneous_residual": False, "feature_projection": "linear"}])
def test_ranking_losses_and_their_gradient_match_the_reference(tmp_path, overrides):
    """L_g, L_v, L_t (eq. 9-10, means over the batch) and every parameter's gradient of L_g, against autograd
    through the reference (the default configuration, and small k without the residual)."""
    data = toy_data()
    settings = settings_of(**overrides)
    model = build(tmp_path, data, settings)
    set_distinct_preferences(model)
    losses, ref_losses, grads, ref_grads = ranking_losses_and_gradients(model, data, settings)
    for loss, ref_loss in zip(losses, ref_losses):
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    assert set(grads) == set(ref_grads) == {name for name, _ in model.named_parameters()}
    for name, grad in grads.items():
        scale = ref_grads[name].abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-5 * scale, msg=name)
