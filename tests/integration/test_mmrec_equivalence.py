"""Tier 2: where a patch replaces code, the old (pristine MMRec) and the new (patched) code give the same
output on the same input; the series applies with `git apply` and with `patch -p1` alike; install and
uninstall leave a real checkout as it was."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
import torch

from mde_mmrec import installer
from mde_mmrec.paths import patches_dir

from .mmrec_support import run_in_src

pytestmark = pytest.mark.mmrec


@pytest.fixture(scope="module")
def pristine(pristine_mmrec):
    return pristine_mmrec


def tree_hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts and "__pycache__" not in p.parts
    }


# The old code's dok_matrix._update(dict) was dict.update: the same entries, stored in the dict's order.
# scipy >= 1.13 has no _update, so the pristine code runs with that definition put back.
ADJACENCY = """
import importlib, inspect, sys
import numpy as np, scipy.sparse as sp, torch
if not hasattr(sp.dok_matrix, "_update"):
    def _update(self, data):
        for key, value in data.items():
            self[key] = value
    sp.dok_matrix._update = _update
rng = np.random.default_rng(0)
n_users, n_items, n = 60, 40, 500
rows, cols = rng.integers(0, n_users, n), rng.integers(0, n_items, n)            # with duplicate pairs
inter = sp.coo_matrix((np.ones(n, dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
out = {}
for module, name in [("common.encoders", "LightGCN_Encoder"), ("models.freedom", "FREEDOM"),
                     ("models.lightgcn", "LightGCN"), ("models.lgmrec", "LGMRec"), ("models.bm3", "BM3"),
                     ("models.damrs", "DAMRS")]:
    cls = getattr(importlib.import_module(module), name)
    model = cls.__new__(cls)                    # only the attributes get_norm_adj_mat reads, no training setup
    torch.nn.Module.__init__(model)
    model.interaction_matrix, model.n_users, model.n_items = inter, n_users, n_items
    model.n_nodes, model.device = n_users + n_items, torch.device("cpu")
    args = [inter] if len(inspect.signature(cls.get_norm_adj_mat).parameters) == 2 else []
    result = model.get_norm_adj_mat(*args)
    parts = []
    for part in (result if isinstance(result, tuple) else (result,)):     # LGMRec also returns the degrees
        if isinstance(part, torch.Tensor) and part.is_sparse:
            parts.append((part._indices().clone(), part._values().clone(), tuple(part.shape), part.dtype))
        else:
            parts.append(torch.as_tensor(np.asarray(part)))
    out[name] = parts
torch.save(out, sys.argv[1] if len(sys.argv) > 1 else "adjacency.pt")
"""

# the evaluator on random top-k lists (ties: equal ids in several users' lists; users with fewer
# positives than k); np.float is put back for the pristine metrics (numpy < 1.24 had it, as float)
EVALUATOR = """
import sys
import numpy as np, torch
if not hasattr(np, "float"):
    np.float = float
from types import SimpleNamespace
from utils.topk_evaluator import TopKEvaluator
rng = np.random.default_rng(1)
n_users, n_items, k = 500, 300, 50
pos = [rng.choice(n_items, size=int(rng.integers(1, 70)), replace=True) for _ in range(n_users)]
scores = torch.from_numpy(rng.integers(0, 20, size=(n_users, n_items)).astype(np.float32))   # many ties
topk = [torch.topk(scores[i:i + 128], k, dim=-1).indices for i in range(0, n_users, 128)]
data = SimpleNamespace(get_eval_items=lambda: pos, get_eval_len_list=lambda: np.array([len(p) for p in pos]),
                       get_eval_users=lambda: torch.arange(n_users))
config = {"metrics": ["Recall", "NDCG", "Precision", "MAP"], "topk": [5, 10, 20, 50],
          "save_recommended_topk": False}
evaluator = TopKEvaluator(config)
seen = {}
original = evaluator._calculate_metrics
def spy(pos_len_list, hits):
    seen["hits"] = np.asarray(hits).copy()
    seen["raw"] = original(pos_len_list, hits)
    return seen["raw"]
evaluator._calculate_metrics = spy
seen["metrics"] = evaluator.evaluate(topk, data)
torch.save(seen, sys.argv[1] if len(sys.argv) > 1 else "evaluator.pt")
"""


def run_both(pristine, patched, code, tmp_path, name):
    outputs = []
    for label, checkout in (("old", pristine), ("new", patched)):
        target = tmp_path / f"{name}-{label}.pt"
        run_in_src(checkout, f"import sys; sys.argv = ['x', {str(target)!r}]\n" + code)
        outputs.append(torch.load(target, weights_only=False))
    return outputs


def test_adjacency_is_identical(pristine, patched_mmrec, tmp_path):
    old, new = run_both(pristine, patched_mmrec, ADJACENCY, tmp_path, "adjacency")
    assert set(old) == set(new) and len(old) == 6
    for name in old:
        assert len(old[name]) == len(new[name]), name
        for part_old, part_new in zip(old[name], new[name]):
            if isinstance(part_old, tuple):  # a sparse tensor: indices, values, shape, dtype
                assert part_old[2:] == part_new[2:], name
                assert torch.equal(part_old[0], part_new[0]) and torch.equal(part_old[1], part_new[1]), (
                    f"{name}: adjacency differs"
                )
            else:
                assert torch.equal(part_old, part_new), f"{name}: degrees differ"


def test_evaluator_gives_identical_hits_and_metrics(pristine, patched_mmrec, tmp_path):
    old, new = run_both(pristine, patched_mmrec, EVALUATOR, tmp_path, "evaluator")
    assert old["hits"].dtype == new["hits"].dtype == bool
    assert (old["hits"] == new["hits"]).all()
    assert (old["raw"] == new["raw"]).all()  # before MMRec's rounding to 4 digits
    assert old["metrics"] == new["metrics"]


# patch 0013: valid and test through one SharedTopk, as the patched Trainer.fit does, against MMRec's own
# evaluate loop (quoted from common/trainer.py at e775373) on the real loaders of utils/quick_start.py; the
# second test loader has a third of the users left out and the rest in another order
SHARED_EVALUATION = """
import torch
from utils.configurator import Config
from utils.dataset import RecDataset
from utils.dataloader import TrainDataLoader, EvalDataLoader
from utils.utils import init_seed, get_model, get_trainer
from utils.shared_topk import SharedTopk
config = Config("MDE", "tiny", {"gpu_id": 0})
for key in config["hyper_parameters"]:
    if isinstance(config[key], list):
        config[key] = config[key][0]
init_seed(config["seed"])
splits = RecDataset(config).split()
for split in splits:
    str(split)
train, valid, test = splits
uid = config["USER_ID_FIELD"]
other = test.copy(test.df[test.df[uid] % 3 != 0].sample(frac=1.0, random_state=0))
str(other)
loaders = [EvalDataLoader(config, s, additional_dataset=train, batch_size=37) for s in (valid, test, other)]
model = get_model("MDE")(config, TrainDataLoader(config, train, batch_size=config["train_batch_size"]))
trainer = get_trainer()(config, model)
scored = []
predict = model.full_sort_predict
def counting(interaction):
    scored.append(interaction[0].clone())
    return predict(interaction)
model.full_sort_predict = counting

def mmrec_evaluate(eval_data):
    model.eval()
    batch_matrix_list = []
    for batch_idx, batched_data in enumerate(eval_data):
        scores = model.full_sort_predict(batched_data)
        masked_items = batched_data[1]
        scores[masked_items[0], masked_items[1]] = -1e10
        _, topk_index = torch.topk(scores, max(config["topk"]), dim=-1)
        batch_matrix_list.append(topk_index)
    return trainer.evaluator.evaluate(batch_matrix_list, eval_data)

with torch.no_grad():
    expected = [mmrec_evaluate(loader) for loader in loaders]
scored.clear()
ranked = SharedTopk()
got = [trainer.evaluate(loader, ranked=ranked) for loader in loaders]
assert got == expected, (got, expected)
users = torch.cat(scored).tolist()
assert len(users) == len(set(users)) == len(set(valid.df[uid]) | set(test.df[uid])), len(users)
print("valid", got[0]["recall@20"], "test", got[1]["recall@20"], "scored", len(users))
"""


def test_valid_and_test_in_one_scoring_pass_give_mmrecs_metrics(patched_mmrec, tiny_data):
    result = run_in_src(patched_mmrec, SHARED_EVALUATION)
    assert "scored" in result.stdout


def test_our_yaml_loader_reads_values_as_mmrec_does(patched_mmrec):
    samples = [
        "1e-3",
        "1E+5",
        "0.5",
        ".5",
        "-2",
        "1_000",
        "True",
        "false",
        "null",
        "~",
        "abc",
        "[0.1,1e-05]",
        "'1e-3'",
        "[a, b]",
        "1:30",
        ".inf",
        "-.inf",
        "1.0e-4",
        "+3.5",
        "0x10",
        "0o7",
        "2026-01-01",
    ]
    run_in_src(
        patched_mmrec,
        f"""
        import yaml
        from utils.configurator import Config
        from utils.cli_overrides import MMRecLoader
        theirs = Config.read_files('BPR', 'baby')[1]
        for text in {samples!r}:
            a, b = yaml.load(text, Loader=theirs), yaml.load(text, Loader=MMRecLoader)
            assert repr(a) == repr(b) and type(a) is type(b), (text, a, b)
        """,
    )


def test_series_applies_with_git_apply_and_patch_alike(pristine, copy_mmrec, tmp_path):
    trees = {}
    for tool in ("git", "patch"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
        work = copy_mmrec(pristine, tmp_path / tool)
        shutil.rmtree(work / ".git")
        for name in installer.Series.load(patches_dir()).names:
            command = (
                ["git", "apply", str(patches_dir() / name)]
                if tool == "git"
                else ["patch", "-p1", "--batch", "--fuzz=0", "-i", str(patches_dir() / name)]
            )
            result = subprocess.run(command, cwd=work, capture_output=True, text=True)
            assert result.returncode == 0, f"{tool}: {name}: {result.stdout} {result.stderr}"
        trees[tool] = tree_hashes(work)
    assert trees["git"] == trees["patch"]
    assert not [p for p in trees["patch"] if p.endswith((".orig", ".rej"))]


def test_pristine_files_match_the_manifest_and_the_commit(pristine):
    series = installer.Series.load(patches_dir())
    assert (
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=pristine, capture_output=True, text=True).stdout.strip()
        == series.mmrec_commit
    )
    for rel, digest in series.pristine.items():
        assert hashlib.sha256((pristine / rel).read_bytes()).hexdigest() == digest, rel


def test_install_is_idempotent_and_uninstall_restores_the_checkout(pristine, copy_mmrec, tmp_path):
    work = copy_mmrec(pristine, tmp_path / "MMRec")
    before = tree_hashes(work)

    def git_status() -> str:  # MMREC_HOME may hold untracked files of its own (a data set's yaml, ...)
        return subprocess.run(
            ["git", "status", "--porcelain", "--ignored"], cwd=work, capture_output=True, text=True
        ).stdout

    status_before = git_status()
    assert " M " not in status_before  # MMRec's tracked files as committed
    assert installer.install(work) == "installed"
    assert installer.install(work) == "already installed"
    changed = subprocess.run(
        ["git", "diff", "--name-status", installer.Series.load(patches_dir()).mmrec_commit, "mde-mmrec"],
        cwd=work,
        capture_output=True,
        text=True,
    ).stdout  # the branch install built
    assert "A\tsrc/utils/cli_overrides.py" in changed and "M\tsrc/main.py" in changed
    assert installer.uninstall(work) == "uninstalled"
    assert tree_hashes(work) == before
    assert git_status() == status_before
