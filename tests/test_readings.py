"""Tier 1: `mde-mmrec reproduce readings` (the study of the paper's readings) against a fake MMRec runner in a
stand-in checkout (tests/checkout_support.py) that carries the plugin's real MDE.yaml."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest
import yaml
from checkout_support import standin_checkout

from mde_mmrec import mmrec, reproduce
from mde_mmrec.errors import MdeMmrecError

results_log = mmrec.plugin_module("results_log")
MDE_YAML = Path(__file__).resolve().parents[1] / "src" / "configs" / "model" / "MDE.yaml"

LOG_OF_TWO_SEEDS = """\
06 Dec 12:20    INFO =========1/2: Parameters:['seed']=(999,)=======
06 Dec 12:20    INFO model constructed in 0.39s
06 Dec 12:20    INFO epoch 0 training [time: 0.64s, train_loss1: 0.9846, train_loss2: 1.3618]
06 Dec 12:20    INFO MDE: mean W_diff = |P_v - P_t| (eq. 8): items 0.0540, users 0.0436; mean P_t: items 0.5026
06 Dec 12:20    INFO epoch 0 evaluating [time: 0.01s, valid_score: 0.341200]
06 Dec 12:20    INFO epoch 1 training [time: 0.04s, train_loss1: 0.8998, train_loss2: 1.5095]
06 Dec 12:20    INFO MDE: mean W_diff = |P_v - P_t| (eq. 8): items 0.0536, users 0.0436; mean P_t: items 0.5026
06 Dec 12:20    INFO =========2/2: Parameters:['seed']=(1000,)=======
06 Dec 12:20    INFO epoch 0 training [time: 0.64s, train_loss1: 0.9846, train_loss2: 1.3618]
06 Dec 12:20    INFO MDE: mean W_diff = |P_v - P_t| (eq. 8): items 0.0100, users 0.0436; mean P_t: items 0.5026
"""


def test_w_diff_trajectory_is_read_per_seed_and_epoch_from_an_mmrec_log():
    assert reproduce.w_diff_trajectories(LOG_OF_TWO_SEEDS) == {999: {0: 0.054, 1: 0.0536}, 1000: {0: 0.01}}
    rerun = (
        LOG_OF_TWO_SEEDS
        + LOG_OF_TWO_SEEDS.splitlines(keepends=True)[7]
        + (
            "06 Dec 13:20    INFO epoch 0 training [time: 0.6s]\n"
            "06 Dec 13:20    INFO MDE: mean W_diff = |P_v - P_t| (eq. 8): items 0.0200, users 0.04; mean P_t: 0.5\n"
        )
    )  # seed 1000 killed, then run again on resume (the log is appended to): its last run counts
    assert reproduce.w_diff_trajectories(rerun)[1000] == {0: 0.02}
    assert reproduce.w_diff_trajectories("epoch 0 training\n") == {}


def test_each_reading_runs_its_other_value_on_its_own_grid_and_the_default_pins_every_switch():
    arms = reproduce.readings_arms()
    assert list(arms) == [("default", None)] + [(name, values[1]) for name, values in reproduce.READINGS.items()]
    assert set(reproduce.READINGS) == {
        "align_users",
        "tradeoff_grad",
        "feature_projection",
        "diff_form",
        "cl_similarity",
        "cl_negatives",
        "homogeneous_residual",
    }
    shipped = yaml.safe_load(MDE_YAML.read_text())
    defaults = {name: values[0] for name, values in reproduce.READINGS.items()}
    assert defaults == {name: shipped[name] for name in reproduce.READINGS}  # "default" is MDE.yaml's default
    grid = {(d, c) for d in (1.0, 10.0, 100.0) for c in (0.01, 0.1)}
    for (reading, value), configs in arms.items():
        assert {(c.overrides["diff_weight"], c.overrides["cl_weight"]) for c in configs} == grid
        switches = {reading: value} if reading != "default" else {}
        for c in configs:
            assert c.model == "MDE"
            assert c.overrides == {**defaults, **switches, "diff_weight": c.overrides["diff_weight"],
                                   "cl_weight": c.overrides["cl_weight"]}  # fmt: skip
    slugs = [c.slug for configs in arms.values() for c in configs]
    assert len(slugs) == len(set(slugs)) == 8 * 6  # one results file per reading value and grid point
    small = reproduce.readings_arms(["diff_form", "cl_negatives"], (5.0,), (0.5, 0.05))
    assert {arm: [c.label for c in configs] for arm, configs in small.items()} == {
        ("default", None): ["default diff=5 cl=0.5", "default diff=5 cl=0.05"],
        ("diff_form", "literal"): ["diff_form=literal diff=5 cl=0.5", "diff_form=literal diff=5 cl=0.05"],
        ("cl_negatives", "all"): ["cl_negatives=all diff=5 cl=0.5", "cl_negatives=all diff=5 cl=0.05"],
    }


def _record(label, seed, valid, test):
    return {"label": label, "seed": seed, "best_valid": {"recall@20": valid}, "test": {"recall@20": test}}


def test_sigmas_are_chosen_by_mean_validation_recall_not_by_test():
    records = [
        _record("a", 1, 0.50, 0.10),
        _record("a", 2, 0.30, 0.10),  # mean valid 0.40
        _record("b", 1, 0.45, 0.90),
        _record("b", 2, 0.45, 0.90),  # mean valid 0.45, best on test too
        _record("c", 1, 0.44, 0.99),  # best test, worse validation
        _record("other arm", 1, 0.99, 0.99),
    ]
    assert reproduce.best_by_validation(records, ["a", "b", "c"]) == "b"
    assert reproduce.best_by_validation(records, ["a", "c"]) == "c"
    assert reproduce.best_by_validation(records[:2] + records[4:5], ["a", "c"]) == "c"
    records[4]["test"]["recall@20"] = 0.0
    assert reproduce.best_by_validation(records, ["a", "c"]) == "c"  # test plays no part
    assert reproduce.best_by_validation(records, ["never ran"]) is None


def test_mean_std_and_verdict_against_seed_noise():
    mean, std, n = reproduce.mean_std([0.2, 0.4, None])
    assert (round(mean, 10), round(std, 10), n) == (0.3, round(0.02**0.5, 10), 2)  # sample std, None left out
    assert reproduce.mean_std([0.3]) == (0.3, 0.0, 1) and reproduce.mean_std([]) == (None, None, 0)
    default = (0.30, 0.01, 3)
    assert reproduce.verdict(default, (0.33, 0.01, 3)) == "other value better beyond seed noise"
    assert reproduce.verdict(default, (0.27, 0.01, 3)) == "default better beyond seed noise"
    assert reproduce.verdict(default, (0.315, 0.01, 3)) == "within noise"  # 0.015 <= 0.01 + 0.01
    assert reproduce.verdict(default, (0.285, 0.01, 3)) == "within noise"
    assert reproduce.verdict(default, (0.319, 0.01, 3)) == "within noise"
    assert reproduce.verdict(default, (0.321, 0.01, 3)) == "other value better beyond seed noise"  # 0.021 > 0.02
    assert reproduce.verdict(default, (0.40, 0.0, 1)) == "fewer than 2 seeds: no verdict"
    assert reproduce.verdict(default, (None, None, 0)) == "not run"


class StudyRunner:
    """Like the patched main.py: skips seeds already in the results file, appends one record per seed and logs
    each seed's epochs with MDE's W_diff line. Validation prefers cl_weight 0.01, test prefers 0.1; on test,
    diff_form=literal is 0.05 better than the default and align_users=False 0.05 worse."""

    def __init__(self):
        self.calls = []

    def __call__(self, checkout, model, dataset, overrides, log_path=None, on_line=None, **limits):
        done = {r["seed"] for r in results_log.read_results(overrides["results_file"])}
        todo = [s for s in overrides["seed"] if s not in done]
        self.calls += [(dataset, overrides["diff_weight"], overrides["cl_weight"], s) for s in todo]
        shift = 0.05 * (overrides["diff_form"] == "literal") - 0.05 * (not overrides["align_users"])
        with open(log_path, "a", encoding="utf-8") as log:
            for seed in todo:
                log.write(f"INFO =========1/1: Parameters:['seed']=({seed},)=======\n")
                for epoch in range(8):
                    log.write(f"INFO epoch {epoch} training [time: 0.1s]\n")
                    w = 0.01 * epoch + 0.001 * seed
                    log.write(f"INFO MDE: mean W_diff = |P_v - P_t| (eq. 8): items {w:.4f}, users 0.0; mean P_t: 0.5\n")
                valid = {"recall@20": 0.5 - overrides["cl_weight"], "ndcg@20": 0.2}
                test = {"recall@20": 0.3 + overrides["cl_weight"] + shift + 0.002 * seed, "ndcg@20": 0.1 + shift}
                results_log.append_record(
                    overrides["results_file"],
                    {"model": model, "dataset": dataset, "params": {"seed": seed}, "seed": seed,
                     "best_epoch": 5 + seed, "epochs_run": 8, "best_valid": valid, "test": test, "settings": {}},
                )  # fmt: skip
        return 0


def _study(tmp_path, runner, seeds=(1, 2), datasets=("tiny",)):
    checkout = tmp_path / "MMRec"
    if not checkout.exists():
        standin_checkout(checkout, "MDE", MDE_YAML.read_text())
        (checkout / "src" / "configs" / "dataset" / "small.yaml").write_text("inter_file_name: 'small.inter'\n")
        (checkout / "data" / "small").mkdir()
        (checkout / "data" / "small" / "small.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n")
    lines = []
    md, failed = reproduce.readings_study(
        checkout, list(datasets), list(seeds), tmp_path / "out", None, ["diff_form", "align_users"],
        (1.0, 10.0), (0.01, 0.1), runner=runner, echo=lines.append,
    )  # fmt: skip
    return md, failed, lines


def test_study_writes_per_reading_rows_resumes_and_keeps_data_sets_apart(tmp_path):
    runner = StudyRunner()
    md, failed, lines = _study(tmp_path, runner, datasets=("tiny", "small"))
    assert failed == {}
    assert len(runner.calls) == 2 * 3 * 4 * 2  # data sets x (default + 2 readings) x grid points x seeds
    assert any("note: tiny: pinned reg_weight=0.0001" in line for line in lines)
    for dataset in ("tiny", "small"):
        runs = sorted(p.name for p in (tmp_path / "out" / dataset / "runs").glob("*.jsonl"))
        assert "diff_form_literal_diff_10_cl_0.1.jsonl" in runs and "default_diff_1_cl_0.01.jsonl" in runs
        assert len(runs) == 12
    with open(tmp_path / "out" / "readings.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dataset"], r["reading"], r["value"]) for r in rows] == [
        (d, reading, value)
        for d in ("tiny", "small")
        for reading, value in (("default", ""), ("diff_form", "literal"), ("align_users", "False"))
    ]
    default, literal, users = rows[:3]
    assert {r["cl_weight"] for r in rows} == {"0.01"}  # by validation, though test prefers 0.1
    assert float(default["recall@20 mean"]) == pytest.approx(0.313) and default["n_seeds"] == "2"
    assert float(default["recall@20 std"]) == pytest.approx(0.002 / 2**0.5)
    assert float(literal["recall@20 mean"]) == pytest.approx(0.363)
    assert float(default["best epoch"]) == pytest.approx(6.5)
    assert float(default["W_diff epoch 0"]) == pytest.approx(0.0015)  # (0.001 + 0.002) / 2
    assert float(default["W_diff epoch 5"]) == pytest.approx(0.0515)
    assert float(default["W_diff best epoch"]) == pytest.approx((0.061 + 0.072) / 2)  # epochs 6 and 7
    assert (default["verdict"], literal["verdict"], users["verdict"]) == (
        "",
        "other value better beyond seed noise",
        "default better beyond seed noise",
    )
    text = md.read_text()
    assert "## tiny" in text and "## small" in text
    assert "| diff_form=literal | 1 | 0.01 | 2 | 0.4900 | 0.3630 ± 0.0014 |" in text
    assert "command: `" in text
    # a rerun trains nothing and writes the same tables
    before = (tmp_path / "out" / "readings.csv").read_text()
    runner.calls.clear()
    _study(tmp_path, runner, datasets=("tiny", "small"))
    assert runner.calls == [] and (tmp_path / "out" / "readings.csv").read_text() == before
    # one more seed runs only that seed
    _study(tmp_path, runner, seeds=(1, 2, 3), datasets=("tiny",))
    assert {c[3] for c in runner.calls} == {3} and len(runner.calls) == 12


def test_a_failed_configuration_is_reported_and_its_reading_still_chooses_among_the_rest(tmp_path):
    class Failing(StudyRunner):
        def __call__(self, checkout, model, dataset, overrides, **kwargs):
            if overrides["diff_form"] == "literal" and overrides["cl_weight"] == 0.01:
                return 1
            return super().__call__(checkout, model, dataset, overrides, **kwargs)

    md, failed, _ = _study(tmp_path, Failing())
    assert sorted(failed) == ["tiny: diff_form=literal diff=1 cl=0.01", "tiny: diff_form=literal diff=10 cl=0.01"]
    with open(tmp_path / "out" / "readings.csv", encoding="utf-8") as handle:
        literal = next(r for r in csv.DictReader(handle) if r["reading"] == "diff_form")
    assert literal["cl_weight"] == "0.1"
    assert "- FAILED tiny: diff_form=literal diff=1 cl=0.01: failed (exit 1" in md.read_text()


def _args(tmp_path, **changes):
    args = dict(
        mmrec=str(tmp_path), set=[], seeds=None, seed_values=None, out=str(tmp_path / "out"), experiment="readings",
        dataset=["tiny", "small"], epochs=None, models=None, paper_dataset=None, from_grid=None, readings=None,
        diff_weights=None, cl_weights=None,
    )  # fmt: skip
    return argparse.Namespace(**{**args, **changes})


def test_cli_defaults_are_three_seeds_every_reading_and_the_small_grid(tmp_path, monkeypatch):
    monkeypatch.setattr(mmrec, "find_checkout", lambda path: Path(path))
    got = {}

    def fake(checkout, datasets, seeds, out, epochs, readings, diff_weights, cl_weights, common=None):
        got.update(datasets=datasets, seeds=seeds, epochs=epochs, readings=readings, grid=(diff_weights, cl_weights))
        got["common"] = common
        (tmp_path / "r.md").write_text("table\n")
        return tmp_path / "r.md", {}

    monkeypatch.setattr(reproduce, "readings_study", fake)
    assert reproduce._cmd_reproduce(_args(tmp_path, set=["learning_rate=0.01"])) == 0
    assert got == {
        "datasets": ["tiny", "small"],
        "seeds": [999, 1000, 1001],
        "epochs": None,  # MMRec's early stopping
        "readings": tuple(reproduce.READINGS),
        "grid": ((1.0, 10.0, 100.0), (0.01, 0.1)),
        "common": {"learning_rate": 0.01},
    }
    reproduce._cmd_reproduce(_args(tmp_path, seeds=1, epochs=2, readings=["diff_form"], diff_weights=[5.0]))
    assert (got["seeds"], got["epochs"], got["readings"], got["grid"]) == (
        [999],
        2,
        ["diff_form"],
        ((5.0,), (0.01, 0.1)),
    )
    with pytest.raises(MdeMmrecError, match="--set diff_form, diff_weight: the study sets these itself"):
        reproduce._cmd_reproduce(_args(tmp_path, set=["MDE:diff_form=literal", "diff_weight=3"]))
    with pytest.raises(MdeMmrecError, match="--from-grid: not for readings"):
        reproduce._cmd_reproduce(_args(tmp_path, from_grid="g"))
    with pytest.raises(MdeMmrecError, match="-d given 2 times: table2 runs on one data set"):
        reproduce._cmd_reproduce(_args(tmp_path, experiment="table2"))
    with pytest.raises(MdeMmrecError, match="--diff-weights: for readings only"):
        reproduce._cmd_reproduce(_args(tmp_path, experiment="table2", dataset=["tiny"], diff_weights=[1.0]))


def test_parser_takes_several_data_sets_and_the_readings_options():
    parser = argparse.ArgumentParser()
    reproduce.register(parser.add_subparsers())
    args = parser.parse_args(
        ["reproduce", "readings", "--mmrec", "M", "-d", "a", "-d", "b", "--readings", "diff_form", "align_users",
         "--diff-weights", "1", "10", "--cl-weights", "0.1", "--epochs", "2"]
    )  # fmt: skip
    assert args.dataset == ["a", "b"] and args.readings == ["diff_form", "align_users"]
    assert args.diff_weights == [1.0, 10.0] and args.cl_weights == [0.1] and args.seeds is None and args.epochs == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["reproduce", "readings", "--mmrec", "M", "-d", "a", "--readings", "use_mda"])
