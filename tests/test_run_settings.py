"""Tier 1: finished runs are reused only under the settings they were made with (compare, demo, reproduce
and grid resume from their results files; a rerun with other settings into the same folder is refused with
what differs, never mixed in silently). Against a fake MMRec runner in a stand-in checkout."""

from __future__ import annotations

import logging

import pytest

from mde_mmrec import compare, grid, mmrec
from mde_mmrec.errors import MdeMmrecError

from checkout_support import standin_checkout

results_log = mmrec.plugin_module("results_log")


class FakeRunner:
    """Appends one results line per seed still to run (as the patched MMRec does) and counts its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, checkout, model, dataset, overrides, log_path=None, on_line=None, **limits):
        self.calls.append(dict(overrides))
        config = dict(overrides, model=model, dataset=dataset, grid_shard=overrides.get("grid_shard"))
        keys = overrides["hyper_parameters"]
        values = [overrides[k] if isinstance(overrides[k], list) else [overrides[k]] for k in keys]
        import itertools
        for _, combo in results_log.points_to_run(config, list(itertools.product(*values))):
            params = results_log.params_of(keys, combo)
            results_log.append_record(overrides["results_file"], {
                "model": model, "dataset": dataset, "params": params, "seed": params["seed"],
                "best_epoch": 0, "epochs_run": 1, "best_valid": {"recall@20": 0.1}, "test": {"recall@20": 0.1}})
        return 0


def _compare(checkout, out, runner, epochs=1, overrides=None):
    return compare.run_configs(checkout, "tiny", [compare.RunConfig("BPR", "BPR", dict(overrides or {}))],
                               [999, 1000], out, epochs=epochs, runner=runner, echo=lambda line: None)


def test_compare_reuses_finished_seeds_only_under_the_same_settings(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    first = FakeRunner()
    records, _ = _compare(checkout, out, first)
    assert len(first.calls) == 1 and len(records) == 2
    assert compare.settings_file(out / "runs" / "BPR.jsonl").is_file()

    again = FakeRunner()
    assert len(_compare(checkout, out, again)[0]) == 2 and again.calls == []     # same settings: reused

    for epochs, overrides, difference in ((3, None, "--epochs: 1 -> 3"),
                                          (1, {"reg_weight": 0.5}, "--reg_weight: 0.1 -> 0.5")):
        other = FakeRunner()
        with pytest.raises(MdeMmrecError) as error:
            _compare(checkout, out, other, epochs=epochs, overrides=overrides)
        assert other.calls == []                                                  # refused before running
        message = str(error.value)
        assert difference in message and str(out / "runs" / "BPR.jsonl") in message and "another --out" in message


def test_compare_refuses_runs_made_on_other_data(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())
    (checkout / "data" / "tiny" / "tiny.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n")
    with pytest.raises(MdeMmrecError, match="interactions_sha256"):
        _compare(checkout, out, FakeRunner())


def test_runs_without_recorded_settings_are_adopted_with_a_warning(tmp_path, caplog):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())
    compare.settings_file(out / "runs" / "BPR.jsonl").unlink()    # as main.py itself or an older mde-mmrec
    runner = FakeRunner()
    with caplog.at_level(logging.WARNING):
        records, _ = _compare(checkout, out, runner, epochs=3)
    assert runner.calls == [] and len(records) == 2
    assert "settings were not recorded" in caplog.text


def test_grid_takes_more_values_but_refuses_other_fixed_settings(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "grid"
    keys = ["seed", "reg_weight"]
    first = FakeRunner()
    assert grid.run_grid(checkout, "BPR", "tiny", keys, {"seed": [999], "reg_weight": [0.1]}, out,
                         epochs=2, runner=first, echo=lambda line: None) == 0
    more = FakeRunner()
    assert grid.run_grid(checkout, "BPR", "tiny", keys, {"seed": [999], "reg_weight": [0.1, 0.01]}, out,
                         epochs=2, runner=more, echo=lambda line: None) == 0
    assert len(mmrec.read_results(out / "results.jsonl")) == 2               # the new point only was added
    other = FakeRunner()
    with pytest.raises(MdeMmrecError, match="--epochs: 2 -> 5"):
        grid.run_grid(checkout, "BPR", "tiny", keys, {"seed": [999], "reg_weight": [0.1]}, out, epochs=5,
                      runner=other, echo=lambda line: None)
    assert other.calls == []
