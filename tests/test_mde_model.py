"""Tier 1: the MDE model as MMRec drives it (constructed through our stand-in of MMRec's base class)."""

import logging
import math

import numpy as np
import pytest
import torch
from mde_support import batch_for, make_model, mde, toy_problem


@pytest.fixture
def toy():
    return toy_problem()


def _model(tmp_path, toy, **overrides):
    users, items, n_users, n_items, v, t = toy
    return make_model(tmp_path, users, items, n_users, n_items, v, t, **overrides)[0]


def _losses(model, toy, seed=0):
    users, items, _, n_items, _, _ = toy
    return model.calculate_loss(batch_for(users, items, n_items, seed=seed))


def test_total_loss_equals_independent_recomputation(tmp_path, toy):
    model = _model(tmp_path, toy, cl_weight=0.3, diff_weight=0.2, reg_weight=0.01, align_users=False)  # items only
    users, items, _, n_items, _, _ = toy
    batch = batch_for(users, items, n_items)
    l_g, l_v, l_t, l_diff, l_cl, l_reg = model.calculate_loss(batch)
    emb = model.forward()
    u, i, j = batch
    assert l_g.item() == pytest.approx(
        mde.bpr_loss(
            (emb.users_fused[u] * emb.items_fused[i]).sum(-1), (emb.users_fused[u] * emb.items_fused[j]).sum(-1)
        ).item()
    )
    assert l_v.item() == pytest.approx(
        mde.bpr_loss((emb.users[u, 0] * emb.items[i, 0]).sum(-1), (emb.users[u, 0] * emb.items[j, 0]).sum(-1)).item()
    )
    assert l_t.item() == pytest.approx(
        mde.bpr_loss((emb.users[u, 1] * emb.items[i, 1]).sum(-1), (emb.users[u, 1] * emb.items[j, 1]).sum(-1)).item()
    )
    nodes = torch.unique(i)  # anchors of eq. 6-7: the batch's positive items
    p = emb.item_prefs[nodes]
    w_diff, w_cl = (p[:, 0] - p[:, 1]).abs(), 1 - (p[:, 0] - p[:, 1]).abs()
    h_v, h_t = emb.items[nodes, 0], emb.items[nodes, 1]
    assert l_diff.item() == pytest.approx(0.2 * mde.modality_gap_loss(h_v, h_t, w_diff).item(), rel=1e-5)
    assert l_cl.item() == pytest.approx(0.3 * mde.alignment_loss(h_v, h_t, w_cl, 0.2).item(), rel=1e-5)
    # eq. 11, reg_scope batch: layer-0 rows and preference logits of every (user, positive, negative) triple
    squares = lambda table, rows: table[rows].pow(2).sum().item()
    expected_reg = (
        squares(model.user_features, u)
        + squares(emb.item_e0, i)
        + squares(emb.item_e0, j)
        + squares(model.user_pref_logits, u)
        + squares(model.item_pref_logits, i)
        + squares(model.item_pref_logits, j)
    )
    assert l_reg.item() == pytest.approx(0.01 * expected_reg / len(u), rel=1e-5)


def test_cl_negatives_all_contrasts_each_anchor_with_every_item(tmp_path, toy):
    """Eq. 7 as printed: the denominator runs over all items, the positive is the anchor item's own row."""
    model = _model(tmp_path, toy, cl_weight=0.3, cl_negatives="all", align_users=False)
    users, items, _, n_items, _, _ = toy
    batch = batch_for(users, items, n_items)
    l_cl = model.calculate_loss(batch)[4]
    with torch.no_grad():
        emb = model.forward()
        nodes = torch.unique(batch[1])
        p = emb.item_prefs[nodes]
        _, w_cl = mde.tradeoff_weights(p[:, 0], p[:, 1])
        expected = mde.alignment_loss(
            emb.items[nodes, 0], emb.items[nodes, 1], w_cl, 0.2, emb.items[:, 0], emb.items[:, 1], nodes
        )
    assert l_cl.item() == pytest.approx(0.3 * expected.item(), rel=1e-5)


@pytest.mark.parametrize("negatives", ["batch", "all"])
def test_cl_similarity_dot_uses_raw_dot_products(tmp_path, toy, negatives):
    """cl_similarity: dot reaches eq. 7 for both negative sets, and only L_cl changes."""
    users, items, _, n_items, _, _ = toy
    batch = batch_for(users, items, n_items)
    model = _model(tmp_path, toy, cl_weight=0.3, cl_similarity="dot", cl_negatives=negatives, align_users=False)
    parts = model.calculate_loss(batch)
    with torch.no_grad():
        emb = model.forward()
        nodes = torch.unique(batch[1])
        p = emb.item_prefs[nodes]
        _, w_cl = mde.tradeoff_weights(p[:, 0], p[:, 1])
        candidates = (emb.items[:, 0], emb.items[:, 1], nodes) if negatives == "all" else (None, None, None)
        expected = mde.alignment_loss(
            emb.items[nodes, 0], emb.items[nodes, 1], w_cl, 0.2, *candidates, similarity="dot"
        )
    assert parts[4].item() == pytest.approx(0.3 * expected.item(), rel=1e-5)
    cosine = _model(tmp_path, toy, cl_weight=0.3, cl_negatives=negatives, align_users=False).calculate_loss(batch)
    assert parts[4].item() != pytest.approx(cosine[4].item(), rel=1e-3)
    assert [x.item() for k, x in enumerate(parts) if k != 4] == [x.item() for k, x in enumerate(cosine) if k != 4]


def test_user_features_are_xavier_initialised(tmp_path, toy):
    """Section III-A: Xavier initialisation (uniform, bound sqrt(6 / (fan_in + fan_out)))."""
    model = _model(tmp_path, toy)
    n_users, width = model.user_features.shape
    bound = math.sqrt(6 / (n_users + width))
    values = model.user_features.detach()
    assert values.abs().max() <= bound
    assert values.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_batch_rows_equal_the_full_forward(tmp_path, toy):
    model = _model(tmp_path, toy)
    full = model.forward()
    users, items = torch.tensor([4, 0, 9]), torch.tensor([7, 1])
    part = model.forward(users, items)
    torch.testing.assert_close(part.users_fused, full.users_fused[users])
    torch.testing.assert_close(part.items_fused, full.items_fused[items])
    torch.testing.assert_close(part.item_e0, full.item_e0[items])


def test_fused_embedding_is_preference_weighted_concatenation(tmp_path, toy):
    model = _model(tmp_path, toy)
    emb = model.forward()
    p = torch.softmax(model.item_pref_logits, dim=1)
    expected = torch.cat([p[:, :1] * emb.items[:, 0], p[:, 1:] * emb.items[:, 1]], dim=1)
    torch.testing.assert_close(emb.items_fused, expected)


def test_forward_matches_dense_reference(tmp_path, toy):
    """Eq. 1-4 recomputed with dense matrices from the model's own parameters and graphs."""
    model = _model(tmp_path, toy)
    users, items, n_users, n_items, v, t = toy

    def dense(name, n):
        lists = model.neighbours(name)
        out = torch.zeros(n, n, dtype=torch.float64)
        out.scatter_add_(1, lists.index, lists.weight.double())
        return out

    e_items = torch.cat([model.projections["v"](torch.from_numpy(v)), model.projections["t"](torch.from_numpy(t))], 1)
    e0 = torch.cat([model.user_features, e_items]).double()
    a = model.ui_graph.to_dense().double()
    h_bar = (e0 + a @ e0 + a @ a @ e0) / 3
    hu, hi = h_bar[:n_users], h_bar[n_users:]
    users_star = hu + dense("user_graph", n_users) @ hu
    items_v = hi[:, :64] + dense("item_graph_v", n_items) @ hi[:, :64]
    emb = model.forward()
    torch.testing.assert_close(emb.users.reshape(n_users, -1).double(), users_star, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(emb.items[:, 0].double(), items_v, rtol=1e-4, atol=1e-5)


def test_gradients_reach_every_parameter(tmp_path, toy):
    model = _model(tmp_path, toy, tradeoff_grad=True)
    sum(_losses(model, toy)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_independent_tradeoff_weights_get_gradients(tmp_path, toy):
    """Fig. 2 B: exactly the batch's positive items (the anchors of eq. 6-7) move their own trade-off logits."""
    model = _model(tmp_path, toy, tradeoff="independent")
    with torch.no_grad():
        model.item_tradeoff_logits.normal_()
    users, items, _, n_items, _, _ = toy
    batch = batch_for(users, items, n_items, size=5)  # a few items only: row positions differ from item ids
    sum(model.calculate_loss(batch)).backward()
    positives = torch.unique(batch[1])
    assert len(torch.unique(batch[1:])) < n_items
    assert torch.nonzero(model.item_tradeoff_logits.grad).flatten().tolist() == positives.tolist()


def test_independent_tradeoff_drifts_towards_difference_under_bounded_form(tmp_path, toy):
    """docs/paper-to-code.md, Fig. 2 B: with the bounded L_diff both trade-off losses fall as
    W_diff = sigmoid(t) rises, so
    every trained node's logit gets a negative gradient (gradient descent raises it); with the literal form
    L_diff rises with W_diff, so the two losses pull against each other and some gradients are positive."""
    signs = {}
    for form in ("bounded", "literal"):
        model = _model(tmp_path, toy, tradeoff="independent", diff_form=form)
        _, _, _, l_diff, l_cl, _ = _losses(model, toy)
        (l_diff + l_cl).backward()
        grad = model.item_tradeoff_logits.grad.flatten()
        signs[form] = grad[grad != 0]
    assert len(signs["bounded"]) > 0 and (signs["bounded"] < 0).all()
    assert (signs["literal"] > 0).any()


def test_stop_gradient_keeps_tradeoff_losses_out_of_preferences(tmp_path, toy):
    model = _model(tmp_path, toy, tradeoff_grad=False)
    _, _, _, l_diff, l_cl, _ = _losses(model, toy)
    (l_diff + l_cl).backward()
    assert model.item_pref_logits.grad is None or model.item_pref_logits.grad.abs().sum() == 0
    model.zero_grad()
    model2 = _model(tmp_path, toy, tradeoff_grad=True)
    _, _, _, l_diff, l_cl, _ = _losses(model2, toy)
    (l_diff + l_cl).backward()
    assert model2.item_pref_logits.grad.abs().sum() > 0


def test_full_sort_predict_equals_fused_dot_products(tmp_path, toy):
    model = _model(tmp_path, toy)
    model.eval()
    user_ids = torch.tensor([0, 3, 7])
    scores = model.full_sort_predict((user_ids,))
    emb = model.forward()
    torch.testing.assert_close(scores, emb.users_fused[user_ids] @ emb.items_fused.T)
    assert scores.shape == (3, toy[3])


def test_evaluation_cache_is_reused_and_never_stale(tmp_path, toy):
    model = _model(tmp_path, toy)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    model.eval()
    calls = []
    original = model.forward
    model.forward = lambda *rows: calls.append(1) or original(*rows)
    first = model.full_sort_predict((torch.tensor([0, 1]),)).clone()
    model.full_sort_predict((torch.tensor([2, 3]),))
    assert len(calls) == 1  # computed once per evaluation pass
    calls.clear()
    model.train()
    sum(_losses(model, toy)).backward()
    optimizer.step()
    model.eval()
    after = model.full_sort_predict((torch.tensor([0, 1]),))
    assert not torch.allclose(first, after)
    optimizer.step()  # a parameter update by hand while in eval mode: eval() again recomputes (documented)
    model.eval()
    again = model.full_sort_predict((torch.tensor([0, 1]),))
    assert not torch.allclose(after, again)
    with torch.no_grad():  # an edit through .data bumps no version counter: the eval()/train() switch still counts
        model.user_features.data[:2] *= 2.0
    model.train()
    model.eval()
    edited = model.full_sort_predict((torch.tensor([0, 1]),))
    with torch.no_grad():
        fresh = original()
    torch.testing.assert_close(edited, fresh.users_fused[:2] @ fresh.items_fused.T)
    assert not torch.allclose(edited, again)


def test_same_seed_gives_identical_results(tmp_path, toy):
    def run(seed):
        model = _model(tmp_path, toy, seed=seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for step in range(3):
            optimizer.zero_grad()
            loss = sum(_losses(model, toy, seed=step))
            loss.backward()
            optimizer.step()
        model.eval()
        return loss.item(), model.full_sort_predict((torch.arange(5),))

    a, b, c = run(1), run(1), run(2)
    assert a[0] == b[0] and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


# ---- switches: each changes what it should and nothing else ----


def _parts(tmp_path, toy, **overrides):
    model = _model(tmp_path, toy, cl_weight=0.5, diff_weight=0.5, reg_weight=0.01, **overrides)
    return [x.item() for x in _losses(model, toy)], model


def test_use_mda_false_zeroes_only_l_diff(tmp_path, toy):
    base, _ = _parts(tmp_path, toy)
    off, _ = _parts(tmp_path, toy, use_mda=False)
    assert base[3] != 0 and off[3] == 0
    assert off[:3] == pytest.approx(base[:3]) and off[4:] == pytest.approx(base[4:])


def test_use_msa_false_zeroes_only_l_cl(tmp_path, toy):
    base, _ = _parts(tmp_path, toy)
    off, _ = _parts(tmp_path, toy, use_msa=False)
    assert base[4] != 0 and off[4] == 0
    assert off[:4] == pytest.approx(base[:4]) and off[5] == pytest.approx(base[5])


def test_use_nlt_false_uses_constant_tradeoff_weights(tmp_path, toy):
    base, _ = _parts(tmp_path, toy, align_users=False)
    off, model = _parts(tmp_path, toy, use_nlt=False, constant_tradeoff_weight=1.0, align_users=False)
    emb = model.forward()
    users, items, _, n_items, _, _ = toy
    u, i, j = batch_for(users, items, n_items)
    nodes = torch.unique(i)
    ones = torch.ones(len(nodes))
    expected = 0.5 * mde.alignment_loss(emb.items[nodes, 0], emb.items[nodes, 1], ones, 0.2).item()
    assert off[4] == pytest.approx(expected, rel=1e-5)
    assert off[:3] == pytest.approx(base[:3]) and off[3] != pytest.approx(base[3])
    expected_diff = 0.5 * mde.modality_gap_loss(emb.items[nodes, 0], emb.items[nodes, 1], ones, "bounded").item()
    assert off[3] == pytest.approx(expected_diff, rel=1e-5)


def test_without_nlt_by_default_every_node_gets_the_mean_tradeoff_weight(tmp_path, toy):
    """w/o NLT's default (constant null): W_diff = mean over all items of |P_v - P_t| for every node, W_cl = 1 - it,
    so the ablation keeps the full model's average strength and removes only the node-level variation."""
    off, model = _parts(tmp_path, toy, use_nlt=False, align_users=False)
    emb = model.forward()
    users, items, _, n_items, _, _ = toy
    _, i, _ = batch_for(users, items, n_items)
    nodes = torch.unique(i)
    p = torch.softmax(model.item_pref_logits, dim=1)
    gap = (p[:, 0] - p[:, 1]).abs().mean().item()
    assert 0 < gap < 0.5
    w = torch.full((len(nodes),), gap)
    assert off[3] == pytest.approx(
        0.5 * mde.modality_gap_loss(emb.items[nodes, 0], emb.items[nodes, 1], w).item(), rel=1e-5
    )
    assert off[4] == pytest.approx(
        0.5 * mde.alignment_loss(emb.items[nodes, 0], emb.items[nodes, 1], 1 - w, 0.2).item(), rel=1e-5
    )


def test_without_nlt_both_tradeoff_weights_take_the_configured_constant(tmp_path, toy):
    unweighted, _ = _parts(tmp_path, toy, use_nlt=False, constant_tradeoff_weight=1.0)
    even, model = _parts(tmp_path, toy, use_nlt=False, constant_tradeoff_weight=0.5)
    assert even[3] == pytest.approx(0.25 * unweighted[3], rel=1e-5)  # eq. 6: W_diff enters squared
    assert even[4] == pytest.approx(0.5 * unweighted[4], rel=1e-5)  # eq. 7: W_cl enters once
    assert even[:3] == pytest.approx(unweighted[:3]) and even[5] == pytest.approx(unweighted[5])
    with_nlt, _ = _parts(tmp_path, toy, constant_tradeoff_weight=0.5)  # ignored while NLT is on
    assert with_nlt == pytest.approx(_parts(tmp_path, toy)[0])


def test_fixed_text_weight_fixes_preferences_everywhere(tmp_path, toy):
    _, model = _parts(tmp_path, toy, fixed_text_weight=0.7)
    emb = model.forward()
    assert not hasattr(model, "item_pref_logits")
    torch.testing.assert_close(emb.item_prefs, torch.tensor([0.3, 0.7]).expand(toy[3], 2))
    torch.testing.assert_close(emb.user_prefs, torch.tensor([0.3, 0.7]).expand(toy[2], 2))


def test_literal_diff_form_is_positive_and_bounded_is_not(tmp_path, toy):
    literal, _ = _parts(tmp_path, toy, diff_form="literal", use_msa=False)
    bounded, _ = _parts(tmp_path, toy, use_msa=False)
    assert literal[3] > 0 and bounded[3] <= 0
    assert literal[:3] == pytest.approx(bounded[:3])


def test_cl_negatives_all_changes_only_l_cl(tmp_path, toy):
    base, _ = _parts(tmp_path, toy)
    alln, _ = _parts(tmp_path, toy, cl_negatives="all")
    assert alln[4] != pytest.approx(base[4])
    assert alln[:4] == pytest.approx(base[:4]) and alln[5] == pytest.approx(base[5])


def test_align_users_adds_user_terms(tmp_path, toy):
    base, _ = _parts(tmp_path, toy, tradeoff_grad=True, align_users=False)
    both, model = _parts(tmp_path, toy, tradeoff_grad=True, align_users=True)
    assert both[:3] == pytest.approx(base[:3]) and both[5] == pytest.approx(base[5])
    # the added terms: eq. 6 and 7 over the batch's distinct users, weighted by the users' own eq. 8
    users, items, _, n_items, _, _ = toy
    batch_users = torch.unique(batch_for(users, items, n_items)[0])
    with torch.no_grad():
        emb = model.forward()
        p = emb.user_prefs[batch_users]
        w_diff, w_cl = mde.tradeoff_weights(p[:, 0], p[:, 1])
        h_v, h_t = emb.users[batch_users, 0], emb.users[batch_users, 1]
        user_diff = 0.5 * mde.modality_gap_loss(h_v, h_t, w_diff).item()
        user_cl = 0.5 * mde.alignment_loss(h_v, h_t, w_cl, 0.2).item()
    assert both[3] - base[3] == pytest.approx(user_diff, rel=1e-4, abs=1e-7)
    assert both[4] - base[4] == pytest.approx(user_cl, rel=1e-4)


def test_align_users_with_independent_tradeoff_trains_the_users_own_weights(tmp_path, toy):
    """Fig. 2 B with align_users: the users' trade-off logits are the batch users' own (not items' rows)."""
    model = _model(tmp_path, toy, tradeoff="independent", align_users=True)
    with torch.no_grad():
        model.user_tradeoff_logits.normal_()
    users, items, _, n_items, _, _ = toy
    batch_users = torch.unique(batch_for(users, items, n_items)[0])
    _, _, _, l_diff, l_cl, _ = _losses(model, toy)
    (l_diff + l_cl).backward()
    touched = torch.nonzero(model.user_tradeoff_logits.grad).flatten()
    assert touched.tolist() == batch_users.tolist()


@pytest.mark.parametrize(
    "key,value", [("homogeneous_residual", False), ("user_graph_weighting", "mean"), ("feature_projection", "linear")]
)
def test_embedding_switches_change_the_embeddings(tmp_path, toy, key, value):
    base_model = _model(tmp_path, toy)
    other = _model(tmp_path, toy, **{key: value})
    assert not torch.allclose(base_model.forward().users_fused, other.forward().users_fused)
    assert np.isfinite([x.item() for x in _losses(other, toy)]).all()


def test_reg_scope_all_parameters_is_sum_of_squares(tmp_path, toy):
    parts, model = _parts(tmp_path, toy, reg_scope="all_parameters")
    expected = 0.01 * sum(p.detach().pow(2).sum().item() for p in model.parameters())
    assert parts[5] == pytest.approx(expected, rel=1e-5)


# ---- bad and unusual input ----


def test_feature_rows_mismatch_names_file_and_fix(tmp_path, toy):
    users, items, n_users, n_items, v, t = toy
    with pytest.raises(ValueError, match=r"image_feat\.npy has shape \(19, 12\).*one row per item"):
        make_model(tmp_path, users, items, n_users, n_items, v[:-1], t)


def test_nan_features_are_rejected(tmp_path, toy):
    users, items, n_users, n_items, v, t = toy
    t = t.copy()
    t[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"text_feat\.npy contains NaN or inf in 1 item rows"):
        make_model(tmp_path, users, items, n_users, n_items, v, t)


def test_missing_hyperparameter_names_key_and_file(tmp_path, toy):
    users, items, n_users, n_items, v, t = toy
    import mde_support

    original = mde_support.default_hyperparameters
    mde_support.default_hyperparameters = lambda: {k: x for k, x in original().items() if k != "cl_temperature"}
    try:
        with pytest.raises(ValueError, match=r"cl_temperature missing from the configuration.*MDE\.yaml"):
            make_model(tmp_path, users, items, n_users, n_items, v, t)
    finally:
        mde_support.default_hyperparameters = original


def test_list_value_outside_grid_is_a_clear_error(tmp_path, toy):
    with pytest.raises(ValueError, match=r"'cl_weight' is a list.*hyper_parameters"):
        _model(tmp_path, toy, cl_weight=[0.1, 0.2])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("cl_temperature", float("nan"), "'cl_temperature' must be a finite number >= 0.001, got nan"),
        ("cl_temperature", 1e-30, r"'cl_temperature' must be a finite number >= 0.001, got 1e-30"),
        ("cl_weight", float("inf"), "'cl_weight' must be a finite number >= 0, got inf"),
        ("reg_weight", float("nan"), "'reg_weight' must be a finite number"),
        ("embedding_size", True, "'embedding_size' must be an integer >= 1, got True"),
        ("embedding_size", 2.5, "'embedding_size' must be an integer >= 1, got 2.5"),
        ("fixed_text_weight", True, r"'fixed_text_weight' must be a finite number in \[0, 1\] or null, got True"),
        ("fixed_text_weight", 1.5, r"'fixed_text_weight' must be a finite number in \[0, 1\] or null, got 1.5"),
        ("use_mda", 1, "'use_mda' must be True or False, got 1"),
        ("cl_weight", None, "'cl_weight' must be a finite number >= 0, got None"),  # null only where the table allows
        ("constant_tradeoff_weight", -0.5, "'constant_tradeoff_weight' must be a finite number >= 0 or null, got -0.5"),
        ("constant_tradeoff_weight", float("nan"), "'constant_tradeoff_weight' must be a finite number"),
    ],
)
def test_non_finite_or_boolean_numbers_are_rejected(tmp_path, toy, key, value, message):
    with pytest.raises(ValueError, match=message):
        _model(tmp_path, toy, **{key: value})


def test_feature_file_without_columns_is_rejected(tmp_path, toy):
    users, items, n_users, n_items, v, t = toy
    with pytest.raises(ValueError, match=r"text_feat\.npy has shape \(20, 0\), expected \(20, dim >= 1\)"):
        make_model(tmp_path, users, items, n_users, n_items, v, t[:, :0])


def test_feature_rows_not_matching_the_item_count_name_the_inter_file_and_both_fixes(tmp_path, toy):
    users, items, n_users, n_items, v, t = toy
    with pytest.raises(
        ValueError,
        match=r"image_feat\.npy has shape \(19, 12\), expected \(20, dim >= 1\).*largest itemID "
        r"in .*toy\.inter \+ 1.*renumber them 0\.\.n-1.*regenerate this file",
    ):
        make_model(tmp_path, users, items, n_users, n_items, v[:-1], t)


@pytest.mark.parametrize("rows, what", [("identical", "identical"), ("zero", "all zero")])
def test_a_modality_whose_rows_are_all_the_same_is_named_in_a_warning(tmp_path, toy, caplog, rows, what):
    users, items, n_users, n_items, v, t = toy
    v = np.zeros_like(v) if rows == "zero" else np.repeat(v[:1], len(v), axis=0)
    with caplog.at_level(logging.WARNING):
        make_model(tmp_path, users, items, n_users, n_items, v, t)
    [warning] = [r.getMessage() for r in caplog.records if "tells no two items apart" in r.getMessage()]
    assert f"image_feat.npy is {what}" in warning and "remove its key from the data set's yaml" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_model(tmp_path, users, items, n_users, n_items, toy[4], t)  # distinct rows: no warning
    assert "tells no two items apart" not in caplog.text


def test_invalid_choice_is_rejected(tmp_path, toy):
    with pytest.raises(ValueError, match=r"'diff_form' must be one of"):
        _model(tmp_path, toy, diff_form="sideways")


def test_single_modality_runs_with_mda_msa_off_and_one_warning(tmp_path, toy, caplog):
    users, items, n_users, n_items, v, _ = toy
    with caplog.at_level(logging.WARNING):
        model, _ = make_model(tmp_path, users, items, n_users, n_items, v, None)
    warnings = [r for r in caplog.records if "single-modality" in r.getMessage()]
    assert len(warnings) == 1
    parts = model.calculate_loss(batch_for(users, items, n_items))
    assert parts[2].item() == 0 and parts[3].item() == 0 and parts[4].item() == 0
    assert all(np.isfinite(x.item()) for x in parts)
    model.eval()
    assert model.full_sort_predict((torch.arange(3),)).shape == (3, n_items)
    emb = model.forward()  # one modality: its preference is 1, the fused embedding is H* itself
    torch.testing.assert_close(emb.users_fused, emb.users[:, 0])
    torch.testing.assert_close(emb.items_fused, emb.items[:, 0])


def test_degenerate_inputs_give_finite_losses(tmp_path):
    users, items, n_users, n_items, v, t = toy_problem(n_users=12, n_items=8, per_user=2)
    users, items = users[users != 5], items[users != 5]  # user 5 has no training items
    v[2] = 0.0  # an all-zero feature row
    model, _ = make_model(tmp_path, users, items, n_users, n_items, v, t, item_knn_k=50, user_knn_k=100)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(5):
        parts = model.calculate_loss(batch_for(users, items, n_items, seed=step))
        assert all(np.isfinite(x.item()) for x in parts)
        optimizer.zero_grad()
        sum(parts).backward()
        optimizer.step()
    model.eval()
    assert torch.isfinite(model.full_sort_predict((torch.arange(n_users),))).all()


# ---- graph cache ----


def test_graphs_are_cached_on_disk_and_keyed_by_their_inputs(tmp_path, toy, monkeypatch):
    users, items, n_users, n_items, v, t = toy
    make_model(tmp_path, users, items, n_users, n_items, v, t)
    cached = sorted(p.name for p in (tmp_path / "data" / "toy" / "mde_graphs").iterdir())
    assert len(cached) == 3  # user co-occurrence, image kNN, text kNN
    monkeypatch.setattr(mde.graphs, "cosine_knn", lambda *a, **k: pytest.fail("rebuilt a cached graph"))
    monkeypatch.setattr(mde.graphs, "cooccurrence_topk", lambda *a, **k: pytest.fail("rebuilt a cached graph"))
    make_model(tmp_path, users, items, n_users, n_items, v, t)
    with pytest.raises(pytest.fail.Exception):  # changed features must not reuse the stale graph
        make_model(tmp_path, users, items, n_users, n_items, v + 1.0, t)
    with pytest.raises(pytest.fail.Exception):  # nor another k
        make_model(tmp_path, users, items, n_users, n_items, v, t, item_knn_k=3)
    with pytest.raises(pytest.fail.Exception):
        make_model(tmp_path, users, items, n_users, n_items, v, t, user_knn_k=7)


def test_a_damaged_graph_cache_file_is_built_again(tmp_path, toy, caplog):
    """A cut-off cache file (a full disk, a killed copy) is rebuilt with a warning, never a crash."""
    users, items, n_users, n_items, v, t = toy
    first, _ = make_model(tmp_path, users, items, n_users, n_items, v, t)
    caches = sorted((tmp_path / "data" / "toy" / "mde_graphs").iterdir())
    for path in caches:
        path.write_bytes(path.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger=mde.logger.name):
        again, _ = make_model(tmp_path, users, items, n_users, n_items, v, t)
    assert caplog.text.count("cannot be read") == 3
    for name in ("user_graph", "item_graph_v", "item_graph_t"):
        assert torch.equal(first.neighbours(name).index, again.neighbours(name).index)
        assert torch.equal(first.neighbours(name).weight, again.neighbours(name).weight)
    assert all(path.stat().st_size > 50 for path in caches)  # and cached again


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
        ),
    ],
)
def test_model_trains_on_the_configured_device_like_on_cpu(tmp_path, toy, device):
    """Everything in forward and the loss runs on config['device']; results match the CPU's."""
    users, items, n_users, n_items, v, t = toy
    batch = batch_for(users, items, n_items)
    cpu_model, _ = make_model(tmp_path / "cpu", users, items, n_users, n_items, v, t, cl_negatives="all")
    model, _ = make_model(
        tmp_path / device, users, items, n_users, n_items, v, t, cl_negatives="all", device=torch.device(device)
    )  # its own data folder: graphs built on the device
    for name in ("user_graph", "item_graph_v", "item_graph_t"):
        assert torch.equal(model.neighbours(name).index.cpu(), cpu_model.neighbours(name).index)
    model = model.to(device)
    parts = model.calculate_loss(batch.to(device))
    sum(parts).backward()
    assert all(p.grad is not None and p.grad.device.type == device for p in model.parameters())
    expected = cpu_model.calculate_loss(batch)
    torch.testing.assert_close(torch.stack(parts).cpu(), torch.stack(expected).detach(), rtol=1e-4, atol=1e-5)
    model.eval()
    scores = model.full_sort_predict((torch.arange(4, device=device),))
    assert scores.device.type == device


def test_check_grid_finds_a_bad_value_at_any_grid_point_up_front():
    from mde_support import default_hyperparameters

    config = {
        **default_hyperparameters(),
        "hyper_parameters": ["seed", "cl_weight", "cl_temperature"],
        "seed": [999],
        "cl_weight": [0.01, 0.1],
        "cl_temperature": [0.2, 0.5],
    }
    mde.check_grid(config.get)  # every point valid: silent
    config["cl_temperature"] = [0.2, 0.0]
    with pytest.raises(
        ValueError,
        match=r"'cl_temperature' must be a finite number >= 0.001, got 0.0; .*main.py's command line \(--cl_temperature=VALUE\).*grid point "
        r"\{'cl_weight': 0.01, 'cl_temperature': 0.0\}",
    ):
        mde.check_grid(config.get)
    config["cl_temperature"], config["tradeoff"] = [0.2, 0.5], "preferenc"  # wrong at every point
    with pytest.raises(ValueError) as error:
        mde.check_grid(config.get)
    assert "'tradeoff' must be one of preference, independent, got 'preferenc'" in str(error.value)
    assert "grid point" not in str(error.value)  # not a grid point's fault


def test_the_log_says_which_graphs_were_built_how_full_they_are_and_what_the_losses_are(tmp_path, toy, caplog):
    with caplog.at_level(logging.INFO):
        _model(tmp_path, toy)
    built = [r.getMessage() for r in caplog.records if "MDE: built" in r.getMessage()]
    assert len(built) == 3 and all("cached at" in m and "neighbours" in m for m in built)
    assert any(m.startswith("MDE: built user_cooc graph (top-40)") for m in built)
    assert any("train_loss1..6 are L_g, L_v, L_t" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _model(tmp_path, toy)  # second construction: from the cache
    assert sum("MDE: loading" in r.getMessage() for r in caplog.records) == 3
    assert not any("MDE: built" in r.getMessage() for r in caplog.records)


def test_each_training_epoch_logs_the_mean_tradeoff_weight(tmp_path, toy, caplog):
    model = _model(tmp_path, toy)
    with torch.no_grad():
        model.item_pref_logits.copy_(torch.tensor([[0.0, math.log(3.0)]]).expand_as(model.item_pref_logits))
    line = model.post_epoch_processing()  # MMRec's trainer logs it after each training epoch
    assert "items 0.5000" in line and "mean P_t: items 0.7500" in line  # P = (0.25, 0.75) for every item
