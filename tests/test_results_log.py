"""Tier 1: the results file (src/utils/results_log.py): appending, reading after a kill, resume, shards."""

from __future__ import annotations

import json
import sys
import types
from itertools import product
from types import SimpleNamespace

import pytest

from mde_mmrec.mmrec import plugin_module, read_results

rl = plugin_module("results_log")


class FakeConfig(dict):
    """MMRec's Config answers None for a missing key."""

    def __getitem__(self, key):
        return self.get(key)


def grid_config(tmp_path, **settings):
    config = FakeConfig(
        model="MDE",
        dataset="tiny",
        hyper_parameters=["seed", "cl_weight", "reg_weight"],
        seed=999,
        results_file=str(tmp_path / "results.jsonl"),
    )
    config.update(settings)
    return config


COMBINATORS = list(product([999], [0.1, 0.01], [1e-4, 1e-3, 1e-2]))  # 6 points


def record_for(config, point, **extra):
    trainer = SimpleNamespace(best_epoch=3, epoch_times=[0.5, 0.7], eval_times=[0.2, 0.4])
    return rl.build_record(
        config, point, trainer, {"recall@20": 0.1}, {"recall@20": 0.09}, model_init_s=1.25, train_time_s=2.5
    )


def test_record_has_the_documented_fields(tmp_path):
    config = grid_config(tmp_path)
    record = record_for(config, (999, 0.1, 1e-4))
    assert record["params"] == {"seed": 999, "cl_weight": 0.1, "reg_weight": 1e-4}
    assert (record["model"], record["dataset"], record["seed"]) == ("MDE", "tiny", 999)
    assert (record["best_epoch"], record["epochs_run"]) == (3, 2)
    assert record["s_per_epoch"] == 0.6 and record["eval_s"] == 0.3
    assert record["train_time_s"] == 2.5 and record["model_init_s"] == 1.25
    assert record["peak_rss_mb"] > 0 and record["peak_gpu_mb"] is None  # the config's device is the CPU
    assert record["best_valid"] == {"recall@20": 0.1} and record["test"] == {"recall@20": 0.09}
    assert set(record) >= {"mmrec_commit", "plugin_version", "finished_at"}
    json.dumps(record)


def test_append_survives_a_line_cut_off_by_a_kill(tmp_path):
    path = tmp_path / "results.jsonl"
    rl.append_record(path, {"n": 1})
    with open(path, "a") as handle:
        handle.write('{"n": 2, "best_va')  # killed while writing
    assert [r["n"] for r in read_results(path)] == [1]  # the cut-off line is skipped ...
    rl.append_record(path, {"n": 3})
    assert [r["n"] for r in read_results(path)] == [1, 3]
    assert path.read_text() == '{"n": 1}\n{"n": 3}\n'  # ... and gone once the file is next written
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # no temporary file left behind
    assert read_results(tmp_path / "missing.jsonl") == []


def test_a_complete_last_line_without_a_newline_is_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"n": 1}')  # written by hand or another tool
    rl.append_record(path, {"n": 2})
    assert path.read_text() == '{"n": 1}\n{"n": 2}\n'


def test_readers_count_each_grid_point_once_and_say_so(tmp_path, caplog):
    """A run killed while its main.py kept running, then rerun, could leave a point twice in the file."""
    path = tmp_path / "results.jsonl"
    point = {"model": "MDE", "dataset": "tiny", "params": {"seed": 1, "cl_weight": 0.1}}
    for n, params in enumerate(
        [{"seed": 1, "cl_weight": 0.1}, {"seed": 2, "cl_weight": 0.1}, {"cl_weight": 0.1, "seed": 1}]
    ):
        rl.append_record(path, dict(point, params=params, n=n))
    assert [r["n"] for r in read_results(path)] == [0, 1]  # the first line of each point
    assert "1 line(s) repeat a grid point already there; each point is counted once" in caplog.text


def test_points_to_run_honours_shards(tmp_path):
    config = grid_config(tmp_path)
    assert [i for i, _ in rl.points_to_run(config, COMBINATORS)] == list(range(6))
    shards = [
        [i for i, _ in rl.points_to_run(grid_config(tmp_path, grid_shard=f"{k}/4"), COMBINATORS)] for k in range(1, 5)
    ]
    assert shards == [[0, 4], [1, 5], [2], [3]]


def test_resume_skips_finished_points_of_the_same_model_and_dataset(tmp_path, caplog):
    config = grid_config(tmp_path, resume=True)
    for point in (COMBINATORS[0], COMBINATORS[4]):
        rl.append_record(config["results_file"], record_for(config, point))
    other = grid_config(tmp_path, model="FREEDOM")
    rl.append_record(config["results_file"], record_for(other, COMBINATORS[1]))
    with caplog.at_level("INFO"):
        todo = rl.points_to_run(config, COMBINATORS)
    assert [i for i, _ in todo] == [1, 2, 3, 5]
    assert "skipping grid point 1/6" in caplog.text and "skipping grid point 5/6" in caplog.text
    config["resume"] = False
    caplog.clear()
    with caplog.at_level("INFO"):
        assert len(rl.points_to_run(config, COMBINATORS)) == 6
    assert "2 grid point(s) to run are already in" in caplog.text and "--resume=True" in caplog.text


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"grid_shard": "0/3"}, "grid_shard"),
        ({"grid_shard": "a/b"}, "grid_shard"),
        ({"resume": True, "results_file": None}, "needs a results_file"),
        ({"resume": "yes"}, "True or False"),
        ({"results_file": 5}, "must be a path"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(rl.ResultsConfigError, match=message):
        rl.check_settings(FakeConfig(settings).__getitem__)


def test_plugin_info_is_read_from_the_installed_file(tmp_path, monkeypatch):
    info = tmp_path / "mde_plugin_info.json"
    info.write_text(json.dumps({"mmrec_commit": "abc", "plugin_version": "9.9"}))
    monkeypatch.setattr(rl, "PLUGIN_INFO_FILE", info)
    assert rl.plugin_info() == {"mmrec_commit": "abc", "plugin_version": "9.9"}


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_record_has_the_peak_gpu_memory_on_cuda(tmp_path):
    import torch

    config = grid_config(tmp_path, device=torch.device("cuda"))
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")  # 64 MB
    record = record_for(config, (999, 0.1, 1e-4))
    del block
    assert record["peak_gpu_mb"] >= 64


def test_a_point_where_no_epoch_finished_is_recorded_as_failed(tmp_path):
    """MMRec's trainer stops at a NaN loss in the first epoch and returns all-zero metrics; the line says so."""
    config = grid_config(tmp_path)
    trainer = SimpleNamespace(best_epoch=None, epoch_times=[], eval_times=[])
    record = rl.build_record(
        config, (999, 0.1, 1e-4), trainer, {"recall@20": 0.0}, {"recall@20": 0.0}, model_init_s=1.0, train_time_s=0.1
    )
    assert record["failed"] == rl.NO_EPOCH_FINISHED and record["epochs_run"] == 0
    assert record_for(config, (999, 0.1, 1e-4))["failed"] is None


def test_a_model_grid_check_failure_is_a_config_error_not_a_traceback(monkeypatch):
    # a stand-in model module with MDE's hook, check_grid(get), that rejects the configuration
    module = types.ModuleType("models.badgrid")

    def check_grid(get):
        raise ValueError("BadGrid: 'k' must be >= 1")

    module.check_grid = check_grid
    monkeypatch.setitem(sys.modules, "models.badgrid", module)
    with pytest.raises(rl.ResultsConfigError, match="BadGrid: 'k' must be >= 1"):
        rl.check_settings(FakeConfig({"model": "BadGrid"}).__getitem__)


def test_a_line_records_its_settings_and_resume_refuses_points_made_with_other_ones(tmp_path):
    config = grid_config(tmp_path, resume=True, cl_temperature=0.2, epochs=5, progress_every_s=60)
    record = record_for(config, COMBINATORS[0])
    assert record["settings"] == {"cl_temperature": 0.2, "dataset": "tiny", "epochs": 5, "model": "MDE"}
    rl.append_record(config["results_file"], record)
    assert [i for i, _ in rl.points_to_run(config, COMBINATORS)] == [1, 2, 3, 4, 5]  # same settings: skipped
    config["progress_every_s"] = 5  # how the run logs: not a setting
    assert len(rl.points_to_run(config, COMBINATORS)) == 5
    config["cl_temperature"] = 0.5
    with pytest.raises(
        rl.ResultsConfigError,
        match=r"holds grid point \{'seed': 999, 'cl_weight': 0.1, "
        r"'reg_weight': 0.0001\} of MDE on tiny made with other settings "
        r"\(cl_temperature: 0.2 -> 0.5\)",
    ):
        rl.points_to_run(config, COMBINATORS)
    config["resume"] = False  # run again beside it (with a warning)
    assert len(rl.points_to_run(config, COMBINATORS)) == 6


def test_lines_from_before_settings_were_recorded_are_not_reused(tmp_path):
    """An older line cannot show which settings made it: resuming over it would present its numbers as the
    current settings' (the demo did, with another sigma_diff)."""
    config = grid_config(tmp_path, resume=True, cl_temperature=0.5)
    old = record_for(config, COMBINATORS[0])
    del old["settings"]
    rl.append_record(config["results_file"], old)
    with pytest.raises(
        rl.ResultsConfigError,
        match=r"holds grid point .* without recorded settings \(written by an "
        r"older mde-mmrec\).*choose another results_file, or resume=False",
    ):
        rl.points_to_run(config, COMBINATORS)
    again = grid_config(tmp_path, resume=False, cl_temperature=0.5)
    assert again["results_file"] == config["results_file"]
    assert [i for i, _ in rl.points_to_run(again, COMBINATORS)] == [0, 1, 2, 3, 4, 5]


def test_point_settings_leave_out_the_grid_keys_so_other_points_of_one_grid_resume(tmp_path):
    """Each line records the settings besides its own grid point: another point of the same grid (other
    cl_weight) resumes, another non-grid value (cl_temperature) or another model's line does not count."""
    results = tmp_path / "results.jsonl"
    values = {
        "model": "MDE",
        "dataset": "tiny",
        "hyper_parameters": ["cl_weight", "seed"],
        "cl_weight": [0.1, 0.5],
        "seed": [999],
        "cl_temperature": 0.2,
        "epochs": 3,
        "results_file": str(results),
        "resume": True,
    }
    settings = rl.point_settings(values)
    assert "cl_weight" not in settings and "seed" not in settings and "results_file" not in settings
    assert settings["cl_temperature"] == 0.2 and settings["epochs"] == 3
    rl.append_record(
        results, {"model": "MDE", "dataset": "tiny", "params": {"cl_weight": 0.1, "seed": 999}, "settings": settings}
    )
    rl.append_record(
        results, {"model": "FREEDOM", "dataset": "tiny", "params": {"seed": 999}, "settings": {"epochs": 50}}
    )
    rl.check_resume(values)
    with pytest.raises(
        rl.ResultsConfigError,
        match=r"grid point \{'cl_weight': 0.1, 'seed': 999\} of MDE on tiny "
        r"made with other settings \(cl_temperature: 0.2 -> 0.5\)",
    ):
        rl.check_resume(dict(values, cl_temperature=0.5))
