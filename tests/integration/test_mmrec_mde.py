"""Tier 2: MDE trains through MMRec's own main.py (trainer, sampler, evaluator) on generated data and ranks
far better than random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mde_mmrec.mmrec import read_results
from mde_mmrec.runner import run_main

pytestmark = pytest.mark.mmrec


def _random_recall_at(k: int, inter: pd.DataFrame, split: int) -> float:
    """Expected Recall@k of a uniformly random ranking of each user's non-training items."""
    n_items = int(inter.itemID.max()) + 1
    train = inter[inter.x_label == 0].groupby("userID").size()
    held = inter[inter.x_label == split].groupby("userID").size()
    candidates = n_items - train.reindex(held.index).fillna(0)
    return float(np.mean(np.minimum(k / candidates, 1.0)))


def test_mde_trains_through_main_and_beats_random_ranking(patched_mmrec, tiny_data, tmp_path):
    results = tmp_path / "mde.jsonl"
    overrides = {
        "epochs": 5,
        "hyper_parameters": ["seed"],
        "cl_weight": 0.01,
        "diff_weight": 0.1,
        "reg_weight": 0.0001,
        "results_file": str(results),
    }
    lines = []
    code = run_main(patched_mmrec, "MDE", tiny_data, overrides, on_line=lines.append)
    assert code == 0, "\n".join(lines[-40:])
    [record] = read_results(results)
    inter = pd.read_csv(patched_mmrec / "data" / tiny_data / f"{tiny_data}.inter", sep="\t")
    random_recall = _random_recall_at(20, inter, split=2)
    print(
        f"\nMDE on {tiny_data}: test Recall@20 {record['test']['recall@20']:.4f} (random {random_recall:.4f}), "
        f"{record['s_per_epoch']} s/epoch, best epoch {record['best_epoch']}"
    )
    assert record["test"]["recall@20"] > 2 * random_recall
    assert record["best_valid"]["ndcg@20"] > 0
    # all six loss terms are logged, as MMRec does for a tuple loss
    assert any("train_loss6" in line for line in lines)


@pytest.mark.parametrize("how", ["file missing", "key missing"])
def test_mde_runs_on_one_modality(patched_mmrec, tiny_data, tmp_path, how):
    """docs/paper-to-code.md: one modality only (a data set without text features, whether its yaml still
    names the file or
    not; patch 0016 for the latter) trains with MDA and MSA off and one warning."""
    import shutil

    name = "tiny_image_only_" + how.split()[0]
    data = patched_mmrec / "data" / name
    shutil.copytree(patched_mmrec / "data" / tiny_data, data, dirs_exist_ok=True)
    (data / f"{tiny_data}.inter").rename(data / f"{name}.inter")
    (data / "text_feat.npy").unlink()
    yaml_text = (patched_mmrec / "src" / "configs" / "dataset" / f"{tiny_data}.yaml").read_text()
    yaml_text = yaml_text.replace(f"{tiny_data}.inter", f"{name}.inter")
    if how == "key missing":
        yaml_text = "\n".join(l for l in yaml_text.splitlines() if not l.startswith("text_feature_file"))
    (patched_mmrec / "src" / "configs" / "dataset" / f"{name}.yaml").write_text(yaml_text)
    results, lines = tmp_path / "one.jsonl", []
    code = run_main(
        patched_mmrec,
        "MDE",
        name,
        {
            "epochs": 1,
            "hyper_parameters": ["seed"],
            "cl_weight": 0.01,
            "diff_weight": 0.1,
            "reg_weight": 0.0001,
            "results_file": str(results),
        },
        on_line=lines.append,
    )
    assert code == 0, "\n".join(lines[-30:])
    [warning] = [line for line in lines if "only the image modality is available" in line]
    assert (
        "no text_feature_file in the data set's yaml" if how == "key missing" else "text_feat.npy missing"
    ) in warning
    [record] = read_results(results)
    assert record["failed"] is None and record["test"]["recall@20"] > 0


def test_a_bad_value_anywhere_in_the_grid_stops_main_before_loading_data(patched_mmrec, tiny_data, tmp_path):
    lines = []
    code = run_main(
        patched_mmrec,
        "MDE",
        tiny_data,
        {"epochs": 1, "cl_temperature": [0.2, 0.0], "results_file": str(tmp_path / "r.jsonl")},
        on_line=lines.append,
    )
    output = "\n".join(lines)
    assert code != 0
    assert "main.py: error: MDE: 'cl_temperature' must be a finite number >= 0.001" in output and "got 0.0" in output
    assert "[grid point {" in output
    assert "Traceback" not in output
    assert "training [time" not in output and not (tmp_path / "r.jsonl").exists()


def test_the_grid_best_block_names_the_point_with_the_best_validation_score(patched_mmrec, tiny_data, tmp_path):
    """Patch 0017: MMRec's closing BEST block chose by test score; it must name the best-validation point."""
    results = tmp_path / "grid.jsonl"
    lines = []
    code = run_main(
        patched_mmrec,
        "MDE",
        tiny_data,
        {
            "epochs": 2,
            "cl_weight": [0.001, 1.0],
            "diff_weight": 0.1,
            "reg_weight": [0.0001, 0.1],
            "results_file": str(results),
        },
        on_line=lines.append,
    )
    assert code == 0, "\n".join(lines[-40:])
    records = read_results(results)
    assert len(records) == 4
    best = max(records, key=lambda r: r["best_valid"]["recall@20"])
    start = next(i for i, line in enumerate(lines) if "BEST (by valid recall@20)" in line and "Current" not in line)
    named = next(line for line in lines[start:] if "Parameters:" in line)
    point = [best["params"][k] for k in ("seed", "cl_weight", "diff_weight", "reg_weight")]
    assert named.split("=", 1)[1].strip(" ,") == str(tuple(point)), (named, best["params"])


def test_compiled_losses_train_through_main_like_eager_mode(patched_mmrec, tiny_data, tmp_path):
    """compile_losses: True through MMRec's own trainer: the logged losses of every epoch equal eager mode's."""
    import re

    def epoch_losses(compile_losses: bool) -> np.ndarray:
        results, lines = tmp_path / f"compiled-{compile_losses}.jsonl", []
        overrides = {"epochs": 3, "hyper_parameters": ["seed"], "compile_losses": compile_losses}
        overrides.update({"cl_weight": 0.01, "diff_weight": 0.1, "reg_weight": 0.0001, "results_file": str(results)})
        code = run_main(patched_mmrec, "MDE", tiny_data, overrides, on_line=lines.append)
        assert code == 0, "\n".join(lines[-40:])
        epochs = [re.findall(r"train_loss\d: (-?[\d.]+)", line) for line in lines if "training [time" in line]
        return np.array(epochs, dtype=float)

    eager, compiled = epoch_losses(False), epoch_losses(True)
    assert eager.shape == (3, 6)
    np.testing.assert_allclose(compiled, eager, rtol=1e-3, atol=1e-4)  # the log prints 4 decimals
