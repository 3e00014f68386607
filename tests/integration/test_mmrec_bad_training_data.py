"""Tier 2: data and losses that used to hang MMRec, crash a grid half-way, or pass as a result (patches
0018-0020), through MMRec's own main.py on variants of the synthetic ``tiny`` data set."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from mde_mmrec.mmrec import plugin_module, read_results
from mde_mmrec.runner import run_main

from .mmrec_support import run_in_src

pytestmark = pytest.mark.mmrec


def _variant(checkout, source: str, name: str) -> tuple:
    """A copy of data set ``source`` named ``name``; returns (its folder, its .inter as a DataFrame)."""
    data = checkout / "data" / name
    shutil.copytree(checkout / "data" / source, data, dirs_exist_ok=True)
    (data / f"{source}.inter").rename(data / f"{name}.inter")
    yaml_text = (checkout / "src" / "configs" / "dataset" / f"{source}.yaml").read_text()
    (checkout / "src" / "configs" / "dataset" / f"{name}.yaml").write_text(
        yaml_text.replace(f"{source}.inter", f"{name}.inter")
    )
    return data, pd.read_csv(data / f"{name}.inter", sep="\t")


def _user_with_every_training_item(checkout, tiny_data) -> int:
    """A variant of ``tiny`` in which user 0 has every training item; returns the number of training items."""
    data, inter = _variant(checkout, tiny_data, "tiny_user_has_all")
    train_items = inter.loc[inter.x_label == 0, "itemID"].unique()
    rest = inter[inter.userID != 0]
    owner = pd.DataFrame({"userID": 0, "itemID": train_items, "x_label": 0})
    for column in inter.columns.difference(owner.columns):
        owner[column] = inter[column].iloc[0]
    pd.concat([owner[inter.columns], rest]).to_csv(data / "tiny_user_has_all.inter", sep="\t", index=False)
    return len(train_items)


def test_a_user_with_every_training_item_is_refused_before_loading(patched_mmrec, tiny_data, tmp_path):
    """main.py's data checks: negative sampling would have no item to draw for that user."""
    n_train_items = _user_with_every_training_item(patched_mmrec, tiny_data)
    lines = []
    code = run_main(
        patched_mmrec,
        "MDE",
        "tiny_user_has_all",
        {"epochs": 1, "results_file": str(tmp_path / "r")},
        on_line=lines.append,
        max_seconds=120,
    )
    output = "\n".join(lines)
    assert code == 1, output[-3000:]
    assert "Traceback" not in output and "main.py: error: -d tiny_user_has_all:" in output
    assert (
        f"tiny_user_has_all/tiny_user_has_all.inter: 1 user(s) interacted with every item of the training "
        f"split ({n_train_items} items), userID 0"
    ) in output
    assert "remove these users, or some of their training rows (x_label 0)" in output


def test_the_train_loader_itself_refuses_a_user_with_every_training_item(patched_mmrec, tiny_data):
    """Patch 0019, for code that builds MMRec's loaders without main.py: the sampler looped forever."""
    n_train_items = _user_with_every_training_item(patched_mmrec, tiny_data)
    result = run_in_src(
        patched_mmrec,
        """
        from utils.configurator import Config
        from utils.dataset import RecDataset
        from utils.dataloader import TrainDataLoader
        config = Config("MDE", "tiny_user_has_all", {"gpu_id": -1, "use_gpu": False})
        train, _, _ = RecDataset(config).split()
        str(train)                              # as quick_start does: RecDataset.__str__ sets inter_num
        try:
            TrainDataLoader(config, train, batch_size=64, shuffle=True)
        except ValueError as exc:
            print(exc)
    """,
        timeout=120,
    )
    assert (
        f"tiny_user_has_all.inter: 1 user(s) interacted with every item of the training split "
        f"({n_train_items} items), userID 0"
    ) in result.stdout
    assert "remove these users, or some of their training rows (x_label 0)" in result.stdout


def test_grid_points_after_one_with_a_nan_loss_still_run(patched_mmrec, tiny_data, tmp_path):
    """Patch 0018: the NaN exit left the train loader mid-pass, and the next grid point crashed."""
    data, _ = _variant(patched_mmrec, tiny_data, "tiny_overflowing_row")
    image = np.load(data / "image_feat.npy")
    image[5] = 1e30  # finite, but the scores overflow: NaN loss in the first batch
    np.save(data / "image_feat.npy", image)
    results, lines = tmp_path / "grid.jsonl", []
    code = run_main(
        patched_mmrec,
        "MDE",
        "tiny_overflowing_row",
        {
            "epochs": 2,
            "train_batch_size": 4096,
            "hyper_parameters": ["seed", "reg_weight"],
            "reg_weight": [0.1, 0.01, 0.001],
            "cl_weight": 0.01,
            "diff_weight": 0.1,
            "results_file": str(results),
        },
        on_line=lines.append,
    )
    records = read_results(results)
    assert len(records) == 3
    no_epoch = plugin_module("results_log").NO_EPOCH_FINISHED
    assert all(r["failed"] == no_epoch for r in records)
    assert sum("Loss is nan or inf at epoch: 0, batch index: 0" in line for line in lines) == 3
    # patch 0022: no point finished, so the run failed: exit code 1, and the BEST block says why (no zeros)
    assert code == 1, "\n".join(lines[-40:])
    assert any("No grid point finished: each of the 3 point(s) run ended without a result" in line for line in lines)
    assert lines[-1].startswith("main.py: error: no grid point finished")
    final = max(i for i, line in enumerate(lines) if "█ BEST (by valid" in line)
    assert not any(line.startswith("Valid: ") for line in lines[final:])  # no block of zeros after it


def test_an_infinite_loss_ends_training_like_a_nan_one(patched_mmrec):
    """Patch 0020: the trainer's check accepts finite losses only."""
    result = run_in_src(
        patched_mmrec,
        """
        import torch
        from common.trainer import Trainer
        check = Trainer._check_nan
        print([bool(check(None, torch.tensor(x))) for x in (float("inf"), float("-inf"), float("nan"), 1.5)])
    """,
    )
    assert result.stdout.strip() == "[True, True, True, False]"
