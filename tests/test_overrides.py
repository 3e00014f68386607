"""Tier 1: `main.py --key=value` overrides (src/utils/cli_overrides.py), good and bad values."""

from __future__ import annotations

import math

import pytest

from mde_mmrec.errors import MdeMmrecError
from mde_mmrec.mmrec import format_override, override_args, plugin_module

co = plugin_module("cli_overrides")

# the merged config files of a model with a grid, as Config.read_files returns them (shape of MMRec's
# overall.yaml + a dataset yaml + DRAGON.yaml, shortened)
FILE_CONFIG = {
    "gpu_id": 0,
    "use_gpu": True,
    "seed": [999],
    "epochs": 1000,
    "train_batch_size": 2048,
    "stopping_step": 20,
    "learning_rate": 0.001,
    "learner": "adam",
    "topk": [5, 10, 20, 50],
    "metrics": ["Recall", "NDCG"],
    "valid_metric": "Recall@20",
    "learning_rate_scheduler": [1.0, 50],
    "weight_decay": 0.0,
    "end2end": False,
    "clip_grad_norm": None,
    "results_file": None,
    "resume": False,
    "grid_shard": None,
    "aggr_mode": ["add"],
    "reg_weight": [0.1, 0.01, 0.001],
    "dropout": [0.8, 0.9],
    "cl_weight": 2.0,
    "hyper_parameters": ["seed", "aggr_mode", "reg_weight", "dropout"],
}


def parse(*argv):
    return co.parse_overrides(list(argv), FILE_CONFIG)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], {}),
        (["--epochs=5"], {"epochs": 5}),
        (["--epochs", "5"], {"epochs": 5}),
        (["--learning_rate=1e-3"], {"learning_rate": 0.001}),  # MMRec's float rule, not a string
        (["--learning_rate=1E+2"], {"learning_rate": 100.0}),
        (["--use_gpu=False"], {"use_gpu": False}),
        (["--clip_grad_norm=null"], {"clip_grad_norm": None}),
        (["--learner=sgd"], {"learner": "sgd"}),
        (["--topk=[10,20]"], {"topk": [10, 20]}),  # a list setting, not a grid
        (["--reg_weight=[0.5,0.05]"], {"reg_weight": [0.5, 0.05]}),  # grid key: new grid values
        (["--reg_weight=0.5"], {"reg_weight": [0.5]}),  # grid key, one value: one point
        (["--seed=[1,2,3]"], {"seed": [1, 2, 3]}),
        (
            ["--cl_weight=[0.1,0.2]"],
            {"cl_weight": [0.1, 0.2], "hyper_parameters": ["seed", "aggr_mode", "reg_weight", "dropout", "cl_weight"]},
        ),
        (
            ["--results_file=/tmp/r.jsonl", "--resume=True", "--grid_shard=2/3"],
            {"results_file": "/tmp/r.jsonl", "resume": True, "grid_shard": "2/3"},
        ),
    ],
)
def test_good_overrides(argv, expected):
    assert parse(*argv) == expected


def test_hyper_parameters_replaces_the_grid_and_unwraps_single_values():
    result = parse("--hyper_parameters=[reg_weight]", "--dropout=0.8")
    assert result == {"hyper_parameters": ["seed", "reg_weight"], "dropout": 0.8, "aggr_mode": "add"}


def test_a_scalar_key_named_in_the_grid_becomes_a_one_value_list():
    result = parse("--hyper_parameters=[seed,cl_weight,reg_weight,dropout]", "--aggr_mode=add")
    assert result == {
        "hyper_parameters": ["seed", "cl_weight", "reg_weight", "dropout"],
        "cl_weight": [2.0],
        "aggr_mode": "add",
    }


def test_hyper_parameters_requires_pinning_dropped_multi_value_keys():
    with pytest.raises(
        co.OverrideError, match=r"leaves reg_weight, dropout out of the grid.*--reg_weight=VALUE --dropout=VALUE"
    ):
        parse("--hyper_parameters=[seed]")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epocs=5"], r"--epocs=5: unknown config key 'epocs'.*did you mean epochs"),
        (["--no_such_key=1"], r"unknown config key 'no_such_key'"),
        (["--epochs=abc"], r"--epochs=abc: epochs expects a number .*got a string 'abc'"),
        (["--use_gpu=1"], r"use_gpu expects a bool"),
        (["--reg_weight=[0.1,x]"], r"reg_weight expects a number.*'x'"),
        (["--epochs=[1,2"], r"--epochs=\[1,2: not valid YAML"),
        (["--epochs="], r"--epochs=: empty value"),
        (["--epochs"], r"'--epochs' has no value"),
        (["epochs=5"], r"unexpected argument 'epochs=5'"),
        (["-x"], r"unexpected argument '-x'"),
        (["--epochs=1", "--epochs=2"], r"epochs is given twice"),
        (["--model=BPR"], r"use -m MODEL"),
        (["--dataset=baby"], r"use -d DATASET"),
        (["--reg_weight=[]"], r"empty list"),
        (
            ["--reg_weight=[0.1,0.01,0.1]"],
            r"--reg_weight=\[0.1,0.01,0.1\]: 0.1 is listed twice, so that grid point would "
            r"run twice with the same seed; list each value once",
        ),
        (["--seed=[999,999]"], r"999 is listed twice"),
        (["--hyper_parameters=reg_weight"], r"must be a list of config keys"),
        (["--hyper_parameters=[regweight]"], r"unknown config key 'regweight'.*reg_weight"),
        (["--grid_shard=3/2"], r"grid_shard='3/2' is not of the form i/n"),
        (["--grid_shard=half"], r"grid_shard='half'"),
        (["--resume=True"], r"resume=True needs a results_file"),
        (["--results_file=/no/such/folder/r.jsonl"], r"folder /no/such/folder does not exist"),
        (["--epochs={a: 1}"], r"a mapping"),
        (["--epochs=-1"], r"epochs=-1 must be a whole number >= 1"),  # MMRec would run no epoch and log NaN
        (["--epochs=0"], r"epochs=0 must be a whole number >= 1"),
        (["--train_batch_size=2.5"], r"train_batch_size=2.5 must be a whole number"),
        (["--learning_rate=0"], r"learning_rate=0 must be a positive number"),
        (["--learning_rate=[0.01,-1]"], r"learning_rate=-1 must be a positive number"),
        (["--learning_rate=.nan"], r"learning_rate=nan must be a positive number"),
        (["--epochs=2.0"], r"epochs=2.0 must be a whole number >= 1"),  # MMRec: TypeError later
    ],
)
def test_bad_overrides_are_errors(argv, message):
    with pytest.raises(co.OverrideError, match=message):
        parse(*argv)


@pytest.mark.parametrize(
    "value",
    [
        0,
        5,
        -3,
        0.1,
        1e-05,
        1e-12,
        2.0,
        1e20,
        -0.5,
        True,
        False,
        None,
        "sgd",
        "Recall@20",
        "1e-3",
        "True",
        "null",
        "a b",
        "it's",
        "",
        "[x]",
        "1/4",
        [0.1, 0.01],
        [1, 2],
        ["add"],
        [True, None],
        [],
        [[1, 2], [3]],
        math.inf,
        -math.inf,
    ],
)
def test_format_value_round_trips_through_the_loader(value):
    text = format_override(value)
    back = co.parse_value(text)
    assert back == value and type(back) is type(value), (value, text, back)


def test_format_value_nan_and_refusals():
    assert math.isnan(co.parse_value(format_override(math.nan)))
    with pytest.raises(MdeMmrecError, match="cannot pass a dict"):
        format_override({"a": 1})
    assert override_args({"epochs": 5, "reg_weight": [0.1, 0.01], "resume": True, "grid_shard": "1/2"}) == [
        "--epochs=5",
        "--reg_weight=[0.1,0.01]",
        "--resume=True",
        "--grid_shard=1/2",
    ]


def test_formatted_overrides_parse_back_to_the_same_config():
    wanted = {"learning_rate": 1e-4, "reg_weight": [0.1, 1e-05], "use_gpu": False, "learner": "sgd"}
    assert parse(*override_args(wanted)) == wanted


def fake_src(tmp_path, data=True):
    """A folder shaped like MMRec's src/ (configs, models, ../data), written by the test."""
    src = tmp_path / "src"
    for name in ("configs/model", "configs/dataset", "models"):
        (src / name).mkdir(parents=True)
    (src / "configs" / "overall.yaml").write_text("epochs: 1000\n")
    (src / "configs" / "model" / "MDE.yaml").write_text("cl_weight: 0.1\n")
    (src / "models" / "mde.py").write_text("")
    (src / "configs" / "dataset" / "tiny.yaml").write_text("inter_file_name: tiny.inter\n")
    if data:
        (tmp_path / "data" / "tiny").mkdir(parents=True)
        (tmp_path / "data" / "tiny" / "tiny.inter").write_text("")
    return src


SRC_CONFIG = {"data_path": "../data/", "inter_file_name": "tiny.inter"}


def test_model_and_dataset_that_exist_pass(tmp_path):
    src = fake_src(tmp_path)
    co.check_model_and_dataset("MDE", "tiny", src)
    co.check_interactions("tiny", SRC_CONFIG, src)
    (src / "models" / "mybpr.py").write_text("")  # a user's own model, no yaml: MMRec runs it
    co.check_model_and_dataset("MYBPR", "tiny", src)
    (src / "models" / "zqpkg").mkdir()  # a model package: MMRec imports it too
    (src / "models" / "zqpkg" / "__init__.py").write_text("")
    co.check_model_and_dataset("ZQPKG", "tiny", src)


@pytest.mark.parametrize(
    "model, dataset, message",
    [
        ("MDEX", "tiny", r"-m MDEX: no such model .*src/models/mdex.py.*did you mean MDE\?"),
        ("mde", "tiny", r"-m mde: no such model .*case-sensitive.*did you mean MDE\?"),
        (
            "MDE",
            "tinyy",
            r"-d tinyy: no data set config src/configs/dataset/tinyy.yaml; did you mean tiny\?"
            r".*mde-mmrec make-data",
        ),
    ],
)
def test_a_mistyped_model_or_dataset_is_an_error_before_any_data_is_loaded(tmp_path, model, dataset, message):
    with pytest.raises(co.OverrideError, match=message):
        co.check_model_and_dataset(model, dataset, fake_src(tmp_path))


def test_missing_interactions_point_at_the_download_and_the_synthetic_data(tmp_path):
    src = fake_src(tmp_path, data=False)
    with pytest.raises(
        co.OverrideError,
        match=r"-d tiny: its interactions .*data/tiny/tiny.inter do not exist"
        r".*data/README.md.*make-data synthetic_baby",
    ):
        co.check_interactions("tiny", SRC_CONFIG, src)
    (src / "configs" / "dataset" / "tiny.yaml").write_text("# Synthetic data set written by ...\n")
    with pytest.raises(
        co.OverrideError, match=r"synthetic data set with `mde-mmrec make-data tiny --mmrec .* --force`"
    ):
        co.check_interactions("tiny", SRC_CONFIG, src)


def test_main_py_run_outside_src_is_told_where_to_run(tmp_path):
    with pytest.raises(co.OverrideError, match=r"has no configs/overall.yaml: run main.py from MMRec's src"):
        co.check_model_and_dataset("MDE", "tiny", tmp_path)


def test_parse_overrides_checks_model_dataset_and_an_overridden_data_path(tmp_path):
    src = fake_src(tmp_path)
    config = dict(FILE_CONFIG, **SRC_CONFIG)
    assert co.parse_overrides(["--epochs=2"], config, model="MDE", dataset="tiny", src=src) == {"epochs": 2}
    with pytest.raises(co.OverrideError, match=r"elsewhere/tiny/tiny.inter do not exist"):
        co.parse_overrides(["--data_path=../elsewhere/"], config, model="MDE", dataset="tiny", src=src)


def test_main_py_refuses_to_resume_from_points_made_with_other_settings(tmp_path):
    src = fake_src(tmp_path)
    config = dict(FILE_CONFIG, **SRC_CONFIG)
    results = tmp_path / "r.jsonl"
    argv = ["--epochs=3", f"--results_file={results}", "--resume=True"]
    merged = dict(
        config, **co.parse_overrides(argv, config, model="MDE", dataset="tiny", src=src), model="MDE", dataset="tiny"
    )
    rl = plugin_module("results_log")
    rl.append_record(
        results, {"model": "MDE", "dataset": "tiny", "params": {"seed": 999}, "settings": rl.point_settings(merged)}
    )
    co.parse_overrides(argv, config, model="MDE", dataset="tiny", src=src)  # same settings: fine
    with pytest.raises(co.OverrideError, match=r"made with other settings \(epochs: 3 -> 4\)"):
        co.parse_overrides(["--epochs=4"] + argv[1:], config, model="MDE", dataset="tiny", src=src)


def test_a_mistyped_model_is_named_before_its_keys_look_unknown(tmp_path):
    with pytest.raises(co.OverrideError, match=r"-m MDEE: no such model.*did you mean MDE"):
        co.parse_overrides(
            ["--cl_wieght=0.1"], dict(FILE_CONFIG, **SRC_CONFIG), model="MDEE", dataset="tiny", src=fake_src(tmp_path)
        )


@pytest.mark.parametrize("value, message", [("123", "must be a path"), ("FOLDER", "is a folder; give a file in it")])
def test_a_bad_results_file_with_resume_is_a_one_line_error(tmp_path, value, message):
    value = str(tmp_path) if value == "FOLDER" else value
    with pytest.raises(co.OverrideError, match=message):
        co.parse_overrides(
            [f"--results_file={value}", "--resume=True"],
            dict(FILE_CONFIG, **SRC_CONFIG),
            model="MDE",
            dataset="tiny",
            src=fake_src(tmp_path),
        )


def test_a_list_for_a_grid_key_after_hyper_parameters_is_a_grid_dimension():
    assert parse("--hyper_parameters=[seed]", "--reg_weight=[0.5,0.05]", "--dropout=0.8") == {
        "hyper_parameters": ["seed", "reg_weight"],
        "reg_weight": [0.5, 0.05],
        "dropout": 0.8,
        "aggr_mode": "add",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs=null"], r"epochs=None must be a whole number >= 1 \(for example --epochs=1000\)"),
        (["--learning_rate=null"], r"learning_rate=None must be a positive number"),
    ],
)
def test_null_for_a_training_key_is_an_error_not_a_traceback_later(argv, message):
    with pytest.raises(co.OverrideError, match=message):
        parse(*argv)


def test_an_int_is_a_number_for_a_float_key_and_a_value_may_be_negative():
    assert parse("--learning_rate=1") == {"learning_rate": 1}
    assert parse("--cl_weight", "-1") == {"cl_weight": -1}
