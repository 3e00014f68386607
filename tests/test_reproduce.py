"""Tier 1: `mde-mmrec reproduce` tables and exit status, against a fake MMRec runner in a stand-in checkout
(tests/checkout_support.py) that carries the plugin's real MDE.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

from mde_mmrec import mmrec, reproduce

from checkout_support import standin_checkout

results_log = mmrec.plugin_module("results_log")
MDE_YAML = Path(__file__).resolve().parents[1] / "src" / "configs" / "model" / "MDE.yaml"


class PartialRunner:
    """Finishes every seed of every configuration, except that the run whose overrides include ``failing``
    dies after its first seed (exit 1), as a crash or a kill would leave it."""

    def __init__(self, failing: dict):
        self.failing = failing

    def __call__(self, checkout, model, dataset, overrides, log_path=None, on_line=None, **limits):
        failing = all(overrides.get(k) == v for k, v in self.failing.items())
        for n, seed in enumerate(overrides["seed"]):
            if failing and n == 1:
                return 1
            value = 0.2 + 0.01 * n
            metrics = {f"{m}@{k}": value for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}
            results_log.append_record(overrides["results_file"], {
                "model": model, "dataset": dataset, "params": {"seed": seed}, "seed": seed, "best_epoch": 0,
                "epochs_run": 1, "best_valid": metrics, "test": metrics, "s_per_epoch": 0.1})
        return 0


def _checkout(tmp_path):
    return standin_checkout(tmp_path / "MMRec", "MDE", MDE_YAML.read_text())


def test_table2_marks_a_configuration_that_finished_fewer_seeds_and_reports_the_failure(tmp_path):
    checkout = _checkout(tmp_path)
    md, failed = reproduce.reproduce("table2", checkout, "tiny", [1, 2], tmp_path / "out",
                                     runner=PartialRunner({"use_mda": False}), echo=lambda line: None)
    text = md.read_text()
    assert "| w/o MDA | 0.2000 (1 of 2 seeds) |" in text                 # not a full mean ± std
    assert "| MDE | 0.2050 ± 0.0071 |" in text
    assert list(failed) == ["w/o MDA"] and failed["w/o MDA"].startswith("failed (exit 1")


def test_cli_exit_status_says_whether_every_configuration_ran(tmp_path, monkeypatch, capsys):
    checkout = _checkout(tmp_path)
    monkeypatch.setattr(mmrec, "find_checkout", lambda path: checkout)
    calls = {}

    def fake(experiment, *args, **kwargs):
        return tmp_path / "t.md", calls.get("failed", {})

    (tmp_path / "t.md").write_text("table\n")
    monkeypatch.setattr(reproduce, "reproduce", fake)
    args = argparse.Namespace(mmrec=str(checkout), set=None, seeds=1, seed_values=None, out=str(tmp_path),
                              experiment="table2", dataset="tiny", epochs=1, models=None, paper_dataset=None)
    assert reproduce._cmd_reproduce(args) == 0
    calls["failed"] = {"w/o MDA": "failed (exit 1; see log)"}
    assert reproduce._cmd_reproduce(args) == 1
    assert "FAILED w/o MDA: failed (exit 1; see log)" in capsys.readouterr().out


def test_models_that_cannot_run_here_are_named_with_the_reason(monkeypatch):
    from mde_mmrec import compare
    assert "calls .cuda() unconditionally" in compare.why_not_runnable("GRCN", cuda=False)
    assert compare.why_not_runnable("GRCN", cuda=True) is None and compare.why_not_runnable("MDE", cuda=False) is None
    monkeypatch.setattr(compare.importlib.util, "find_spec", lambda name: None)   # torch_scatter not installed
    assert "imports torch_scatter, which is not installed" in compare.why_not_runnable("SLMRec", cuda=True)
    configs = [compare.RunConfig(m, m) for m in ("GRCN", "SLMRec", "MDE")]
    keep, skipped = reproduce.runnable(configs, cuda=False)
    assert [c.label for c in keep] == ["MDE"] and set(skipped) == {"GRCN", "SLMRec"}
    assert all(reason.startswith("not run: MMRec's") for reason in skipped.values())


def test_models_option_is_refused_outside_table1(tmp_path):
    import pytest
    from mde_mmrec.errors import MdeMmrecError
    parser = argparse.ArgumentParser()
    reproduce.register(parser.add_subparsers())
    args = parser.parse_args(["reproduce", "table2", "--mmrec", str(tmp_path), "-d", "tiny", "--models", "VBPR"])
    with pytest.raises(MdeMmrecError, match="--models chooses table1's models; table2 runs MDE variants only"):
        args.func(args)
