"""Tier 1: the bookkeeping of finished runs. They are reused only under the settings they were made with
(compare, demo, reproduce and grid resume from their results files; a rerun with other settings into the
same folder is refused with what differs, never mixed in silently), and a run without a result (NaN loss)
is a failure, never a row of zeros. Against a fake MMRec runner in a stand-in checkout."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from checkout_support import standin_checkout

from mde_mmrec import core, grid, mmrec, runner
from mde_mmrec.errors import MdeMmrecError

results_log = mmrec.plugin_module("results_log")


METRICS = {f"{m}@{k}": 0.1 for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}


class FakeRunner:
    """Appends one results line per seed still to run (as the patched MMRec does) and counts its calls."""

    def __init__(self, failed_seeds=()):
        self.calls = []
        self.failed_seeds = set(failed_seeds)

    def __call__(self, checkout, model, dataset, overrides, log_path=None, on_line=None, **limits):
        self.calls.append(dict(overrides))
        config = dict(overrides, model=model, dataset=dataset, grid_shard=overrides.get("grid_shard"))
        keys = overrides["hyper_parameters"]
        values = [overrides[k] if isinstance(overrides[k], list) else [overrides[k]] for k in keys]
        import itertools

        for _, combo in results_log.points_to_run(config, list(itertools.product(*values))):
            params = results_log.params_of(keys, combo)
            results_log.append_record(
                overrides["results_file"],
                {
                    "model": model,
                    "dataset": dataset,
                    "params": params,
                    "seed": params["seed"],
                    "best_epoch": 0,
                    "epochs_run": 1,
                    "best_valid": METRICS,
                    "test": METRICS,
                    "failed": results_log.NO_EPOCH_FINISHED if params["seed"] in self.failed_seeds else None,
                    "settings": results_log.point_settings(config),
                },
            )
        return 0


def _compare(checkout, out, runner, epochs=1, overrides=None):
    return core.run_configs(
        checkout,
        "tiny",
        [core.RunConfig("BPR", "BPR", dict(overrides or {}))],
        [999, 1000],
        out,
        epochs=epochs,
        runner=runner,
        echo=lambda line: None,
    )


def test_compare_reuses_finished_seeds_only_under_the_same_settings(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    first = FakeRunner()
    records, _ = _compare(checkout, out, first)
    assert len(first.calls) == 1 and len(records) == 2
    assert core.settings_file(out / "runs" / "BPR.jsonl").is_file()

    again = FakeRunner()
    assert len(_compare(checkout, out, again)[0]) == 2 and again.calls == []  # same settings: reused

    for epochs, overrides, difference in (
        (3, None, "epochs: 1 -> 3"),
        (1, {"reg_weight": 0.5}, "reg_weight: 0.1 -> 0.5"),
    ):
        other = FakeRunner()
        with pytest.raises(MdeMmrecError) as error:
            _compare(checkout, out, other, epochs=epochs, overrides=overrides)
        assert other.calls == []  # refused before running
        message = str(error.value)
        assert difference in message and str(out / "runs" / "BPR.jsonl") in message and "another --out" in message


def test_compare_refuses_runs_made_on_other_data(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())
    (checkout / "data" / "tiny" / "tiny.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n")
    with pytest.raises(MdeMmrecError, match="interactions_sha256"):
        _compare(checkout, out, FakeRunner())


class RefusingRunner(FakeRunner):
    """main.py finding finished lines made with other settings: it exits 1 and writes nothing."""

    def __call__(self, checkout, model, dataset, overrides, log_path=None, on_line=None, **limits):
        self.calls.append(dict(overrides))
        return 1


def test_runs_without_recorded_settings_are_left_to_main_pys_own_check(tmp_path, caplog):
    """No sidecar (deleted, or results written by main.py itself): nothing is skipped on trust; main.py gets
    every seed with resume on, and the sidecar is written only once main.py accepted the finished lines."""
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())
    sidecar = core.settings_file(out / "runs" / "BPR.jsonl")
    sidecar.unlink()
    refusing = RefusingRunner()
    with caplog.at_level(logging.WARNING):
        _, status = _compare(checkout, out, refusing, epochs=3)
    assert [(c["seed"], c["resume"]) for c in refusing.calls] == [([999, 1000], True)]
    assert status["BPR"].startswith("failed") and not sidecar.exists()
    assert "main.py compares each finished run's own recorded settings" in caplog.text
    accepting = FakeRunner()  # the same settings: main.py skips both seeds and exits 0
    records, status = _compare(checkout, out, accepting)
    assert len(accepting.calls) == 1 and len(records) == 2 and status == {"BPR": "ok"} and sidecar.is_file()
    again = FakeRunner()
    _compare(checkout, out, again)
    assert again.calls == []  # vouched for by the sidecar now


def test_a_grid_without_recorded_settings_is_left_to_main_pys_own_check(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "grid"
    keys, values = ["seed", "reg_weight"], {"seed": [999], "reg_weight": [0.1, 0.01]}
    assert (
        grid.run_grid(checkout, "BPR", "tiny", keys, values, out, epochs=2, runner=FakeRunner(), echo=lambda line: None)
        == 0
    )
    sidecar = core.settings_file(out / "results.jsonl")
    sidecar.unlink()
    refusing = RefusingRunner()
    assert (
        grid.run_grid(checkout, "BPR", "tiny", keys, values, out, epochs=5, runner=refusing, echo=lambda line: None)
        == 1
    )
    assert len(refusing.calls) == 1 and not sidecar.exists()


def test_grid_takes_more_values_but_refuses_other_fixed_settings(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "grid"
    keys = ["seed", "reg_weight"]
    first = FakeRunner()
    assert (
        grid.run_grid(
            checkout,
            "BPR",
            "tiny",
            keys,
            {"seed": [999], "reg_weight": [0.1]},
            out,
            epochs=2,
            runner=first,
            echo=lambda line: None,
        )
        == 0
    )
    more = FakeRunner()
    assert (
        grid.run_grid(
            checkout,
            "BPR",
            "tiny",
            keys,
            {"seed": [999], "reg_weight": [0.1, 0.01]},
            out,
            epochs=2,
            runner=more,
            echo=lambda line: None,
        )
        == 0
    )
    assert len(mmrec.read_results(out / "results.jsonl")) == 2  # the new point only was added
    other = FakeRunner()
    with pytest.raises(MdeMmrecError, match="epochs: 2 -> 5"):
        grid.run_grid(
            checkout,
            "BPR",
            "tiny",
            keys,
            {"seed": [999], "reg_weight": [0.1]},
            out,
            epochs=5,
            runner=other,
            echo=lambda line: None,
        )
    assert other.calls == []
    with pytest.raises(MdeMmrecError, match=r"\(epochs: 2 -> \(a grid key\); hyper_parameters: "):  # not "(not set)"
        grid.run_grid(
            checkout,
            "BPR",
            "tiny",
            keys + ["epochs"],
            {"seed": [999], "reg_weight": [0.1], "epochs": [2, 3]},
            out,
            runner=other,
            echo=lambda line: None,
        )
    assert other.calls == []


def test_compare_refuses_a_list_that_would_make_a_grid_inside_one_row(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    runner = FakeRunner()
    with pytest.raises(MdeMmrecError, match=r"'BPR': reg_weight=\[0.1, 1.0\] would be a grid inside one row"):
        _compare(checkout, out, runner, overrides={"reg_weight": [0.1, 1.0]})
    assert runner.calls == []
    (checkout / "src" / "configs" / "overall.yaml").write_text(
        "seed: [999]\nepochs: 1000\nhyper_parameters: ['seed']\ntopk: [10, 20]\n"
    )
    _compare(checkout, out, runner, overrides={"topk": [20, 50]})  # a list-valued key outside the grid
    assert len(runner.calls) == 1


def test_an_edited_config_file_counts_as_other_settings(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())
    model_yaml = checkout / "src" / "configs" / "model" / "BPR.yaml"
    model_yaml.write_text(model_yaml.read_text() + "learning_rate: 0.05\n")
    with pytest.raises(MdeMmrecError, match=r"learning_rate: \(not set\) -> 0.05"):
        _compare(checkout, out, FakeRunner())


def test_compare_and_grid_keep_out_of_each_others_folders(tmp_path):
    checkout = standin_checkout(tmp_path / "MMRec")
    grid_out, compare_out = tmp_path / "grid", tmp_path / "cmp"
    grid.run_grid(
        checkout,
        "BPR",
        "tiny",
        ["seed", "reg_weight"],
        {"seed": [999], "reg_weight": [0.1]},
        grid_out,
        runner=FakeRunner(),
        echo=lambda line: None,
    )
    with pytest.raises(MdeMmrecError, match="holds a grid search"):
        _compare(checkout, grid_out, FakeRunner())
    assert len(mmrec.read_results(grid_out / "results.jsonl")) == 1  # the grid's results untouched
    _compare(checkout, compare_out, FakeRunner())
    with pytest.raises(MdeMmrecError, match="holds a comparison"):
        grid.run_grid(
            checkout,
            "BPR",
            "tiny",
            ["seed", "reg_weight"],
            {"seed": [999], "reg_weight": [0.1]},
            compare_out,
            runner=FakeRunner(),
            echo=lambda line: None,
        )


def test_grid_merge_refuses_shards_run_with_other_settings(tmp_path):
    import argparse

    checkout = standin_checkout(tmp_path / "MMRec")
    keys, values = ["seed", "reg_weight"], {"seed": [999], "reg_weight": [0.1, 0.01]}
    for shard, epochs in ((1, 1), (2, 4)):
        grid.run_grid(
            checkout,
            "BPR",
            "tiny",
            keys,
            values,
            tmp_path / f"s{shard}",
            epochs=epochs,
            shard=(shard, 2),
            runner=FakeRunner(),
            echo=lambda line: None,
        )
    with pytest.raises(MdeMmrecError, match=r"s2 ran with other settings than .*s1 \(epochs: 1 -> 4\)"):
        grid._cmd_merge(
            argparse.Namespace(dirs=[str(tmp_path / "s1"), str(tmp_path / "s2")], out=str(tmp_path / "merged"))
        )
    assert not (tmp_path / "merged").exists()
    grid.run_grid(
        checkout,
        "BPR",
        "tiny",
        keys,
        values,
        tmp_path / "s3",
        epochs=1,
        shard=(2, 2),
        plain={"gpu_id": 1},
        runner=FakeRunner(),
        echo=lambda line: None,
    )  # README: a shard per GPU
    grid._cmd_merge(argparse.Namespace(dirs=[str(tmp_path / "s1"), str(tmp_path / "s3")], out=str(tmp_path / "m")))
    assert len(mmrec.read_results(tmp_path / "m" / "results.jsonl")) == 2
    assert core.settings_file(tmp_path / "m" / "results.jsonl").is_file()  # the merged grid resumes too


def test_a_seed_without_a_result_fails_the_configuration_and_stays_out_of_the_table(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    records, status = _compare(checkout, out, FakeRunner(failed_seeds={1000}))
    assert [r["seed"] for r in records] == [999]
    assert status["BPR"] == f"failed for seed(s) 1000: {results_log.NO_EPOCH_FINISHED}"


def test_grid_summary_lists_points_without_a_result_instead_of_ranking_them(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "grid"
    grid.run_grid(
        checkout,
        "BPR",
        "tiny",
        ["seed", "reg_weight"],
        {"seed": [999, 1000], "reg_weight": [0.1]},
        out,
        runner=FakeRunner(failed_seeds={1000}),
        echo=lambda line: None,
    )
    records = mmrec.read_results(out / "results.jsonl")
    text = grid.summarize(records, ["seed", "reg_weight"], out, "t", charts=False).read_text()
    assert "(mean over its 1 seed(s)): **reg_weight=0.1**" in text
    assert f"- seed=1000, reg_weight=0.1: {results_log.NO_EPOCH_FINISHED}" in text


def test_compare_resumes_a_configuration_that_finished_only_some_seeds(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    core.run_configs(
        checkout,
        "tiny",
        [core.RunConfig("BPR", "BPR")],
        [999],
        out,
        epochs=1,
        runner=FakeRunner(),
        echo=lambda line: None,
    )  # seed 999 only
    again = FakeRunner()
    records, status = _compare(checkout, out, again)  # seeds 999 and 1000
    assert len(again.calls) == 1  # not skipped: 1000 is missing
    assert sorted(r["seed"] for r in records) == [999, 1000] and status == {"BPR": "ok"}


def test_compare_with_fewer_seeds_reports_only_those_seeds(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())  # seeds 999 and 1000
    records, _ = core.run_configs(
        checkout,
        "tiny",
        [core.RunConfig("BPR", "BPR")],
        [999],
        out,
        epochs=1,
        runner=FakeRunner(),
        echo=lambda line: None,
    )
    assert [r["seed"] for r in records] == [999]  # 1000 is in the file, not asked for


def test_seed_list_defaults_to_mmrecs_seed_upwards_and_drops_repeats():
    assert core.seed_list(3, None) == [999, 1000, 1001]
    assert core.seed_list(None, None) == [999]
    assert core.seed_list(None, [7, 5, 7]) == [7, 5]


def test_two_configurations_with_one_label_are_refused_before_running(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    runner = FakeRunner()
    configs = [core.RunConfig("X", "BPR"), core.RunConfig("X", "BPR", {"reg_weight": 0.01})]
    with pytest.raises(MdeMmrecError, match="configuration labels must differ"):
        core.run_configs(checkout, "tiny", configs, [999], out, runner=runner, echo=lambda line: None)
    assert runner.calls == []


def test_a_multimodal_model_needs_the_feature_files(tmp_path):
    checkout = standin_checkout(tmp_path / "MMRec", model_yaml="is_multimodal_model: True\n")
    (checkout / "src" / "configs" / "dataset" / "tiny.yaml").write_text(
        "inter_file_name: 'tiny.inter'\nvision_feature_file: 'image_feat.npy'\ntext_feature_file: 'text_feat.npy'\n"
    )
    with pytest.raises(MdeMmrecError, match=r"feature file .*image_feat.npy is missing"):
        core.check_dataset(checkout, "tiny", "BPR")
    (checkout / "src" / "configs" / "model" / "MDE.yaml").write_text("is_multimodal_model: True\n")
    with pytest.raises(
        MdeMmrecError,
        match=r"no feature file for MDE: vision_feature_file .*image_feat.npy is "
        r"missing; text_feature_file .*text_feat.npy is missing",
    ):
        core.check_dataset(checkout, "tiny", "MDE")
    text = checkout / "data" / "tiny" / "text_feat.npy"
    np.save(text, np.ones((1, 4), dtype=np.float32))
    core.check_dataset(checkout, "tiny", "MDE")  # as main.py: MDE runs on the text features alone
    with pytest.raises(MdeMmrecError, match=r"image_feat.npy is missing"):
        core.check_dataset(checkout, "tiny", "BPR")


@pytest.mark.parametrize(
    "content, error",
    [
        (b"", r"cannot be read as a .npy array of numbers \(the file is empty\)"),
        (np.array([[None, {"a": 1}]], dtype=object), r"cannot be read as a .npy array of numbers \(ValueError"),
        (b"\x93NUMPY not really", r"cannot be read as a .npy array"),
        (
            np.ones(3, dtype=np.float32),
            r"holds a float32 array of shape \(3,\), expected numbers of shape \(number of "
            r"items, feature dimension\)",
        ),
        (np.ones((3, 0), dtype=np.float32), r"holds a float32 array of shape \(3, 0\)"),
        (np.array([["a", "b"]]), r"holds a <U1 array of shape \(1, 2\), expected numbers"),
        (
            np.array([[0.5, np.nan, 1.0]], dtype=np.float32),
            r"has NaN or inf in 1 of its 1 rows \(the first: row 0, item "
            r"id 0\); every model would train on a NaN loss: replace them",
        ),
    ],
)
def test_a_feature_file_that_cannot_be_loaded_is_named_before_training(tmp_path, content, error):
    checkout = standin_checkout(tmp_path / "MMRec", model="MDE", model_yaml="is_multimodal_model: True\n")
    (checkout / "src" / "configs" / "dataset" / "tiny.yaml").write_text(
        "inter_file_name: 'tiny.inter'\nvision_feature_file: 'image_feat.npy'\ntext_feature_file: 'text_feat.npy'\n"
    )
    np.save(checkout / "data" / "tiny" / "image_feat.npy", np.ones((1, 8), dtype=np.float32))
    text = checkout / "data" / "tiny" / "text_feat.npy"
    if isinstance(content, bytes):
        text.write_bytes(content)
    else:
        np.save(text, content)
    with pytest.raises(
        MdeMmrecError, match=r"feature file .*text_feat.npy \(text_feature_file in .*tiny.yaml\) " + error
    ):
        core.check_dataset(checkout, "tiny", "MDE")


def test_a_users_value_for_a_grid_key_is_kept_and_a_list_for_a_plain_key_is_refused():
    file_config = {
        "model": "BPR",
        "hyper_parameters": ["seed", "reg_weight"],
        "reg_weight": [0.1, 0.01],
        "learning_rate": 0.001,
    }
    overrides, warnings = core.pin_grid(file_config, {"reg_weight": 0.01})
    assert overrides == {"reg_weight": 0.01} and warnings == []
    with pytest.raises(MdeMmrecError, match=r"learning_rate=\[0.1, 1.0\] would be a grid inside one row"):
        core.check_single_values(file_config, {"learning_rate": [0.1, 1.0]}, "BPR")


def test_a_second_run_into_the_same_folder_is_refused_until_the_first_ends(tmp_path):
    """Two runs into one folder would both train the missing seeds and append them twice."""
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from mde_mmrec import runner
        with runner.out_dir_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(120)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        runner = FakeRunner()
        with pytest.raises(
            MdeMmrecError, match=re.escape(f"{out} is in use by another mde-mmrec run (pid {holder.pid}, ")
        ):
            _compare(checkout, out, runner)
        with pytest.raises(MdeMmrecError, match="is in use by another mde-mmrec run"):
            grid.run_grid(
                checkout, "BPR", "tiny", ["seed"], {"seed": [999]}, out, runner=runner, echo=lambda line: None
            )
        assert runner.calls == []
    finally:
        holder.kill()  # however the first run ends, its lock ends with it
        holder.wait()
        holder.stdout.close()
    records, status = _compare(checkout, out, FakeRunner())
    assert status == {"BPR": "ok"} and len(records) == 2


def test_a_run_is_refused_while_a_main_py_still_writes_into_the_folder(tmp_path):
    """Where no parent-death signal stopped it (not Linux; a main.py started by hand), a main.py still
    appending to OUT would race a rerun for the same points: the rerun waits for it instead."""
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", f"--results_file={out.resolve() / 'runs' / 'BPR.jsonl'}"]
    )
    try:
        runner_calls = FakeRunner()
        with pytest.raises(
            MdeMmrecError,
            match=rf"main.py of an earlier run still writes there \(pid {orphan.pid}\)"
            rf".*kill {orphan.pid}",
        ):
            _compare(checkout, out, runner_calls)
        assert runner_calls.calls == []
    finally:
        orphan.kill()
        orphan.wait()
    records, status = _compare(checkout, out, FakeRunner())
    assert status == {"BPR": "ok"} and len(records) == 2


def test_an_out_folder_that_is_a_file_is_refused(tmp_path):
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out.txt"
    out.write_text("notes\n")
    with pytest.raises(MdeMmrecError, match="--out .*out.txt is a file, not a folder"):
        _compare(checkout, out, FakeRunner())
    assert out.read_text() == "notes\n"


def test_a_run_refused_before_writing_anything_leaves_no_folder_behind(tmp_path):
    out, kept = tmp_path / "new" / "out", tmp_path / "kept"
    with pytest.raises(MdeMmrecError, match="bad"):
        with runner.out_dir_lock(out):
            assert (out / ".mde-mmrec.lock").is_file()
            raise MdeMmrecError("bad configuration")
    assert not out.exists()
    kept.mkdir()
    with runner.out_dir_lock(kept):  # a folder that was there before stays
        pass
    with runner.out_dir_lock(out):  # a run that wrote something keeps its folder
        (out / "summary.md").write_text("x")
    assert kept.is_dir() and (out / "summary.md").is_file()


def test_runs_without_recorded_settings_are_never_reused(tmp_path):
    """Lines of an older mde-mmrec record no settings: neither a sidecar nor main.py can vouch for them."""
    checkout, out = standin_checkout(tmp_path / "MMRec"), tmp_path / "out"
    _compare(checkout, out, FakeRunner())
    runs = out / "runs" / "BPR.jsonl"
    runs.write_text(
        "".join(
            json.dumps({k: v for k, v in json.loads(line).items() if k != "settings"}) + "\n"
            for line in runs.read_text().splitlines()
        )
    )
    runner = FakeRunner()
    with pytest.raises(
        core.OtherSettingsError,
        match=r"BPR.jsonl holds runs without recorded settings \(written "
        r"by an older mde-mmrec\).*choose another --out, or delete",
    ):
        _compare(checkout, out, runner)
    assert runner.calls == []
