"""Mutation check of the tier-1 tests (a developer tool, not collected by pytest): ``python tests/mutants.py``.

Each entry changes one behaviour that the paper, README or a command's documented contract fixes: in the
model (``src/models/mde.py``: an equation, a switch, the graph construction, the evaluation cache) or in the
tooling (resume, seeds, tables ranked by validation, the installer's switch and its recovery, the synthetic data,
the user graph, the bench table, override parsing). For each, the script copies the repository to a scratch folder,
applies the change and runs the tier-1 tests (the model tests for the model's mutants, all of tier 1 but the
training run and tests/test_mutants_table.py, which checks this table, for the tooling's); every change must
make some test fail. It prints one line per mutant and exits with 1 if any survives; an entry whose text is
no longer in its file, or tests that fail in the scratch copy without any mutant, stop it before the first run.

    python tests/mutants.py                 # all (about 46 minutes on 2 cores; the model's group: about 6)
    python tests/mutants.py model           # one group: model | compiled | tooling
    python tests/mutants.py "eq8 swap" C1-skip-config-if-any-seed-done     # by name
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_TESTS = [
    "tests/test_mde_reference.py",
    "tests/test_mde_equations.py",
    "tests/test_mde_model.py",
    "tests/test_mde_training.py",
]
TOOLING_TESTS = [
    "tests",
    "--deselect",
    "tests/test_mde_training.py",
    "--ignore",
    "tests/test_mutants_table.py",
    "--ignore",
    "tests/test_mde_compiled.py",
]  # it fails for every mutant (its text is gone)
M = "src/models/mde.py"
MG = "src/utils/mde_graphs.py"
MS = "src/utils/model_settings.py"
DC = "src/utils/data_checks.py"

# (file, name, text in the file, replacement)
# fmt: off
MODEL_MUTANTS = [
 (M, "train resets cache", "        self._eval_embeddings = None  # entering", "        pass  # entering"),
 (M, "temperature floor 0", "Setting(float, \"tau (eq. 7); smaller values blow its logits up\", least=1e-3)", "Setting(float, \"tau (eq. 7); smaller values blow its logits up\", least=0)"),
 (DC, "same-rows modality unnamed", 'if n_items > 1 and feat.amin(dim=0).equal(feat.amax(dim=0)):', 'if False:'),
 (M, "w/o NLT constant ignored", "                w = prefs.new_full((prefs.shape[0],), constant)", "                w = prefs.new_ones(prefs.shape[0])"),
 (MG, "eq2 power", "np.power(degree, -0.5,", "np.power(degree, -1.0,"),
 (M, "eq3 mean", "return total / (n_layers + 1)", "return total / n_layers if n_layers else total"),
 (M, "eq3 last layer only", "        total = total + e\n", "        total = e\n"),
 (MG, "eq4 no self-loop removal", "counts.data[counts.indices == own] = 0", "counts.data[counts.indices == own] = counts.data[counts.indices == own]"),
 (M, "eq4 residual ignored", "    if residual:  # the node", "    if False:  # the node"),
 (MG, "eq4 knn keep self", "                sim.fill_diagonal_(-float(\"inf\"))", "                pass"),
 (MG, "eq4 row_normalize", "np.divide(1.0, degree, out=inv, where=degree > 0)", "np.divide(2.0, degree, out=inv, where=degree > 0)"),
 (MG, "eq4 softmax", "exp = np.exp(a.data - row_max[for_rows])", "exp = a.data - row_max[for_rows] + 1"),
 (MG, "eq4 backward", "return torch.sparse.mm(transpose, grad), None, None", "return 0.5 * torch.sparse.mm(transpose, grad), None, None"),
 (M, "eq5 softmax dim", "return torch.softmax(logits, dim=-1)", "return torch.softmax(logits, dim=0)"),
 (M, "eq5 fuse", "return (per_modality * prefs.unsqueeze(-1)).flatten(1)", "return per_modality.flatten(1)"),
 (M, "eq8 swap", "return gap, 1.0 - gap", "return 1.0 - gap, gap"),
 (M, "eq9 sign", "return F.softplus(neg_scores - pos_scores).mean(0)", "return F.softplus(pos_scores - neg_scores).mean(0)"),
 (M, "eq6 bounded sign", "return -(gap.pow(2).sum(-1) * w_diff.pow(2)).mean()", "return (gap.pow(2).sum(-1) * w_diff.pow(2)).mean()"),
 (M, "eq6 bounded w not squared", "return -(gap.pow(2).sum(-1) * w_diff.pow(2)).mean()", "return -(gap.pow(2).sum(-1) * w_diff).mean()"),
 (M, "eq6 literal abs", "h_diff = -(h_v - h_t).abs() * w_diff.unsqueeze(-1)", "h_diff = -(h_v - h_t).abs()"),
 (M, "eq7 temperature", "v_to_t = F.cross_entropy(a_v @ c_t.T / temperature,", "v_to_t = F.cross_entropy(a_v @ c_t.T,"),
 (M, "eq7 one direction", "return (w_cl * (v_to_t + t_to_v)).mean()", "return (w_cl * (2 * v_to_t)).mean()"),
 (M, "eq7 no weight", "return (w_cl * (v_to_t + t_to_v)).mean()", "return ((v_to_t + t_to_v)).mean()"),
 (M, "eq7 t_to_v uses c_t", "t_to_v = F.cross_entropy(a_t @ c_v.T / temperature,", "t_to_v = F.cross_entropy(a_t @ c_t.T / temperature,"),
 (M, "eq10 modal bpr index", "l_modal = dict(zip(self.modalities, bpr_loss(pos_m, neg_m)))", "l_modal = dict(zip(self.modalities, bpr_loss(pos_m, neg_m)[[0, 0]]))"),
 (M, "eq11 reg scale", "return self.hp.reg_weight * total / batch", "return self.hp.reg_weight * total"),
 (M, "eq11 reg no neg", "squares(emb.item_e0, rows.ij[:batch], rows.ij[batch:])", "squares(emb.item_e0, rows.ij[:batch])"),
 (M, "sigma_diff ignored", "diff = self.hp.diff_weight * modality_gap_loss", "diff = modality_gap_loss"),
 (M, "sigma_cl ignored", "return diff, self.hp.cl_weight * cl", "return diff, cl"),
 (M, "stopgrad flipped", "if not self.hp.tradeoff_grad:", "if self.hp.tradeoff_grad:"),
 (M, "nlt off not constant", "                return w, w\n", "                return w, 0.5 * w\n"),
 (M, "variantB sigmoid swap", "            return w, 1.0 - w", "            return 1.0 - w, w"),
 (M, "fixed text weight swap", "return torch.tensor([1.0 - w_t, w_t]", "return torch.tensor([w_t, 1.0 - w_t]"),
 (M, "anchors all items", "anchors = torch.unique(ij[: len(users)])", "anchors = torch.unique(ij)"),
 (MG, "cooc ties", "keep = (counts > t) | (tied & (tied_rank < (k - above)[rows]))", "keep = (counts > t) | (tied & (tied_rank <= (k - above)[rows]))"),
 (MG, "knn bf16 bound", "uncertain = rows[top_sim[rows, -1] <= candidates.sim[rows, -1] + BF16_SIMILARITY_ERROR]", "uncertain = rows[:0]"),
 (M, "user cl anchors", '_discrimination_losses("user", emb.users, emb.user_prefs, anchors, user_rows, False)', '_discrimination_losses("item", emb.users, emb.user_prefs, anchors, user_rows, False)'),
 (M, "cl all positive index", "candidates = (table[:, 0], table[:, 1], anchors) if", "candidates = (table[:, 0], table[:, 1], torch.arange(len(anchors))) if"),
 (M, "eq7 cl_similarity ignored", '*candidates, similarity=self.hp.cl_similarity)', '*candidates, similarity="cosine")'),
 (M, "eq7 dot normalises", "return F.normalize(x, dim=-1) if similarity == \"cosine\" else x", "return F.normalize(x, dim=-1)"),
 (M, "eq7 dot candidates normalised", "c_v, c_t = rows(candidates_v), rows(candidates_t)", "c_v, c_t = F.normalize(candidates_v, dim=-1), F.normalize(candidates_t, dim=-1)"),
 (M, "variantB item node ids", 'rows.anchors, rows.anchor_items, all_items', 'rows.anchors, rows.anchors, all_items'),
 (M, "item graph swap", 'item_graphs = [self.neighbours(f"item_graph_{m}") for m in self.modalities]', 'item_graphs = [self.neighbours(f"item_graph_{m}") for m in self.modalities[::-1]]'),
 (M, "user/item prefs swap", "self._preferences(\"item\", item_rows)", "self._preferences(\"user\", item_rows)"),
 (MG, "adjacency duplicates", "    r.sum_duplicates()\n    r.data[:] = 1.0\n    adj", "    r.sum_duplicates()\n    adj"),
 (MG, "cooc duplicates", "    r.sum_duplicates()\n    r.data[:] = 1.0\n    rt", "    r.sum_duplicates()\n    rt"),
 (MG, "knn no normalise", "x = x / norms.clamp_min(1e-12)", "x = x"),
 (MG, "padding weight", "weight = np.zeros((n, width), dtype=np.float32)", "weight = np.full((n, width), 0.1, dtype=np.float32)"),
 (M, "residual weight", "weight = torch.cat([torch.ones_like(weight[:, :1]), weight], dim=1)", "weight = torch.cat([0.5 * torch.ones_like(weight[:, :1]), weight], dim=1)"),
 (MG, "knn symmetric half", "            if a != b:\n                _merge_candidates(best, rows_b, sim.T, a)", "            pass"),
 (MG, "knn col offset", "_merge_candidates(best, rows_a, sim, b)", "_merge_candidates(best, rows_a, sim, a)"),
 (M, "predict rows", "return users_fused[interaction[0]] @ items_fused.T", "return users_fused[:len(interaction[0])] @ items_fused.T"),
 (MG, "rerank order", "return torch.gather(cand, 1, order), top_sim", "return cand[:, :k], top_sim"),
 (M, "layers count", "for _ in range(n_layers):", "for _ in range(max(n_layers - 1, 0)):"),
 (M, "use_msa ignored", "        if not self.use_msa:\n            return diff, zero", "        if False:\n            return diff, zero"),
 (M, "use_mda ignored", "if self.use_mda else zero", "if True else zero"),
 (M, "reg zero shortcut", "        if self.hp.reg_weight == 0:\n            return self.user_features.new_zeros(())", "        if self.hp.reg_weight < 1:\n            return self.user_features.new_zeros(())"),
 (M, "single modality prefs", "            return torch.ones(len(rows), 1, device=rows.device)", "            return 0.5 * torch.ones(len(rows), 1, device=rows.device)"),
 (MG, "cache key ignores input", "key = hashlib.blake2b(f\"{GRAPH_CACHE_VERSION}|{kind}|{k}|{inputs}\"", "key = hashlib.blake2b(f\"{GRAPH_CACHE_VERSION}|{kind}|{k}|\""),
 (MG, "user graph weighting ignored", 'return row_softmax(counts) if weighting == "softmax" else row_normalize(counts)', 'return row_softmax(counts)'),
 (M, "xavier user", "nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, n_mod * d)))", "nn.Parameter(nn.init.normal_(torch.empty(self.n_users, n_mod * d)))"),
 (MG, "damaged graph cache crashes", "        except Exception as exc:  # a cut-off", "        except ImportError as exc:  # a cut-off"),
 (MG, "stacked modality offset", "* n_mod + m)", "* n_mod)"),
 (M, "eq9 fused margin prefs", "l_g = bpr_loss((p_u * p_i[:batch] * pos_m).sum(-1), (p_u * p_i[batch:] * neg_m).sum(-1))", "l_g = bpr_loss((p_u * pos_m).sum(-1), (p_u * neg_m).sum(-1))"),
 (MS, "settings: booleans read as numbers", "elif not is_bool and isinstance(value, (int, float, np.number, str)):", "elif isinstance(value, (int, float, np.number, str)):"),
 (MS, "settings: no upper bound", "and (setting.most is None or parsed <= setting.most)", "and True"),
 (MS, "settings: nullable ignored", "    if value is None and setting.nullable:\n        return None", "    if value is None:\n        return None"),
 # wrong models that only a reference of the whole forward pass and of L_g's gradient tells apart
 # (tests/test_mde_reference.py): a modality's graph, preference or projection mixed up, a stage skipped
 (M, "eq1 text through image projection", 'self.projections[m](getattr(self, f"item_features_{m}"))', 'self.projections["v"](getattr(self, f"item_features_{m}"))'),
 (M, "eq1 modality features swapped", 'self.projections[m](getattr(self, f"item_features_{m}"))', 'self.projections[m](getattr(self, f"item_features_{dict(v=\'t\', t=\'v\').get(m, m)}"))'),
 (M, "eq1 one user table for both", "e0 = torch.cat([self.user_features, item_e0], dim=0)", "e0 = torch.cat([self.user_features[:, :d].repeat(1, n_mod), item_e0], dim=0)"),
 (MG, "eq2 random-walk normalisation", 'return (scale @ adj @ scale)', 'return (scale @ scale @ adj)'),
 (MG, "eq2 backward halved", 'return None, torch.sparse.mm(ctx.adjacency, grad)', 'return None, torch.sparse.mm(ctx.adjacency, 0.5 * grad)'),
 (M, "eq2-3 user-item graph skipped", "h_bar = layer_mean_propagation(self.ui_graph, e0, self.hp.n_layers)", "h_bar = e0"),
 (M, "eq3 n_layers ignored", "h_bar = layer_mean_propagation(self.ui_graph, e0, self.hp.n_layers)", "h_bar = layer_mean_propagation(self.ui_graph, e0, 2)"),
 (M, "eq3 layer 0 left out", "total, e = e0, e0", "total, e = torch.zeros_like(e0), e0"),
 (M, "eq4 text over image graph", 'item_graphs = [self.neighbours(f"item_graph_{m}") for m in self.modalities]', 'item_graphs = [self.neighbours("item_graph_v") for m in self.modalities]'),
 (M, "eq4 image over text graph", 'item_graphs = [self.neighbours(f"item_graph_{m}") for m in self.modalities]', 'item_graphs = [self.neighbours("item_graph_t") for m in self.modalities]'),
 (M, "eq4 image columns for both", "            items_bar.reshape(-1, d), self.neighbours(\"item_graphs\"), item_modality_rows, residual\n", "            items_bar[:, :d].repeat(1, n_mod).reshape(-1, d),\n            self.neighbours(\"item_graphs\"),\n            item_modality_rows,\n            residual,\n"),
 (M, "eq4 user graph skipped", "users = homogeneous_convolution(users_bar, self.neighbours(\"user_graph\"), user_rows, residual)", "users = users_bar.index_select(0, user_rows)"),
 (M, "eq4 user graph identity", 'self._register_neighbours("user_graph", user_graph)', 'self._register_neighbours("user_graph", graphs.sp.identity(self.n_users, dtype=np.float32, format="csr"))'),
 (M, "eq4 item graphs identity", 'self._register_neighbours(f"item_graph_{m}", graphs.item_graph(feat, k_i, m, cache, hp.graph_cache))', 'self._register_neighbours(f"item_graph_{m}", graphs.sp.identity(self.n_items, dtype=np.float32, format="csr"))'),
 (MG, "eq4 item graphs summed", '    return row_normalize(knn)\n', '    return knn\n'),
 (MG, "eq4 user graph mean by default", 'return row_softmax(counts) if weighting == "softmax" else row_normalize(counts)', 'return row_normalize(counts)'),
 (M, "eq4 graphs transposed", 'lists = graphs.neighbour_lists(adjacency)', 'lists = graphs.neighbour_lists(adjacency.T.tocsr())'),
 (M, "eq4 user graph with item k", 'user_graph = graphs.user_graph(interactions, k_u,', 'user_graph = graphs.user_graph(interactions, k_i,'),
 (M, "eq4 item graphs with user k", 'graphs.item_graph(feat, k_i, m,', 'graphs.item_graph(feat, k_u, m,'),
 (MG, "eq4 cooc top-k ignored", 'blocks.append(_top_counts_per_row(counts, k))', 'blocks.append(counts)'),
 (MG, "eq4 knn least similar", 'top_sim, order = torch.topk(exact, k, dim=1)', 'top_sim, order = torch.topk(exact, k, dim=1, largest=False)'),
 (M, "eq4 residual always", "    if residual:  # the node", "    if True:  # the node"),
 (M, "eq4 residual row ids", "index = torch.cat([rows.unsqueeze(1), index], dim=1)", "index = torch.cat([torch.arange(len(rows)).unsqueeze(1), index], dim=1)"),
 (M, "eq5 sigmoid preferences", "return torch.softmax(logits, dim=-1)", "return torch.sigmoid(logits)"),
 (M, "eq5 preferences detached", "return torch.softmax(logits, dim=-1)", "return torch.softmax(logits, dim=-1).detach()"),
 (M, "eq5 preference rows", 'getattr(self, f"{side}_pref_logits").index_select(0, rows)', 'getattr(self, f"{side}_pref_logits")[:len(rows)]'),
 (M, "eq5 user prefs on other modality", "fuse(users, user_prefs),", "fuse(users, user_prefs.flip(1)),"),
 (M, "eq5 item prefs on other modality", "fuse(items, item_prefs),", "fuse(items, item_prefs.flip(1)),"),
 (M, "eq9 user prefs detached", "p_u, p_i = emb.user_prefs.index_select(0, u),", "p_u, p_i = emb.user_prefs.index_select(0, u).detach(),"),
 (M, "eq9 item prefs detached", "emb.item_prefs.index_select(0, ij)\n", "emb.item_prefs.index_select(0, ij).detach()\n"),
 (M, "eq5 fused halves swapped", "return (per_modality * prefs.unsqueeze(-1)).flatten(1)", "return (per_modality * prefs.unsqueeze(-1)).flip(1).flatten(1)"),
 (M, "eq5 user fused halves swapped", "fuse(users, user_prefs),", "fuse(users, user_prefs).roll(d, 1),"),
 (M, "eq5 fused interleaved", "return (per_modality * prefs.unsqueeze(-1)).flatten(1)", "return (per_modality * prefs.unsqueeze(-1)).transpose(1, 2).flatten(1)"),
 (M, "eq9 unfused embeddings", "l_g = bpr_loss((p_u * p_i[:batch] * pos_m).sum(-1), (p_u * p_i[batch:] * neg_m).sum(-1))", "l_g = bpr_loss(pos_m.sum(-1), neg_m.sum(-1))"),
 (M, "scores unfused embeddings", 'self._eval_embeddings = (emb.users_fused, emb.items_fused)', 'self._eval_embeddings = (emb.users.flatten(1), emb.items.flatten(1))'),
 (M, "H-bar rows", "users_bar.index_select(0, user_rows).view(-1, n_mod, d)", "users_bar[:len(user_rows)].view(-1, n_mod, d)"),
 (M, "item_e0 rows", "item_e0.index_select(0, item_rows)", "item_e0[:len(item_rows)]"),
 (M, "eq1 items before users", "e0 = torch.cat([self.user_features, item_e0], dim=0)", "e0 = torch.cat([item_e0, self.user_features], dim=0)"),
 (MG, "eq2 self loops", 'adj = sp.bmat([[None, r], [r.T, None]], format="csr")', 'adj = (sp.bmat([[None, r], [r.T, None]]) + sp.identity(sum(r.shape))).tocsr()'),
 (M, "eq2 every layer from E0", '        e = graphs.symmetric_product(adjacency, e)  # eq. 2', '        e = graphs.symmetric_product(adjacency, e0)  # eq. 2'),
]

C = "mde_mmrec/compare.py"
G = "mde_mmrec/grid.py"
R = "mde_mmrec/report.py"
P = "mde_mmrec/reproduce.py"
S = "mde_mmrec/synthetic.py"
U = "mde_mmrec/usergraph.py"
I = "mde_mmrec/installer.py"
B = "mde_mmrec/bench.py"
X = "mde_mmrec/mmrec.py"
L = "mde_mmrec/cli.py"
K = "mde_mmrec/core.py"
N = "mde_mmrec/runner.py"
O = "src/utils/cli_overrides.py"
TOOLING_MUTANTS = [
 # one run per folder, interruption, settings without a sidecar, damaged installs
 (N, "N-no-lock", "        lock.acquire()\n", "        pass\n"),
 (N, "N-interrupt-leaves-main-py", "            stop_process(process)\n", "            pass\n"),
 (N, "N-child-outlives-a-killed-command", "    _prctl()(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)", "    pass"),
 (N, "N-leftover-main-py-ignored", "        if writers:\n", "        if False:\n"),
 ("src/utils/results_log.py", "RL-duplicates-counted", "        if key is None or key not in seen:", "        if True:"),
 ("src/utils/results_log.py", "RL-torn-line-kept", "    if torn:\n        write_records(", "    if False:\n        write_records("),
 (L, "L-sigterm-not-handled", "    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))", "    pass"),
 (K, "C-no-sidecar-trusted", "    return results_log().read_results(results_file) if settings_file(results_file).is_file() else []", "    return results_log().read_results(results_file)"),
 (K, "C-legacy-lines-trusted", '    if any("settings" not in r for r in records):', "    if False:"),
 ("src/utils/results_log.py", "RL-legacy-lines-resumed", '        if "settings" not in r:\n', '        if "settings" not in r:\n            continue\n        if False:\n'),
 (X, "X-damaged-plugin-info-accepted", "    if not isinstance(info, dict):\n        raise MdeMmrecError", "    if False:\n        raise MdeMmrecError"),
 (K, "C-sidecar-written-unverified", "    if verified or settings_file(results_file).is_file() or not results_log().read_results(results_file):", "    if True:"),
 (DC, "DC-feature-file-shape-unchecked", "    if len(shape) != 2 or 0 in shape or array.dtype.kind not in \"biuf\":", "    if False:"),
 (I, "I-interrupted-switch-not-completed", "    _complete(root, target)\n    done =", "    marker.unlink()\n    done ="),
 # compare
 (K, "C-imports-mmrec-own-packages-missing", "if not ((src / name).is_dir() or (src / f\"{name}.py\").is_file()) and", "if"),
 (K, "C-imports-of-functions-too", "    for node in body:", "    for node in ast.walk(ast.Module(body=body, type_ignores=[])):"),
 (K, "C-check-model-ignores-imports", "    reason = why_not_runnable(model, checkout=checkout)\n", "    reason = why_not_runnable(model)\n"),
 (P, "P-from-grid-note-ignored", "        sigma_note(from_grid),\n", "        sigma_note(None),\n"),
 (I, "I-older-mmrec-model-not-skipped", 'for rel in absent if not rel.startswith("src/models/"))', 'for rel in absent)'),
 (I, "I-older-mmrec-sections-kept", "    return header + \"\".join(s for s in sections if not set(patched_files(s)) & skip)", "    return header + \"\".join(sections)"),
 (DC, "DC-cold-start-filter-ignored", "        if cold_start_filter:", "        if False:"),
 (DC, "DC-all-items-user-off-by-one", "    full = np.flatnonzero(items_per_user >= items_in_training)", "    full = np.flatnonzero(items_per_user > items_in_training)"),
 (DC, "DC-all-items-counts-every-item", "    items_in_training = int(np.bincount(distinct % n_items, minlength=n_items).astype(bool).sum())", "    items_in_training = n_items"),
 (DC, "DC-feature-nan-unchecked", "    if len(bad_rows):", "    if False:"),
 (DC, "DC-huge-features-unwarned", "    if largest > LARGEST_FEATURE:", "    if False:"),
 (DC, "DC-topk-unchecked", "    if topk and max(topk) > n_items:", "    if False:"),
 (DC, "DC-overlap-uncounted", "        repeated = int(found.sum())", "        repeated = 0"),
 (DC, "DC-id-gaps-off-by-one", "    n_users, n_items = int(df[uid].max()) + 1, int(df[iid].max()) + 1", "    n_users, n_items = int(df[uid].max()), int(df[iid].max())"),
 (DC, "DC-feature-rows-unchecked", "    if n_items is not None and shape[0] != n_items:", "    if False:"),
 (DC, "DC-raw-ids-unchecked", "        if count > RAW_ID_FACTOR * distinct + RAW_ID_SLACK:", "        if False:"),
 (DC, "DC-byte-order-unnamed", "if not array.dtype.isnative\n", "if False\n"),
 (DC, "DC-float32-range-unchecked", "    if largest > float(np.finfo(np.float32).max):", "    if False:"),
 (DC, "DC-named-missing-file-ignored", '        if key in named and model != "MDE":', "        if False:"),
 (DC, "DC-no-feature-file-passes", "    if not present:\n        raise DataError", "    if False:\n        raise DataError"),
 (DC, "DC-scan-cache-by-mtime-only", "    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns", "    return stat.st_size, stat.st_mtime_ns"),
 (O, "O-data-warnings-not-printed", '        print(f"main.py: warning: -d {dataset}: {warning}", file=sys.stderr)', "        pass"),
 (I, "I-already-applied-not-told", '    if _out(root, "log", "-1", "--format=%H", f"--author=<{EMAIL}>", base):', "    if False:"),
 (K, "C1-skip-config-if-any-seed-done", "        if not todo:\n", "        if done:\n"),
 (K, "C2-collect-keeps-other-seeds", " if r.get(\"seed\") in seeds]", "]"),
 (K, "C3-collect-failed-into-table", "overrides=chosen) for r in lines if not r.get(\"failed\")]", "overrides=chosen) for r in lines]"),
 (K, "C4-pin-last-grid-value", "        overrides[key] = value[0] if value else None", "        overrides[key] = value[-1] if value else None"),
 (K, "C5-pin-overrides-user-set", "        if key == \"seed\" or key in sets or not", "        if key == \"seed\" or not"),
 (K, "C6-single-values-only-grid-keys", "    lists = [\n        f\"{k}={v}\"\n        for k, v in sets.items()\n        if isinstance(v, list)\n        and k != \"hyper_parameters\"\n        and (k in file_grid or not isinstance(file_config.get(k), list))\n    ]\n", "    lists = [f\"{k}={v}\" for k, v in sets.items() if isinstance(v, list) and k != \"hyper_parameters\" and k in file_grid]\n"),
 ("src/utils/results_log.py", "C7-gpu_id-in-settings", '    "gpu_id",\n', ""),
 ("src/utils/results_log.py", "C7b-grid_shard-in-settings", '    "grid_shard",\n', ""),
 (K, "C8-settings-ignore-data-digest", "    if recorded != settings:\n", "    if recorded[\"config\"] != settings[\"config\"]:\n"),
 (K, "C9-seed_list-keeps-duplicates", "list(dict.fromkeys(values)) if values", "list(values) if values"),
 (K, "C10-default-seeds-off-by-one", "[DEFAULT_SEED + i for i in range(n or 1)]", "[DEFAULT_SEED + i + 1 for i in range(n or 1)]"),
 (K, "C11-no-unique-label-check", "    if len(set(labels)) != len(labels):", "    if False:"),
 (K, "C12-no-feature-file-check", "    if model is None or cfg.get(\"is_multimodal_model\"):", "    if model is None:"),
 (K, "C13-failed-seed-status-not-set", "            if failed and (status[cfg.label] == \"ok\" or status[cfg.label].startswith(\"failed (exit\")):\n", "            if False:\n"),
 # grid
 (G, "G1-done_params-ignores-dataset", 'if r.get("model") == model and r.get("dataset") == dataset]', 'if r.get("model") == model]'),
 (G, "G2-merge-no-dedupe", "    records, repeated = results_log.unique_points([r for path in files for r in results_log.read_results(path)])", "    records, repeated = [r for path in files for r in results_log.read_results(path)], 0"),
 (G, "G3-shard-off-by-one", "if not shard or index % shard[1] == shard[0] - 1]", "if not shard or index % shard[1] == shard[0] % shard[1]]"),
 (G, "G4-best-is-last-row", "    best = table.iloc[0]  # the table's first row: best by the mean over the point's seeds\n", "    best = table.iloc[-1]  # the table's first row: best by the mean over the point's seeds\n"),
 (G, "G5-grid-seed-default-ignores-yaml", "    values[\"seed\"] = list(seeds) if seeds else merged.get(\"seed\", core.DEFAULT_SEED)\n", "    values[\"seed\"] = list(seeds) if seeds else core.DEFAULT_SEED\n"),
 # report
 (R, "R1-best-grid-point-by-test", '.sort_values("valid recall@20", ascending=False', '.sort_values("test recall@20", ascending=False'),
 (R, "R2-valid-columns-from-test", '**{f"valid.{k}": v for k, v in (r.get("best_valid") or {}).items()}', '**{f"valid.{k}": v for k, v in (r.get("test") or {}).items()}'),
 (R, "R3-std-ddof0", 'groups[k].std(ddof=1)', 'groups[k].std(ddof=0)'),
 (R, "R4-bold-min", 'summary[f"{k} mean"].max() for k in METRIC_KEYS}', 'summary[f"{k} mean"].min() for k in METRIC_KEYS}'),
 (R, "R5-bold-single-row", 'for k in METRIC_KEYS} if len(summary) > 1 else {}', 'for k in METRIC_KEYS}'),
 (R, "R6-epochs_to_best-no-plus1", 'else r["best_epoch"] + 1,', 'else r["best_epoch"],'),
 (R, "R7-heatmap-mean", 'values=value, aggfunc="max")', 'values=value, aggfunc="mean")'),
 (R, "R8-summary-mean-over-model-not-label", '    groups = frame.groupby("label", sort=False)\n', '    groups = frame.assign(label=frame["model"]).groupby("label", sort=False)\n'),
 (R, "R9-grid-ascending", 'ascending=False, kind="stable")', 'ascending=True, kind="stable")'),
 # reproduce
 (P, "P1-table1-ignores-paper-dataset", 'theirs.get((label, k, d), "-")', 'theirs.get((label, k, "baby"), "-")'),
 (P, "P2-paper-dataset-always-baby", '    pd_name = paper_dataset or (dataset if dataset in PAPER_DATASETS else "baby")', '    pd_name = paper_dataset or "baby"'),
 (P, "P3-not-run-counts-as-failed", '    failed = {label: s for label, s in status.items() if s != "ok" and not s.startswith("not run")}', '    failed = {label: s for label, s in status.items() if s != "ok"}'),
 (P, "P4-best-grid-point-keeps-failed", '    records = [r for r in results if r.get("model") == "MDE" and not r.get("failed")]\n', '    records = [r for r in results if r.get("model") == "MDE"]\n'),
 (P, "P5-wo-NLT-keeps-NLT", 'core.RunConfig("w/o NLT", "MDE", {"use_nlt": False})', 'core.RunConfig("w/o NLT", "MDE", {"use_nlt": True})'),
 (P, "P6-partial-seeds-not-marked", '    return text if row["n_seeds"] >= n_seeds else', '    return text if row["n_seeds"] >= 1 else'),
 (P, "P7-model_sets-override-variant", '{**(model_sets or {}).get(c.model, {}), **c.overrides}', '{**c.overrides, **(model_sets or {}).get(c.model, {})}'),
 (P, "P8-readings-verdict-ignores-noise", "    if abs(m1 - m0) <= s0 + s1:", "    if abs(m1 - m0) <= max(s0, s1):"),
 (P, "P9-readings-verdict-direction", '    return "other value better beyond seed noise" if m1 > m0 else', '    return "other value better beyond seed noise" if m1 < m0 else'),
 (P, "P10-readings-sigmas-chosen-on-test", '[r["best_valid"][metric] for r in records if r["label"] == label]', '[r["test"][metric] for r in records if r["label"] == label]'),
 (P, "P11-readings-sigmas-chosen-on-one-seed", '{label: statistics.mean(v) for label, v in values.items() if v}', '{label: v[0] for label, v in values.items() if v}'),
 # synthetic
 (S, "S1-valid-gets-larger-half", "    n_valid = np.where(n < 10, 1, held // 2)", "    n_valid = np.where(n < 10, 1, held - held // 2)"),
 (S, "S2-text-weight-inverted-in-choice", '    u = np.concatenate([lat["user_shared"], (1 - w) * lat["user_visual"], w * lat["user_text"]], axis=1)', '    u = np.concatenate([lat["user_shared"], w * lat["user_visual"], (1 - w) * lat["user_text"]], axis=1)'),
 (S, "S4-interactions-written-first", "    np.save(files[\"image\"], image)  # the large files first: a write cut short leaves no interaction file,\n    np.save(files[\"text\"], text)  # so the next make-data starts again rather than calling the set incomplete\n    inter.to_csv(files[\"inter\"], sep=\"\\t\", index=False)\n", "    inter.to_csv(files[\"inter\"], sep=\"\\t\", index=False)\n    np.save(files[\"image\"], image)  # the large files first: a write cut short leaves no interaction file,\n    np.save(files[\"text\"], text)  # so the next make-data starts again rather than calling the set incomplete\n"),
 (S, "S3-incomplete-dataset-overwritten", '    if files["inter"].is_file() and not force:\n        raise', '    if False:\n        raise'),
 (S, "S4-activity-plus-one", "    n = MIN_PER_USER + rng.geometric(1.0 / (1.0 + extra_mean), size=p.n_users) - 1", "    n = MIN_PER_USER + rng.geometric(1.0 / (1.0 + extra_mean), size=p.n_users)"),
 (S, "S5-no-stale-cache-removal", "            stale.unlink()", "            pass"),
 (S, "S6-reuse-other-seed", "        if made_with != (preset, seed):", "        if made_with[0] != preset:"),
 (S, "S7-time-not-sorted-per-user", "    order = np.lexsort((items, ts, users))", "    order = np.lexsort((ts, items, users))"),
 # usergraph
 (U, "U1-graph-from-train-and-valid", "    train = frame[frame[label] == 0]", "    train = frame[frame[label] != 2]"),
 (U, "U2-n_users-from-train", "    n_users = int(frame[uid].nunique())", "    n_users = int(frame[frame[label] == 0][uid].nunique())"),
 (U, "U3-self-loop-block-offset", "        other = counts.indices != start + owner", "        other = counts.indices != owner"),
 (U, "U4-cap-plus-one", "np.bincount(owner, minlength=stop - start), cap)", "np.bincount(owner, minlength=stop - start), cap + 1)"),
 (U, "U5-duplicates-counted", "shape=(n_users, n_items)).sign()", "shape=(n_users, n_items))"),
 (U, "U6-progress-every-call", "        if last is None or now - last >= every_s:", "        if True:"),
 # installer
 (I, "I1-main-py-not-first-when-installing", '(rel == "src/main.py") != installing', '(rel == "src/main.py") == installing'),
 (I, "I2-stale-git-locks-kept", "            lock.unlink()  # left by a git command killed with the switch\n", "            pass  # left by a git command killed with the switch\n"),
 (I, "I3-uncommitted-edits-overwritten", "    if dirty:\n", "    if False:\n"),
 (I, "I4-ignored-files-overwritten", '"--untracked-files=all", "--ignored", ', '"--untracked-files=all", '),
 (I, "I5-failed-switch-not-undone", "            _write_marker(root, undo)\n            _complete(root, undo)", "            pass"),
 (I, "I6-switch-without-marker", "    _write_marker(root, target)\n    try:", "    try:"),
 (I, "I7-uninstall-ignores-edits", "    if dirty and not force:", "    if False:"),
 (I, "I8-branch-kept-on-uninstall", '    if not target["branch"]:\n        _git(root, "update-ref", "-d", BRANCH_REF)', '    if False:\n        pass'),
 (I, "I9-users-commits-dropped", "    if not _ours(root, head) and not force:", "    if False:"),
 (I, "I10-rebuilds-when-up-to-date", '        if installed.get("fingerprint") == stamp:', "        if False:"),
 (X, "X-mid-switch-checkout-accepted", "    if (root / SWITCH_MARKER).exists():\n        raise", "    if False:\n        raise"),
 # bench
 (B, "B1-cache-not-emptied", "            cache.unlink()  # so that", "            pass  # so that"),
 (B, "B2-table-valid-from-test", 'fmt(r["best_valid"].get("recall@20"), 4)', 'fmt(r["test"].get("recall@20"), 4)'),
 (B, "B3-ratio-inverted", 'return f"{by_model[a][key] / by_model[b][key]:.3f}"', 'return f"{by_model[b][key] / by_model[a][key]:.3f}"'),
 (B, "B4-user-env-overridden", "        os.environ.setdefault(key, value)", "        os.environ[key] = value"),
 (B, "B5-eval-repeats-one", "model_eval_seconds, 5 if size < 10**9 else 1, shares)", "model_eval_seconds, 1, shares)"),
 (B, "B6-not-run-reason-dropped", "by_model, status, shares, profiles = {}, dict(not_run), {}, {}", "by_model, status, shares, profiles = {}, {}, {}, {}"),
 (B, "B7-nested-operators-counted", '        and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))\n', ""),
 (B, "B8-unprofiled-reason-dropped", 'f"not profiled: {reason}"', '"not profiled"'),
 (B, "B10-report-only-at-the-end", "        write()\n    ran = [m for m in models if m in by_model]", "    ran = [m for m in models if m in by_model]"),
 (B, "B12-gpu-annotations-counted", ' and not getattr(e, "is_user_annotation", False)]', "]"),
 (B, "B13-results-file-holds-the-last-run", '        core.results_log().write_records(run_dir / "results.jsonl", list(by_model.values()))', "        pass"),
 (B, "B14-no-report-before-the-first-run", "    write()\n    for config in configs:", "    for config in configs:"),
 ("bench/gpu.sh", "GS1-runs-logs-not-archived", "    esac\n    archive_runs\n}", "    esac\n}"),
 ("bench/gpu.sh", "GS2-compiled-copy-as-shipped", "sed -i 's/^compile_losses: False/compile_losses: True/' \"$yaml\"", "true"),
 (B, "B9-profile-steps-flag-ignored", "        profile_steps=args.profile_steps,\n", "        profile_steps=0,\n"),
 # cli_overrides
 (O, "O1-list-setting-ignores-grid", "        list_setting = isinstance(default, list) and key not in file_grid", "        list_setting = isinstance(default, list)"),
 (O, "O2-int-not-a-number-for-floats", '    if isinstance(value, (int, float)):\n        return "a number"', '    if isinstance(value, int):\n        return "a number"'),
 (O, "O3-no-wrap-single-grid-value", "            value = value if isinstance(value, list) else [value]\n", ""),
 (O, "O4-dropped-key-not-unwrapped", "            config_dict[key] = value[0]\n", "            pass\n"),
 (O, "O5-no-resume-check", "        results_log.check_resume(merged)", "        pass"),
 (O, "O6-no-seed-first", '        grid.insert(0, "seed")', '        pass'),
 (O, "O8-space-form-takes-negative-as-flag", '        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):', '        elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):'),
 (O, "O-duplicate-grid-value-runs", "            if repeated:\n", "            if False:\n"),
]
# fmt: on
# compile_losses: tests of their own, kept out of the model's group (each compiles for seconds)
COMPILED_MUTANTS = [
    (
        M,
        "compile_losses ignored",
        "self._compiled(self.batch_losses) if hp.compile_losses else",
        "self.batch_losses if hp.compile_losses else",
    ),
    (M, "no C++ compiler check", "if shutil.which(compiler) is None:", "if False:"),
    (M, "compiled graphs kept across models", "        torch.compiler.reset()\n", ""),
    (M, "compiled not deterministic", "            torch.use_deterministic_algorithms(True, warn_only=True)\n", ""),
]
GROUPS = {
    "model": (MODEL_MUTANTS, MODEL_TESTS),
    "compiled": (COMPILED_MUTANTS, ["tests/test_mde_compiled.py"]),
    "tooling": (TOOLING_MUTANTS, TOOLING_TESTS),
}


def stale_entries(mutants) -> list[str]:
    """The entries whose text does not occur exactly once in their file (the code moved on: update them)."""
    counts = ((name, path, (REPO / path).read_text(encoding="utf-8").count(old)) for path, name, old, _ in mutants)
    return [f"mutant {name!r}: its text occurs {n} times in {path}" for name, path, n in counts if n != 1]


def run(path: str, name: str, old: str, new: str, tests: list[str]) -> bool:
    """Whether the tests catch the mutant (``old`` occurs exactly once in ``path``: ``stale_entries``)."""
    result = _tier1_in_a_copy(tests, path, old, new)
    failed = next((line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))), "")
    print(f"{name:38s} {'caught  ' + failed[:100] if result.returncode else 'SURVIVED'}", flush=True)
    return result.returncode != 0


def _tier1_in_a_copy(tests: list[str], path: str | None = None, old: str = "", new: str = ""):
    """Run ``tests`` in a scratch copy of the repository, with ``old`` replaced by ``new`` in ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("src", "tests", "mde_mmrec", "patches", "bench", "docs"):  # what tier 1 reads
            shutil.copytree(REPO / folder, Path(tmp) / folder, ignore=shutil.ignore_patterns("__pycache__"))
        for file in ("setup.cfg", "pyproject.toml", "README.md"):
            shutil.copy(REPO / file, Path(tmp) / file)
        if path is not None:
            source = (REPO / path).read_text(encoding="utf-8")
            (Path(tmp) / path).write_text(source.replace(old, new), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "MMREC_HOME"}  # tier 1 only
        env["PYTHONPATH"] = tmp  # the copy's mde_mmrec, not the installed one
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )


def main(names: list[str]) -> int:
    chosen = []
    for group, (mutants, tests) in GROUPS.items():
        chosen += [(m, tests) for m in mutants if not names or group in names or m[1] in names]
    unknown = set(names) - set(GROUPS) - {m[1] for m, _ in chosen}
    if unknown:
        raise SystemExit(f"unknown group or mutant name(s): {sorted(unknown)}")
    stale = stale_entries([m for m, _ in chosen])
    if stale:  # before any run, not after minutes of them
        raise SystemExit("; ".join(stale) + "; update the entries")
    for tests in {tuple(tests) for _, tests in chosen}:  # unmutated, the copy must pass: else every mutant
        baseline = _tier1_in_a_copy(list(tests))  # would look caught
        if baseline.returncode:
            failed = [line for line in baseline.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            raise SystemExit(
                f"the tests fail in the scratch copy without any mutant ({'; '.join(failed[:3])}): "
                "fix that first (a file tier 1 reads not copied?)"
            )
    survivors = [m[1] for m, tests in chosen if not run(*m, tests)]
    print(
        f"{len(chosen) - len(survivors)} of {len(chosen)} mutants caught"
        + (f"; survived: {', '.join(survivors)}" if survivors else "")
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
