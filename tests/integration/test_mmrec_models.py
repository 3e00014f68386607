"""Tier 2: after `mde-mmrec install`, each model trains and evaluates on CPU through main.py, with
torchvision and matplotlib unimportable, and writes its results line."""

from __future__ import annotations

import re

import pytest

from mde_mmrec.core import why_not_runnable
from mde_mmrec.mmrec import read_results
from mde_mmrec.runner import run_main
from mde_mmrec.usergraph import write_user_graph

from .mmrec_support import single_point

pytestmark = pytest.mark.mmrec

MODELS = ["BPR", "LightGCN", "FREEDOM", "DRAGON", "LGMRec", "BM3", "MDE"]
EPOCHS = 2


@pytest.mark.parametrize("model", MODELS)
def test_model_trains_two_epochs(model, patched_mmrec, tiny_data, without_optional_packages, tmp_path):
    if not (patched_mmrec / "src" / "models" / f"{model.lower()}.py").is_file():
        pytest.skip(f"src/models/{model.lower()}.py is not in the plugin yet")
    reason = why_not_runnable(model, checkout=patched_mmrec)
    if reason:  # e.g. DRAGON without torch_geometric (pip install -e ".[baselines]")
        pytest.skip(reason)
    if model == "DRAGON":
        write_user_graph(patched_mmrec, tiny_data)
    results = tmp_path / "results.jsonl"
    overrides = {**single_point(patched_mmrec, model, tiny_data), "epochs": EPOCHS, "results_file": str(results)}
    lines = []
    code = run_main(
        patched_mmrec,
        model,
        tiny_data,
        overrides,
        log_path=tmp_path / "run.log",
        on_line=lines.append,
        env=without_optional_packages,
    )
    output = "\n".join(lines)
    assert code == 0, output[-4000:]
    assert "Traceback" not in output
    epoch_times = [float(t) for t in re.findall(r"epoch \d+ training \[time: ([\d.]+)s", output)]
    assert len(epoch_times) == EPOCHS, output[-2000:]

    [record] = read_results(results)
    assert record["model"] == model and record["dataset"] == tiny_data
    assert record["epochs_run"] == EPOCHS and record["best_epoch"] in range(EPOCHS)
    assert set(record["params"]) >= {"seed"} | set(overrides) - {"epochs", "results_file"}
    assert 0 <= record["test"]["recall@20"] <= 1 and "ndcg@50" in record["best_valid"]
    assert record["mmrec_commit"] and record["plugin_version"]
    print(
        f"\n{model}: s/epoch {record['s_per_epoch']}, eval {record['eval_s']}s, "
        f"model init {record['model_init_s']}s, peak RSS {record['peak_rss_mb']} MB"
    )


def test_grid_resume_and_shards(patched_mmrec, tiny_data, tmp_path):
    """A 2x2 grid in two shards, then a resumed run that finds everything done."""
    results = tmp_path / "grid.jsonl"
    base = {"epochs": 1, "reg_weight": [0.1, 0.01], "n_layers": [1, 2], "results_file": str(results)}
    for shard in ("1/2", "2/2"):
        assert run_main(patched_mmrec, "LightGCN", tiny_data, {**base, "grid_shard": shard}) == 0
    records = read_results(results)
    assert sorted((r["params"]["n_layers"], r["params"]["reg_weight"]) for r in records) == [
        (1, 0.01),
        (1, 0.1),
        (2, 0.01),
        (2, 0.1),
    ]
    lines = []
    assert run_main(patched_mmrec, "LightGCN", tiny_data, {**base, "resume": True}, on_line=lines.append) == 0
    assert sum("skipping grid point" in line for line in lines) == 4
    assert len(read_results(results)) == 4


@pytest.mark.parametrize(
    "argument, message",
    [
        ("--epocs=5", "unknown config key 'epocs'"),
        ("--epochs=five", "epochs expects a number"),
        ("--reg_weight=[0.1,", "not valid YAML"),
    ],
)
def test_bad_override_stops_main_before_loading_data(patched_mmrec, tiny_data, argument, message):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "main.py", "-m", "BPR", "-d", tiny_data, argument],
        cwd=patched_mmrec / "src",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert message in result.stderr and "main.py: error:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-m", "MDEX", "-d", "tiny"], "-m MDEX: no such model"),  # MMRec: UnboundLocalError
        (["-m", "MDE", "-d", "tinyy"], "-d tinyy: no data set config"),  # MMRec: TypeError in join
        (["-m", "MDE", "-d", "baby"], "data/README.md"),  # not downloaded
        (["-m", "MDE", "-d", "tiny", "--epochs=-1"], "epochs=-1 must be a whole number >= 1"),  # MMRec: NaN
        (["-m", "MDE", "-d", "tiny", "--tradeoff=preferenc"], "'tradeoff' must be one of preference, independent"),
    ],
)
def test_a_wrong_model_data_set_or_value_is_a_one_line_error(patched_mmrec, tiny_data, arguments, message):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "main.py", *arguments], cwd=patched_mmrec / "src", capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "main.py: error:" in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_long_run_logs_its_progress_and_stops_at_its_time_limit(patched_mmrec, tiny_data, tmp_path):
    """Patch 0010's construction line and 0015's within-epoch progress lines reach the log, and a run that
    passes its time limit is stopped with a status saying how far it got."""
    from mde_mmrec import core

    echo = []
    common = {"progress_every_s": 1e-9, "stopping_step": 10**6}  # a progress line after every batch
    records, status = core.run_configs(
        patched_mmrec,
        tiny_data,
        [core.RunConfig("MDE", "MDE", {})],
        [999],
        tmp_path / "out",
        epochs=10**6,
        common=common,
        echo=echo.append,
        max_seconds=20,
    )
    assert records == []
    assert status["MDE"].startswith("stopped at the 20s time limit after model construction ("), status
    log = (tmp_path / "out" / "logs" / "MDE.log").read_text()
    assert re.search(r"INFO model constructed in [\d.]+s", log)
    n_batches = int(re.search(r"epoch 0 training: 1/(\d+) batches, [\d.]+s", log).group(1))
    assert f"epoch 0 training: {n_batches}/{n_batches} batches" in log
    assert "epoch 1 training [time: " in log and log.rstrip().endswith("at its time limit of 20 s")
    assert any(line.startswith("  MDE: model constructed in ") for line in echo)
