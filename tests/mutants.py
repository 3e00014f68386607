"""Mutation check of the model tests (a developer tool, not collected by pytest): ``python tests/mutants.py``.

Each entry below changes one thing in ``src/models/mde.py`` that the paper or README fixes (an equation, a
switch, the graph construction, the evaluation cache). For each, the script copies the repository to a
scratch folder, applies the change and runs the tier-1 model tests; every change must make some test fail.
It prints one line per mutant and exits with 1 if any survives. ``python tests/mutants.py NAME ...`` runs
only the named ones. About 6 s per mutant on 2 CPU cores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "src/models/mde.py"
TESTS = ["tests/test_mde_equations.py", "tests/test_mde_model.py", "tests/test_mde_training.py"]

# (name, text in mde.py, replacement)
MUTANTS = [
 ("train resets cache", "        self._eval_cache = None  # entering", "        pass  # entering"),
 ("eq2 power", "np.power(degree, -0.5,", "np.power(degree, -1.0,"),
 ("eq3 mean", "return total / (n_layers + 1)", "return total / n_layers if n_layers else total"),
 ("eq3 last layer only", "        total = total + e\n", "        total = e\n"),
 ("eq4 no self-loop removal", "counts.data[counts.indices == own] = 0", "counts.data[counts.indices == own] = counts.data[counts.indices == own]"),
 ("eq4 residual ignored", "    if residual:  # the node", "    if False:  # the node"),
 ("eq4 knn keep self", "                sim.fill_diagonal_(-float(\"inf\"))", "                pass"),
 ("eq4 row_normalize", "np.divide(1.0, degree, out=inv, where=degree > 0)", "np.divide(2.0, degree, out=inv, where=degree > 0)"),
 ("eq4 softmax", "exp = np.exp(a.data - row_max[for_rows])", "exp = a.data - row_max[for_rows] + 1"),
 ("eq4 backward", "return torch.sparse.mm(transpose, grad), None, None", "return 0.5 * torch.sparse.mm(transpose, grad), None, None"),
 ("eq5 softmax dim", "return torch.softmax(logits, dim=-1)", "return torch.softmax(logits, dim=0)"),
 ("eq5 fuse", "return (per_modality * prefs.unsqueeze(-1)).flatten(1)", "return per_modality.flatten(1)"),
 ("eq8 swap", "return gap, 1.0 - gap", "return 1.0 - gap, gap"),
 ("eq9 sign", "margin = (users * pos_items).sum(-1) - (users * neg_items).sum(-1)", "margin = (users * neg_items).sum(-1) - (users * pos_items).sum(-1)"),
 ("eq6 bounded sign", "return -(gap.pow(2).sum(-1) * w_diff.pow(2)).mean()", "return (gap.pow(2).sum(-1) * w_diff.pow(2)).mean()"),
 ("eq6 bounded w not squared", "return -(gap.pow(2).sum(-1) * w_diff.pow(2)).mean()", "return -(gap.pow(2).sum(-1) * w_diff).mean()"),
 ("eq6 literal abs", "h_diff = -(h_v - h_t).abs() * w_diff.unsqueeze(-1)", "h_diff = -(h_v - h_t).abs()"),
 ("eq7 temperature", "v_to_t = F.cross_entropy(a_v @ c_t.T / temperature,", "v_to_t = F.cross_entropy(a_v @ c_t.T,"),
 ("eq7 one direction", "return (w_cl * (v_to_t + t_to_v)).mean()", "return (w_cl * (2 * v_to_t)).mean()"),
 ("eq7 no weight", "return (w_cl * (v_to_t + t_to_v)).mean()", "return ((v_to_t + t_to_v)).mean()"),
 ("eq7 t_to_v uses c_t", "t_to_v = F.cross_entropy(a_t @ c_v.T / temperature,", "t_to_v = F.cross_entropy(a_t @ c_t.T / temperature,"),
 ("eq10 modal bpr index", "l_modal = {m: bpr_loss(users_m[:, k], items_m[:batch, k], items_m[batch:, k])", "l_modal = {m: bpr_loss(users_m[:, 0], items_m[:batch, 0], items_m[batch:, 0])"),
 ("eq11 reg scale", "return self.hp.reg_weight * total / users.shape[0]", "return self.hp.reg_weight * total"),
 ("eq11 reg no neg", "squares(emb.item_e0, i, j)", "squares(emb.item_e0, i)"),
 ("sigma_diff ignored", "diff = self.hp.diff_weight * modality_gap_loss", "diff = modality_gap_loss"),
 ("sigma_cl ignored", "return diff, self.hp.cl_weight * cl", "return diff, cl"),
 ("stopgrad flipped", "if not self.hp.tradeoff_grad:", "if self.hp.tradeoff_grad:"),
 ("nlt off not constant", "            ones = torch.ones(prefs.shape[0], device=prefs.device)\n            return ones, ones", "            ones = torch.ones(prefs.shape[0], device=prefs.device)\n            return ones, 0.5 * ones"),
 ("variantB sigmoid swap", "            return w, 1.0 - w", "            return 1.0 - w, w"),
 ("fixed text weight swap", "return torch.tensor([1.0 - w_t, w_t]", "return torch.tensor([w_t, 1.0 - w_t]"),
 ("anchors all items", "anchors = torch.unique(i)  # the batch's positive items", "anchors = torch.unique(ij)  # the batch's positive items"),
 ("eval cache stale", "if self._eval_cache is None or self._eval_cache[0] != version:", "if self._eval_cache is None:"),
 ("cooc ties", "keep = (counts > t) | (tied & (tied_rank < (k - above)[rows]))", "keep = (counts > t) | (tied & (tied_rank <= (k - above)[rows]))"),
 ("knn bf16 bound", "uncertain = rows[top_sim[rows, -1] <= candidates.sim[rows, -1] + BF16_SIMILARITY_ERROR]", "uncertain = rows[:0]"),
 ("user cl anchors", "u_diff, u_cl = self._discrimination_losses(\"user\"", "u_diff, u_cl = self._discrimination_losses(\"item\""),
 ("cl all positive index", "cl = alignment_loss(h_v, h_t, w_cl, self.hp.cl_temperature, table[:, 0], table[:, 1], anchors)", "cl = alignment_loss(h_v, h_t, w_cl, self.hp.cl_temperature, table[:, 0], table[:, 1], torch.arange(len(anchors)))"),
 ("variantB item node ids", "anchors, item_rows[anchors],", "anchors, anchors,"),
 ("item graph swap", "self.neighbours(f\"item_graph_{m}\"),", "self.neighbours(f\"item_graph_{self.modalities[-1 - j]}\"),"),
 ("user/item prefs swap", "item_prefs = self._preferences(\"item_pref_logits\", item_rows)", "item_prefs = self._preferences(\"user_pref_logits\", item_rows)"),
 ("adjacency duplicates", "    r.sum_duplicates()\n    r.data[:] = 1.0\n    adj", "    r.sum_duplicates()\n    adj"),
 ("cooc duplicates", "    r.sum_duplicates()\n    r.data[:] = 1.0\n    rt", "    r.sum_duplicates()\n    rt"),
 ("knn no normalise", "x = x / norms.clamp_min(1e-12)", "x = x"),
 ("padding weight", "weight = np.zeros((n, width), dtype=np.float32)", "weight = np.full((n, width), 0.1, dtype=np.float32)"),
 ("residual weight", "weight = torch.cat([torch.ones_like(weight[:, :1]), weight], dim=1)", "weight = torch.cat([0.5 * torch.ones_like(weight[:, :1]), weight], dim=1)"),
 ("knn symmetric half", "            if a != b:\n                _merge_candidates(best, rows_b, sim.T, a)", "            pass"),
 ("knn col offset", "_merge_candidates(best, rows_a, sim, b)", "_merge_candidates(best, rows_a, sim, a)"),
 ("eval cache on train", "        self._eval_cache = None  # entering", "        pass  # entering"),
 ("predict rows", "return users_fused[interaction[0]] @ items_fused.T", "return users_fused[:len(interaction[0])] @ items_fused.T"),
 ("rerank order", "return torch.gather(cand, 1, order), top_sim", "return cand[:, :k], top_sim"),
 ("layers count", "for _ in range(n_layers):", "for _ in range(max(n_layers - 1, 0)):"),
 ("use_msa ignored", "        if not self.use_msa:\n            return diff, zero", "        if False:\n            return diff, zero"),
 ("use_mda ignored", "if self.use_mda else zero", "if True else zero"),
 ("reg zero shortcut", "        if self.hp.reg_weight == 0:\n            return self.user_features.new_zeros(())", "        if self.hp.reg_weight < 1:\n            return self.user_features.new_zeros(())"),
 ("single modality prefs", "            return torch.ones(len(rows), 1, device=rows.device)", "            return 0.5 * torch.ones(len(rows), 1, device=rows.device)"),
 ("cache key ignores input", "key = hashlib.blake2b(f\"{GRAPH_CACHE_VERSION}|{kind}|{k}|{input_hash}\"", "key = hashlib.blake2b(f\"{GRAPH_CACHE_VERSION}|{kind}|{k}|\""),
 ("user graph weighting ignored", "weighting = row_softmax if hp.user_graph_weighting == \"softmax\" else row_normalize", "weighting = row_softmax"),
 ("xavier user", "        nn.init.xavier_uniform_(self.user_features)\n", "        nn.init.normal_(self.user_features)\n"),
]


def run(name: str, old: str, new: str) -> bool:
    """Whether the tests catch the mutant (``old`` must occur exactly once in mde.py)."""
    source = (REPO / MODEL).read_text(encoding="utf-8")
    if source.count(old) != 1:
        raise SystemExit(f"mutant {name!r}: its text occurs {source.count(old)} times in {MODEL}; update the entry")
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("src", "tests"):
            shutil.copytree(REPO / folder, Path(tmp) / folder)
        for name_ in ("setup.cfg", "pyproject.toml"):
            shutil.copy(REPO / name_, Path(tmp) / name_)
        (Path(tmp) / MODEL).write_text(source.replace(old, new), encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
                                cwd=tmp, capture_output=True, text=True)
    failed = next((line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))), "")
    print(f"{name:30s} {'caught  ' + failed[:100] if result.returncode else 'SURVIVED'}", flush=True)
    return result.returncode != 0


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m[0] in names]
    if names and len(chosen) != len(set(names)):
        raise SystemExit(f"unknown mutant name(s): {sorted(set(names) - {m[0] for m in MUTANTS})}")
    survivors = [m[0] for m in chosen if not run(*m)]
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutants caught" +
          (f"; survived: {', '.join(survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
