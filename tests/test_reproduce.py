"""Tier 1: `mde-mmrec reproduce` tables and exit status, against a fake MMRec runner in a stand-in checkout
(tests/checkout_support.py) that carries the plugin's real MDE.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from checkout_support import standin_checkout

from mde_mmrec import core, mmrec, reproduce
from mde_mmrec.errors import MdeMmrecError

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
            results_log.append_record(
                overrides["results_file"],
                {
                    "model": model,
                    "dataset": dataset,
                    "params": {"seed": seed},
                    "seed": seed,
                    "best_epoch": 0,
                    "epochs_run": 1,
                    "best_valid": metrics,
                    "test": metrics,
                    "s_per_epoch": 0.1,
                },
            )
        return 0


def _checkout(tmp_path):
    return standin_checkout(tmp_path / "MMRec", "MDE", MDE_YAML.read_text())


def table2_args(checkout, tmp_path, **overrides) -> argparse.Namespace:
    """`reproduce table2 -d tiny --seeds 1 --epochs 1` as parsed, with ``overrides``."""
    values = dict(
        mmrec=str(checkout), set=None, seeds=1, seed_values=None, out=str(tmp_path), experiment="table2",
        dataset=["tiny"], epochs=1, models=None, paper_dataset=None, readings=None, diff_weights=None,
        cl_weights=None, from_grid=None,
    )  # fmt: skip
    return argparse.Namespace(**{**values, **overrides})


def test_the_note_on_mdes_sigmas_says_where_they_came_from(tmp_path):
    checkout = _checkout(tmp_path)
    runner = PartialRunner({"no such key": 1})
    md, _ = reproduce.reproduce(
        "table2", checkout, "tiny", [1], tmp_path / "first", runner=runner, echo=lambda line: None
    )
    assert "are MDE.yaml's first grid values unless set" in md.read_text()
    md, _ = reproduce.reproduce(
        "table2",
        checkout,
        "tiny",
        [1],
        tmp_path / "grid",
        runner=runner,
        echo=lambda line: None,
        model_sets={"MDE": {"cl_weight": 0.01}},
        from_grid="G7",
    )
    text = md.read_text()
    assert "are the best point by validation Recall@20 of the grid in G7" in text and "first grid values" not in text


def test_table2_marks_a_configuration_that_finished_fewer_seeds_and_reports_the_failure(tmp_path):
    checkout = _checkout(tmp_path)
    md, failed = reproduce.reproduce(
        "table2",
        checkout,
        "tiny",
        [1, 2],
        tmp_path / "out",
        runner=PartialRunner({"use_mda": False}),
        echo=lambda line: None,
    )
    text = md.read_text()
    assert "| w/o MDA | 0.2000 (1 of 2 seeds) |" in text  # not a full mean ± std
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
    args = table2_args(checkout, tmp_path)
    assert reproduce._cmd_reproduce(args) == 0
    calls["failed"] = {"w/o MDA": "failed (exit 1; see log)"}
    assert reproduce._cmd_reproduce(args) == 1
    assert "FAILED w/o MDA: failed (exit 1; see log)" in capsys.readouterr().out


def _checkout_with_models(root: Path, models: dict[str, str]) -> Path:
    """A fake checkout: src/models/<name>.py with the given source, MMRec's own src/common and src/utils, and a
    package and a module of the checkout's own that no other path provides (so the test does not depend on
    whether src/ of this repository is on sys.path)."""
    for package in ("common", "utils", "zqx_checkout_package"):
        (root / "src" / package).mkdir(parents=True, exist_ok=True)
    (root / "src" / "zqx_checkout_module.py").write_text("", encoding="utf-8")
    (root / "src" / "models").mkdir(parents=True, exist_ok=True)
    for name, source in models.items():
        (root / "src" / "models" / f"{name}.py").write_text(source, encoding="utf-8")
    return root


def test_models_that_cannot_run_here_are_named_with_the_reason(tmp_path):
    checkout = _checkout_with_models(
        tmp_path,
        {
            "slmrec": "import torch\nfrom zqx_scatter_missing import scatter\nfrom sklearn_zq.cluster import KMeans\n"
            "from common.abstract_recommender import GeneralRecommender\nfrom utils import x\n",
            "dragon": "import os\nimport numpy as np\nfrom zqx_geometric_missing.nn.conv import MessagePassing\n"
            "import zqx_geometric_missing\n",
            "mde": "import torch\nfrom common.abstract_recommender import GeneralRecommender\n"
            "from zqx_checkout_package import graphs\nimport zqx_checkout_module\n"
            "def f():\n    import zqx_only_inside_a_function\n",
            "grcn": "import torch\n",
        },
    )
    assert core.missing_imports(checkout, "SLMRec") == ["zqx_scatter_missing", "sklearn_zq"]
    assert core.missing_imports(checkout, "DRAGON") == ["zqx_geometric_missing"]  # named once
    assert core.missing_imports(checkout, "MDE") == []  # MMRec's own packages; imports inside functions
    (checkout / "src" / "models" / "broken.py").write_text("import zqx_missing\ndef f(:\n")
    assert core.missing_imports(checkout, "BROKEN") == []  # main.py reports the syntax error itself
    assert core.why_not_runnable("DRAGON", cuda=True, checkout=checkout) == (
        "MMRec's dragon.py imports zqx_geometric_missing, which is not installed (pip install zqx_geometric_missing)"
    )
    assert "imports zqx_scatter_missing, sklearn_zq, which are not installed" in core.why_not_runnable(
        "SLMRec", cuda=True, checkout=checkout
    )
    assert "calls .cuda() unconditionally" in core.why_not_runnable("GRCN", cuda=False, checkout=checkout)
    assert core.why_not_runnable("GRCN", cuda=True, checkout=checkout) is None
    assert core.why_not_runnable("MDE", cuda=False, checkout=checkout) is None
    configs = [core.RunConfig(m, m) for m in ("GRCN", "SLMRec", "DRAGON", "MDE")]
    keep, skipped = core.runnable(configs, cuda=False, checkout=checkout)
    assert [c.label for c in keep] == ["MDE"] and set(skipped) == {"GRCN", "SLMRec", "DRAGON"}
    assert all(reason.startswith("not run: MMRec's") for reason in skipped.values())
    (checkout / "src" / "configs" / "model").mkdir(parents=True)
    (checkout / "src" / "configs" / "model" / "DRAGON.yaml").write_text("{}\n")
    with pytest.raises(MdeMmrecError, match=r"model 'DRAGON' cannot run here: .*pip install zqx_geometric_missing"):
        core.check_model(checkout, "DRAGON")  # compare, grid and bench check before any training


def test_pip_names_differ_from_import_names_where_known(tmp_path, monkeypatch):
    checkout = _checkout_with_models(tmp_path, {"slmrec": "from sklearn.cluster import KMeans\n"})
    monkeypatch.setattr(core.importlib.util, "find_spec", lambda name: None)
    assert core.why_not_runnable("SLMRec", cuda=True, checkout=checkout).endswith("(pip install scikit-learn)")


def test_models_option_is_refused_outside_table1(tmp_path):
    import pytest

    from mde_mmrec.errors import MdeMmrecError

    parser = argparse.ArgumentParser()
    reproduce.register(parser.add_subparsers())
    args = parser.parse_args(["reproduce", "table2", "--mmrec", str(tmp_path), "-d", "tiny", "--models", "VBPR"])
    with pytest.raises(MdeMmrecError, match="--models chooses table1's models; table2 runs MDE variants only"):
        args.func(args)


GRID_ROWS = (
    (0.01, 1.0, 1, 0.40),
    (0.01, 1.0, 2, 0.44),
    (0.1, 0.1, 1, 0.45),
    (0.1, 0.1, 2, 0.37),
)  # (cl, diff, seed, valid)


def _grid_results(folder: Path, dataset: str = "tiny", rows=GRID_ROWS, failed=()):
    """An MDE grid's results.jsonl; the rows whose index is in ``failed`` are NaN-loss failures (all zeros)."""
    folder.mkdir()
    metrics = lambda v: {f"{m}@{k}": v for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}
    for index, (cl, diff, seed, valid) in enumerate(rows):
        results_log.append_record(
            folder / "results.jsonl",
            {
                "model": "MDE",
                "dataset": dataset,
                "seed": seed,
                "best_epoch": 1,
                "test": metrics(0.1),
                "params": {"seed": seed, "cl_weight": cl, "diff_weight": diff},
                "best_valid": metrics(valid),
                "failed": results_log.NO_EPOCH_FINISHED if index in failed else None,
            },
        )


def test_from_grid_takes_the_best_mean_validation_point_of_an_mde_grid_on_the_same_data(tmp_path):
    import pytest

    from mde_mmrec.errors import MdeMmrecError

    _grid_results(tmp_path / "g")
    assert reproduce.best_grid_point(tmp_path / "g", "tiny") == {"cl_weight": 0.01, "diff_weight": 1.0}  # .42 > .41
    with pytest.raises(MdeMmrecError, match="its grid ran on tiny, not on baby"):
        reproduce.best_grid_point(tmp_path / "g", "baby")
    with pytest.raises(MdeMmrecError, match="no finished MDE grid points"):
        reproduce.best_grid_point(tmp_path, "tiny")


def test_from_grid_ignores_points_without_a_result(tmp_path):
    """A NaN-loss run (recorded as failed, all zeros) is not a 0.0 in its point's mean."""
    rows = ((0.01, 1.0, 1, 0.40), (0.01, 1.0, 2, 0.44), (0.1, 0.1, 1, 0.45), (0.1, 0.1, 2, 0.0))
    _grid_results(tmp_path / "g", rows=rows, failed={3})
    assert reproduce.best_grid_point(tmp_path / "g", "tiny") == {"cl_weight": 0.1, "diff_weight": 0.1}  # .45 > .42


def test_model_sets_reach_that_models_configurations_and_variants_keep_their_own_settings(tmp_path):
    checkout = _checkout(tmp_path)
    seen = []

    def runner(checkout, model, dataset, overrides, **kwargs):
        seen.append(dict(overrides))
        return PartialRunner({"never": True})(checkout, model, dataset, overrides, **kwargs)

    md, failed = reproduce.reproduce(
        "table2",
        checkout,
        "tiny",
        [1],
        tmp_path / "out",
        runner=runner,
        echo=lambda line: None,
        model_sets={"MDE": {"cl_weight": 0.1, "use_mda": True}},
    )
    assert not failed and len(seen) == 4 and all(o["cl_weight"] == 0.1 for o in seen)
    assert sorted(o["use_mda"] for o in seen) == [False, True, True, True]  # "w/o MDA" keeps use_mda=False
    assert "- MDE: cl_weight=0.1" in md.read_text()


def test_cli_from_grid_runs_mde_at_the_grids_best_point_and_refuses_a_clash(tmp_path, monkeypatch, capsys):
    import pytest

    from mde_mmrec.errors import MdeMmrecError

    checkout = _checkout(tmp_path)
    _grid_results(tmp_path / "g")
    monkeypatch.setattr(mmrec, "find_checkout", lambda path: checkout)
    got = {}

    def fake(experiment, *args, **kwargs):
        got.update(kwargs)
        return tmp_path / "t.md", {}

    (tmp_path / "t.md").write_text("table\n")
    monkeypatch.setattr(reproduce, "reproduce", fake)
    args = table2_args(checkout, tmp_path, set=["MDE:reg_weight=0.001"], from_grid=str(tmp_path / "g"))
    assert reproduce._cmd_reproduce(args) == 0
    assert got["model_sets"] == {"MDE": {"reg_weight": 0.001, "cl_weight": 0.01, "diff_weight": 1.0}}
    assert got["from_grid"] == str(tmp_path / "g")
    assert "MDE at the best point of" in capsys.readouterr().out
    args.set = ["MDE:cl_weight=0.5"]
    with pytest.raises(MdeMmrecError, match="--from-grid sets cl_weight; do not also give them with --set"):
        reproduce._cmd_reproduce(args)
    args.set, args.from_grid = ["FREEDOM:reg_weight=0.1"], None
    with pytest.raises(MdeMmrecError, match="--set names model\\(s\\) FREEDOM that table2 does not run"):
        reproduce._cmd_reproduce(args)


def _sports(tmp_path):
    checkout = _checkout(tmp_path)
    (checkout / "src" / "configs" / "dataset" / "sports.yaml").write_text("inter_file_name: 'sports.inter'\n")
    (checkout / "data" / "sports").mkdir()
    (checkout / "data" / "sports" / "sports.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n")
    return checkout


def test_table1_on_sports_sits_beside_the_papers_sports_numbers(tmp_path):
    md, failed = reproduce.reproduce(
        "table1",
        _sports(tmp_path),
        "sports",
        [1],
        tmp_path / "out",
        models=["MDE"],
        runner=PartialRunner({"never": True}),
        cuda=False,
        echo=lambda line: None,
    )
    paper = reproduce.paper_results()
    mde = paper[(paper["table"] == "table1") & (paper["dataset"] == "sports") & (paper["row"] == "MDE")]
    want = mde.set_index("metric")["value"]
    text = md.read_text()
    assert "(paper, sports)" in text and "(paper, baby)" not in text
    row = next(line for line in text.splitlines() if line.startswith("| MDE |"))
    assert row.endswith(" | ".join(f"{want[k]:.4f}" for k in reproduce.TABLE1_METRICS) + " |")


def test_a_model_that_cannot_run_here_is_listed_but_is_not_a_failure(tmp_path):
    md, failed = reproduce.reproduce(
        "table1",
        _checkout(tmp_path),
        "tiny",
        [1],
        tmp_path / "out",
        models=["GRCN", "MDE"],
        runner=PartialRunner({"never": True}),
        cuda=False,
        echo=lambda line: None,
    )
    assert failed == {}
    assert "| GRCN | not run: MMRec's grcn.py calls .cuda() unconditionally" in md.read_text()


def test_each_ablation_switches_off_exactly_its_component():
    configs = {c.label: (c.model, c.overrides) for c in reproduce.experiment_configs("table2")}
    assert configs == {
        "w/o MDA": ("MDE", {"use_mda": False}),
        "w/o MSA": ("MDE", {"use_msa": False}),
        "w/o NLT": ("MDE", {"use_nlt": False}),
        "MDE": ("MDE", {}),
    }


def test_an_unknown_model_name_gets_the_closest_names(tmp_path):
    checkout = _checkout_with_models(tmp_path, {})
    (checkout / "src" / "configs" / "model").mkdir(parents=True)
    for name in ("MDE", "DRAGON", "FREEDOM", "LightGCN"):
        (checkout / "src" / "configs" / "model" / f"{name}.yaml").write_text("{}\n")
    with pytest.raises(MdeMmrecError, match=r"unknown model 'MDEE': .*; did you mean MDE\?$"):
        core.check_model(checkout, "MDEE")
    with pytest.raises(MdeMmrecError, match=r"names are case-sensitive\); did you mean DRAGON\?$"):
        core.check_model(checkout, "dragon")
    with pytest.raises(MdeMmrecError, match=r"names are case-sensitive\)$"):
        core.check_model(checkout, "ZQXW")


@pytest.mark.parametrize("experiment", ["table1", "table2", "fig2"])
def test_every_experiment_runs_three_seeds_with_early_stopping_by_default(tmp_path, monkeypatch, experiment):
    checkout = _checkout(tmp_path)
    monkeypatch.setattr(mmrec, "find_checkout", lambda path: checkout)
    got = {}

    def fake(experiment, checkout, dataset, seeds, out, epochs, *args, **kwargs):
        got.update(seeds=seeds, epochs=epochs)
        return tmp_path / "t.md", {}

    (tmp_path / "t.md").write_text("table\n")
    monkeypatch.setattr(reproduce, "reproduce", fake)
    parser = argparse.ArgumentParser()
    reproduce.register(parser.add_subparsers())
    args = parser.parse_args(["reproduce", experiment, "--mmrec", str(checkout), "-d", "tiny", "--out", str(tmp_path)])
    assert reproduce._cmd_reproduce(args) == 0
    assert got == {"seeds": [999, 1000, 1001], "epochs": None}  # epochs None: the config's, with early stopping
    args.seeds = 1
    reproduce._cmd_reproduce(args)
    assert got["seeds"] == [999]
