"""Shared helpers for the tier-1 MDE tests: import mde.py against our MMRec stand-in, build toy models.

The stand-in (tests/standin/) is written by us to MMRec's documented interface; it is not MMRec's code.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "standin"
MODELS = REPO / "src" / "models"
SRC = REPO / "src"  # for `from utils.mde_graphs import ...`, as in an MMRec checkout
MDE_YAML = REPO / "src" / "configs" / "model" / "MDE.yaml"

for path in (SRC, STANDIN, MODELS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

mde = importlib.import_module("mde")
graphs = importlib.import_module("utils.mde_graphs")
from standin import StandInConfig, StandInTrainLoader  # noqa: E402


def default_hyperparameters() -> dict:
    """MDE.yaml's values, each grid list replaced by its first value (what one grid point sees)."""
    values = yaml.safe_load(MDE_YAML.read_text())
    grid = values.pop("hyper_parameters")
    for key in grid:
        values[key] = values[key][0]
    return values


def make_model(
    tmp_path: Path, users, items, n_users: int, n_items: int, v_feat=None, t_feat=None, seed: int = 0, **overrides
):
    """Write the features like MMRec's data folder and construct MDE through the stand-in base class."""
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True, exist_ok=True)
    for name, feat in (("image_feat.npy", v_feat), ("text_feat.npy", t_feat)):
        if feat is not None:
            np.save(data / name, np.asarray(feat, dtype=np.float32))
        elif (data / name).exists():
            (data / name).unlink()
    values = {
        "train_batch_size": 64,
        "device": torch.device("cpu"),
        "end2end": False,
        "is_multimodal_model": True,
        "data_path": str(tmp_path / "data") + "/",
        "dataset": "toy",
        "inter_file_name": "toy.inter",
        "vision_feature_file": "image_feat.npy",
        "text_feature_file": "text_feat.npy",
    }
    values.update(default_hyperparameters())
    values.update(overrides)
    torch.manual_seed(seed)
    loader = StandInTrainLoader(users, items, n_users, n_items)
    return mde.MDE(StandInConfig(values), loader), loader


def toy_problem(seed: int = 0, n_users: int = 30, n_items: int = 20, per_user: int = 4, dv: int = 12, dt: int = 6):
    """A small random interaction set (every user has items) with visual and text features."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False)
        users += [u] * per_user
        items += chosen.tolist()
    v = rng.normal(size=(n_items, dv)).astype(np.float32)
    t = rng.normal(size=(n_items, dt)).astype(np.float32)
    return np.array(users), np.array(items), n_users, n_items, v, t


def batch_for(users, items, n_items: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """One MMRec-style [3, B] batch (users, positives, negatives not in the user's training items)."""
    rng = np.random.default_rng(seed)
    seen = set(zip(users.tolist(), items.tolist()))
    idx = rng.choice(len(users), size=min(size, len(users)), replace=False)
    negs = []
    for u in users[idx]:
        j = int(rng.integers(n_items))
        while (int(u), j) in seen:
            j = int(rng.integers(n_items))
        negs.append(j)
    return torch.tensor(np.stack([users[idx], items[idx], np.array(negs)]), dtype=torch.long)
