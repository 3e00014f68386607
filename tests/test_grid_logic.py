"""Tier 1: grid enumeration, resume and shard logic of `mde-mmrec grid`, against a fake MMRec runner that
selects points with the patched grid loop's own code (src/utils/results_log.py) and can die half-way."""

import argparse
import itertools
import json
from pathlib import Path

import pytest

from mde_mmrec import cli, grid, mmrec, report
from mde_mmrec.errors import MdeMmrecError

results_log = mmrec.plugin_module("results_log")

KEYS = ["seed", "cl_weight", "diff_weight", "reg_weight"]
VALUES = {"seed": [999, 7], "cl_weight": [0.01, 0.1], "diff_weight": [0.01, 0.1, 1.0], "reg_weight": [1e-4]}


def test_points_follow_mmrec_product_order():
    points = grid.grid_points(KEYS, VALUES)
    expected = [dict(zip(KEYS, t)) for t in itertools.product(*(VALUES[k] for k in KEYS))]
    assert points == expected
    assert len(points) == 12
    assert points[0] == {"seed": 999, "cl_weight": 0.01, "diff_weight": 0.01, "reg_weight": 1e-4}
    assert points[1]["diff_weight"] == 0.1 and points[-1]["seed"] == 7  # last key varies fastest


def test_points_need_seed_first_and_lists():
    with pytest.raises(ValueError):
        grid.grid_points(["cl_weight", "seed"], VALUES)
    with pytest.raises(MdeMmrecError, match="reg_weight"):
        grid.grid_points(["seed", "reg_weight"], {"seed": [1], "reg_weight": []})


def test_plan_skips_done_and_shards():
    points = grid.grid_points(KEYS, VALUES)
    done = [points[0], points[5]]
    to_run, skipped = grid.plan(points, done)
    assert [i for i, _ in skipped] == [0, 5]
    assert [i for i, _ in to_run] == [i for i in range(12) if i not in (0, 5)]
    shards = [grid.plan(points, done, (i, 3)) for i in (1, 2, 3)]
    assert [i for i, _ in shards[0][0]] == [3, 6, 9]  # 0 done
    assert [i for i, _ in shards[2][0]] == [2, 8, 11]  # 5 done
    ran = sorted(i for s in shards for i, _ in s[0] + s[1])
    assert ran == list(range(12))  # shards cover the grid exactly once


def test_plan_matches_the_patched_grid_loop(tmp_path):
    """grid.plan must select exactly what results_log.points_to_run (inside MMRec) will run."""
    points = grid.grid_points(KEYS, VALUES)
    results = tmp_path / "r.jsonl"
    base = {
        "model": "MDE",
        "dataset": "tiny",
        "hyper_parameters": KEYS,
        "results_file": str(results),
        "resume": True,
        **VALUES,
    }
    for p in (points[1], points[4]):
        results_log.append_record(
            results,
            {
                "model": "MDE",
                "dataset": "tiny",
                "params": p,
                "settings": results_log.point_settings(dict(base, grid_shard=None)),
            },
        )
    for shard in (None, (1, 2), (2, 2), (3, 5)):
        config = dict(base, grid_shard=f"{shard[0]}/{shard[1]}" if shard else None)
        combos = list(itertools.product(*(VALUES[k] for k in KEYS)))
        theirs = [i for i, _ in results_log.points_to_run(config, combos)]
        done = grid.done_params(mmrec.read_results(results), "MDE", "tiny")
        ours = [i for i, _ in grid.plan(points, done, shard)[0]]
        assert ours == theirs, shard


class FakeMMRec:
    """Stands in for run_main: runs the grid the way the patched MMRec does (points_to_run, one results
    line per finished point) and is 'killed' after ``die_after`` points."""

    def __init__(self, die_after=None):
        self.die_after = die_after
        self.calls = []
        self.trained = []

    def __call__(self, checkout, model, dataset, overrides, log_path=None, on_line=None):
        self.calls.append(dict(overrides))
        keys = overrides["hyper_parameters"]
        config = dict(overrides, model=model, dataset=dataset)
        config.setdefault("grid_shard", None)
        combos = list(itertools.product(*(overrides[k] for k in keys)))
        for n, (index, combo) in enumerate(results_log.points_to_run(config, combos)):
            if self.die_after is not None and n >= self.die_after:
                return -9  # SIGKILL
            params = results_log.params_of(keys, combo)
            self.trained.append(params)
            on_line and on_line(f"========={index + 1}/{len(combos)}: Parameters:{keys}={combo}=======")
            on_line and on_line("epoch 0 training [time: 0.01s, train loss: 1.0]")
            on_line and on_line("epoch 0 evaluating [time: 0.01s, valid_score: 0.100000]")
            score = 0.1 + params["cl_weight"] + 0.01 * params["diff_weight"]
            metrics = {f"{m}@{k}": score / k for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}
            results_log.append_record(
                overrides["results_file"],
                {
                    "model": model,
                    "dataset": dataset,
                    "params": params,
                    "seed": params["seed"],
                    "best_epoch": 0,
                    "epochs_run": 1,
                    "best_valid": metrics,
                    "test": metrics,
                    "s_per_epoch": 0.1,
                    "settings": results_log.point_settings(config),
                },
            )
        return 0


def test_killed_grid_resumes_without_rerunning(tmp_path):
    keys, values = KEYS, VALUES
    out = tmp_path / "grid"
    lines = []
    killed = FakeMMRec(die_after=5)
    code = grid.run_grid(tmp_path, "MDE", "tiny", keys, values, out, runner=killed, echo=lines.append)
    assert code != 0 and len(killed.trained) == 5
    assert killed.calls[0]["resume"] is True and killed.calls[0]["hyper_parameters"] == KEYS
    lines.clear()
    resumed = FakeMMRec()
    assert grid.run_grid(tmp_path, "MDE", "tiny", keys, values, out, runner=resumed, echo=lines.append) == 0
    assert "5 already done, 7 to run" in lines[0]
    assert sum(l.strip().startswith("skip") for l in lines) == 5
    all_trained = killed.trained + resumed.trained
    points = grid.grid_points(keys, values)
    assert sorted(map(json.dumps, all_trained)) == sorted(map(json.dumps, points))  # each point exactly once
    records = mmrec.read_results(out / "results.jsonl")
    assert len(records) == 12
    # a third run has nothing left to do and does not start MMRec
    idle = FakeMMRec()
    assert grid.run_grid(tmp_path, "MDE", "tiny", keys, values, out, runner=idle, echo=lines.append) == 0
    assert idle.calls == []


def test_shards_share_a_grid_and_merge(tmp_path, capsys):
    outs = []
    for i in (1, 2, 3):
        out = tmp_path / f"shard{i}"
        runner = FakeMMRec()
        grid.run_grid(tmp_path, "MDE", "tiny", KEYS, VALUES, out, shard=(i, 3), runner=runner, echo=lambda s: None)
        assert runner.calls[0]["grid_shard"] == f"{i}/3"
        assert len(runner.trained) == 4
        outs.append(out)
    import argparse

    merged = tmp_path / "merged"
    grid._cmd_merge(argparse.Namespace(dirs=[str(o) for o in outs], out=str(merged)))
    records = mmrec.read_results(merged / "results.jsonl")
    assert len(records) == 12
    summary = (merged / "summary.md").read_text()
    assert (
        "Best point by validation recall@20 (mean over its 2 seed(s)): **cl_weight=0.1, diff_weight=1.0, "
        "reg_weight=0.0001** (valid 0.0105"
    ) in summary
    assert (merged / "summary.csv").is_file()
    # the heatmap needs matplotlib (the plots extra), which `pip install -e ".[test]"` does not install
    assert (merged / "heatmap_cl_weight_diff_weight.png").is_file() == report.charts_available()


def test_shard_parsing():
    assert grid.parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1/"):
        with pytest.raises(MdeMmrecError, match="shard"):
            grid.parse_shard(bad)


def test_a_slurm_job_array_task_is_a_shard():
    """`sbatch --array=0-3` (or 1-4, 5-8): task SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT, from its MIN."""
    assert grid.slurm_shard({}) is None
    assert grid.slurm_shard({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}) == (1, 4)
    assert grid.slurm_shard(
        {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    ) == (4, 4)
    assert grid.slurm_shard(
        {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    ) == (1, 4)
    assert grid.slurm_shard(
        {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "5"}
    ) == (3, 4)
    with pytest.raises(MdeMmrecError, match=r"Slurm array task 9 is not one of 4 tasks from 0.*--array=0-N"):
        grid.slurm_shard({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"})  # ids with gaps (0,3,6,9)


def test_grid_takes_its_shard_from_a_slurm_job_array_unless_given(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(grid, "run_grid", lambda *args: seen.append(args[8]) or 0)
    monkeypatch.setattr(grid.mmrec, "find_checkout", lambda path: tmp_path)
    monkeypatch.setattr(grid.core, "check_model", lambda *args: None)
    monkeypatch.setattr(grid.core, "check_dataset", lambda *args: [])
    monkeypatch.setattr(grid, "grid_spec", lambda *args: (["seed"], {"seed": [999]}, {}))
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.delenv("SLURM_ARRAY_TASK_MIN", raising=False)
    base = ["grid", "--mmrec", str(tmp_path), "-d", "tiny", "--out", str(tmp_path / "out")]
    parser = cli.build_parser()
    for argv, shard in ((base, (3, 3)), (base + ["--shard", "1/2"], (1, 2))):
        args = parser.parse_args(argv)
        assert args.func(args) == 0
        assert seen[-1] == shard


def _fake_checkout(root: Path, model_yaml: str) -> Path:
    cfg = root / "src" / "configs"
    (cfg / "model").mkdir(parents=True)
    (cfg / "dataset").mkdir()
    (cfg / "overall.yaml").write_text("seed: [999]\nepochs: 1000\nhyper_parameters: ['seed']\n")
    (cfg / "dataset" / "tiny.yaml").write_text("inter_file_name: 'tiny.inter'\n")
    (cfg / "model" / "MDE.yaml").write_text(model_yaml)
    return root


MDE_YAML = """cl_weight: [0.01, 0.1]
diff_weight: [0.01, 0.1]
reg_weight: [0.0001, 0.001]
hyper_parameters: ["cl_weight", "diff_weight", "reg_weight"]
use_mda: True
"""


def test_grid_spec_from_yaml_and_overrides(tmp_path):
    checkout = _fake_checkout(tmp_path, MDE_YAML)
    keys, values, plain = grid.grid_spec(checkout, "MDE", "tiny", {}, None)
    assert keys == KEYS and values["seed"] == [999] and values["reg_weight"] == [1e-4, 1e-3]
    keys, values, plain = grid.grid_spec(
        checkout, "MDE", "tiny", {"cl_weight": [0.5], "diff_weight": 0.2, "use_mda": False}, [1, 2]
    )
    assert values["cl_weight"] == [0.5] and values["diff_weight"] == [0.2] and values["seed"] == [1, 2]
    assert plain == {"use_mda": False}


def test_grid_key_mde_does_not_have(tmp_path):
    checkout = _fake_checkout(tmp_path, MDE_YAML)
    with pytest.raises(
        MdeMmrecError,
        match=r"--set cl_wieght: unknown config key\(s\) cl_wieght \(a grid key must be one "
        r"of MDE's keys.*did you mean cl_weight, ",
    ):
        grid.grid_spec(checkout, "MDE", "tiny", {"cl_wieght": [0.1, 1.0]}, None)
    with pytest.raises(
        MdeMmrecError,
        match=r"--set epochs=\[1, 2\]: epochs is set in configs/overall.yaml or the data "
        r"set's yaml, not in .*MDE.yaml, and a grid key must be one of MDE's keys: "
        r"give one value \(the number of epochs: --epochs N\)",
    ):
        grid.grid_spec(checkout, "MDE", "tiny", {"epochs": [1, 2]}, None)
    with pytest.raises(MdeMmrecError, match="unknown config key"):
        grid.grid_spec(checkout, "MDE", "tiny", {"nonsense": 1}, None)


def test_best_point_is_the_best_mean_over_seeds_not_one_lucky_seed(tmp_path):
    metrics = lambda v: {f"{m}@{k}": v for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}
    runs = [(0.001, 999, 0.50), (0.001, 1000, 0.46), (0.01, 999, 0.49), (0.01, 1000, 0.49)]  # means .48 / .49
    records = [
        {
            "model": "MDE",
            "dataset": "tiny",
            "seed": seed,
            "best_epoch": 1,
            "params": {"seed": seed, "cl_weight": cl},
            "best_valid": metrics(v),
            "test": metrics(v),
        }
        for cl, seed, v in runs
    ]
    text = grid.summarize(records, ["seed", "cl_weight"], tmp_path, "t", charts=False).read_text()
    assert "(mean over its 2 seed(s)): **cl_weight=0.01** (valid 0.4900" in text


def test_a_bad_shard_is_explained_in_grids_own_spelling():
    assert grid.parse_shard("2/4") == (2, 4)
    with pytest.raises(MdeMmrecError, match=r"--shard 3/2: write i/n with 1 <= i <= n, e.g. --shard 1/4"):
        grid.parse_shard("3/2")


def test_the_summary_says_when_the_best_point_is_tied_or_rests_on_one_seed(tmp_path):
    metrics = lambda v: {f"{m}@{k}": v for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}
    records = [
        {
            "model": "MDE",
            "dataset": "tiny",
            "seed": 999,
            "best_epoch": 2,
            "params": {"seed": 999, "cl_weight": cl},
            "best_valid": metrics(v),
            "test": metrics(v),
        }
        for cl, v in ((0.001, 0.48), (0.01, 0.48), (0.1, 0.40))
    ]
    text = grid.summarize(records, ["seed", "cl_weight"], tmp_path, "t", charts=False).read_text()
    assert "tied on validation with the next 1 row(s) of the table" in text
    assert "one seed per point: rerun with --seeds N" in text
    assert "| cl_weight | valid recall@20 |" in text and "| epochs to best |" in text and "| 3.0 |" in text


def _grid_point(cl, seed, valid, test, dataset="tiny", failed=None):
    return {
        "model": "MDE",
        "dataset": dataset,
        "seed": seed,
        "best_epoch": 0,
        "failed": failed,
        "params": {"seed": seed, "cl_weight": cl},
        "best_valid": {"recall@20": valid},
        "test": {"recall@20": test, "ndcg@20": test},
    }


def test_finished_points_of_another_data_set_are_not_skipped():
    records = [
        {"model": "MDE", "dataset": "baby", "params": {"seed": 1}},
        {"model": "MDE", "dataset": "tiny", "params": {"seed": 2}},
    ]
    assert grid.done_params(records, "MDE", "tiny") == [{"seed": 2}]


def test_grid_merge_counts_a_point_run_by_two_shards_once(tmp_path):
    for name, points in (("a", [(0.01, 0.3), (0.1, 0.4)]), ("b", [(0.1, 0.4)])):
        (tmp_path / name).mkdir()
        for cl, v in points:
            results_log.append_record(tmp_path / name / "results.jsonl", _grid_point(cl, 1, v, v))
    grid._cmd_merge(argparse.Namespace(dirs=[str(tmp_path / "a"), str(tmp_path / "b")], out=str(tmp_path / "m")))
    assert len(mmrec.read_results(tmp_path / "m" / "results.jsonl")) == 2
    assert "2 finished run(s)" in (tmp_path / "m" / "summary.md").read_text()


def test_grid_seeds_default_to_the_seed_in_the_config_files(tmp_path):
    checkout = _fake_checkout(tmp_path, MDE_YAML)
    overall = checkout / "src" / "configs" / "overall.yaml"
    for seed, expected in (("[5, 6]", [5, 6]), ("7", [7])):
        overall.write_text(f"seed: {seed}\nepochs: 1000\nhyper_parameters: ['seed']\n")
        assert grid.grid_spec(checkout, "MDE", "tiny", {}, None)[1]["seed"] == expected
