"""Tier 1: the benchmark's pure parts (ratio line, Markdown table) and its child-process runner."""

import json

import pytest

from mde_mmrec import bench
from mde_mmrec.errors import MdeMmrecError


def test_ratio_line_divides_mde_by_the_baselines_measured_in_the_same_run():
    by_model = {
        "MDE": {"s_per_epoch": 5.0, "peak_rss_mb": 900.0},
        "FREEDOM": {"s_per_epoch": 10.0, "peak_rss_mb": 1200.0},
        "DRAGON": {"s_per_epoch": 40.0, "peak_rss_mb": 1500.0},
    }
    line = bench._ratio_line(by_model, {"build_s": 2.5})
    assert line == "RATIO mde/freedom_epoch=0.500 mde/dragon_epoch=0.125 mde_graph_build_s=2.50 mde/freedom_rss=0.750"


def test_ratio_line_says_nan_for_what_was_not_measured():
    line = bench._ratio_line({"MDE": {"s_per_epoch": 5.0}}, {"error": "killed"})
    assert line == "RATIO mde/freedom_epoch=nan mde/dragon_epoch=nan mde_graph_build_s=nan mde/freedom_rss=nan"


def test_markdown_report_holds_the_rows_and_the_ratio(tmp_path):
    rows = [["MDE", "1.00", "5.00", "1.50", "0.900", "900", "-", "0.1600", "ok"]]
    path = bench._write_markdown(tmp_path, "tiny", "synthetic_tiny", ["MDE"], 2, rows, "RATIO x=1")
    text = path.read_text()
    assert path.name.startswith("tiny-") and "| MDE | 1.00 | 5.00 |" in text and "`RATIO x=1`" in text


def test_a_second_run_on_the_same_day_gets_its_own_file(tmp_path):
    rows = [["MDE", "1.00", "5.00", "1.50", "0.900", "900", "-", "0.1600", "ok"]]
    first = bench._write_markdown(tmp_path, "tiny", "synthetic_tiny", ["MDE"], 2, rows, "RATIO x=1")
    second = bench._write_markdown(tmp_path, "tiny", "synthetic_tiny", ["MDE"], 2, rows, "RATIO x=2")
    third = bench._write_markdown(tmp_path, "tiny", "synthetic_tiny", ["MDE"], 2, rows, "RATIO x=3")
    assert second.name == first.name.replace(".md", "-2.md") and third.name == first.name.replace(".md", "-3.md")
    assert "`RATIO x=1`" in first.read_text() and "`RATIO x=2`" in second.read_text()


def _square(x):
    return x * x


def test_in_child_returns_the_result_and_the_child_peak_memory():
    result, error, peak = bench.in_child(_square, 7, max_rss_mb=4096)
    assert (result, error) == (49, None) and peak > 0


def test_children_get_the_environment_the_patched_main_py_sets():
    """bench times MMRec code in spawned children; they must run with main.py's allocator setting (patch
    0014), or the model's eval share would be measured under other conditions than the training runs."""
    import re

    from mde_mmrec.paths import patches_dir

    patch = next(patches_dir().glob("0014-*.patch")).read_text()
    set_by_main = dict(re.findall(r"^\+os\.environ\.setdefault\('(\w+)', '(\w+)'\)", patch, flags=re.M))
    assert set_by_main and set_by_main == bench.MAIN_PY_ENVIRONMENT


def _environment_value(key):
    import os

    return os.environ.get(key)


def test_main_py_environment_reaches_the_child_and_a_users_choice_wins(monkeypatch):
    key = next(iter(bench.MAIN_PY_ENVIRONMENT))
    monkeypatch.delenv(key, raising=False)
    assert bench.in_child(_environment_value, key)[0] == bench.MAIN_PY_ENVIRONMENT[key]
    import os

    assert key not in os.environ  # the parent's environment is left as it was
    monkeypatch.setenv(key, "0")
    assert bench.in_child(_environment_value, key)[0] == "0"


def test_markdown_report_names_the_limits_it_ran_under(tmp_path):
    rows = [["DRAGON", "-", "-", "-", "-", "-", "-", "-", "stopped at the 180s time limit ..."]]
    path = bench._write_markdown(
        tmp_path,
        "elec",
        "synthetic_elec",
        ["DRAGON"],
        1,
        rows,
        "RATIO x=1",
        "--max-rss-gb 20 --max-minutes 3 --no-eval-share",
    )
    assert (
        "`mde-mmrec bench --mmrec MMREC --preset elec --epochs 1 --models DRAGON --max-rss-gb 20 "
        "--max-minutes 3 --no-eval-share`"
    ) in path.read_text()


def test_bench_rejects_negative_limits_before_doing_anything(capsys):
    import pytest

    from mde_mmrec.cli import main

    for flag in ("--max-minutes", "--max-rss-gb"):
        with pytest.raises(SystemExit) as exit_info:
            main(["bench", "--mmrec", "/nonexistent", flag, "-1"])
        assert exit_info.value.code == 2
        assert f"{flag}: must be 0 (no limit) or a positive number, got -1" in capsys.readouterr().err


def fake_checkout(tmp_path, models: dict):
    """An MMRec folder with, per model, its config and its model file (source given)."""
    checkout = tmp_path / "MMRec"
    for model, source in models.items():
        (checkout / "src" / "configs" / "model").mkdir(parents=True, exist_ok=True)
        (checkout / "src" / "models").mkdir(parents=True, exist_ok=True)
        (checkout / "src" / "configs" / "model" / f"{model}.yaml").write_text("{}\n")
        (checkout / "src" / "models" / f"{model.lower()}.py").write_text(source)
    return checkout


def test_bench_reports_validation_recall_and_builds_mde_graphs_from_nothing(tmp_path, monkeypatch):
    checkout = fake_checkout(tmp_path, {"MDE": "import torch\n"})
    cache = checkout / "data" / "synthetic_tiny" / "mde_graphs"
    cache.mkdir(parents=True)
    (cache / "old.npz").write_bytes(b"graphs of an earlier run")
    monkeypatch.setattr(bench.synthetic, "make_dataset", lambda *args, **kwargs: None)
    children = []

    def fake_child(fn, *args, max_rss_mb=None):
        children.append((fn.__name__, args))
        if fn is bench.mde_graph_seconds:
            return {"build_s": 1.0, "parts": {"user_cooc": 1.0}, "load_s": 0.01, "cached_files": 1}, None, 50.0
        return 0.5, None, 50.0

    caches_at_run = []

    def fake_run_configs(checkout_, dataset, configs, seeds, out_dir, **kwargs):
        caches_at_run.append(sorted(p.name for p in cache.glob("*.npz")))
        metrics = lambda v: {"recall@20": v}
        records = [
            {
                "label": c.label,
                "model": c.model,
                "model_init_s": 1.0,
                "s_per_epoch": 2.0,
                "eval_s": 1.0,
                "peak_rss_mb": 10.0,
                "best_valid": metrics(0.1234),
                "test": metrics(0.9876),
            }
            for c in configs
        ]
        return records, {c.label: "ok" for c in configs}

    monkeypatch.setattr(bench, "in_child", fake_child)
    monkeypatch.setattr(bench.core, "run_configs", fake_run_configs)
    md, _ = bench.run_bench(checkout, "tiny", ["MDE"], 1, 999, tmp_path / "out", echo=lambda line: None)
    assert caches_at_run == [[]]  # the MMRec run built MDE's graphs from nothing
    row = next(line for line in md.read_text().splitlines() if line.startswith("| MDE |"))
    assert "0.1234" in row and "0.9876" not in row  # the column says valid Recall@20
    evals = [args for name, args in children if name == "model_eval_seconds"]
    assert evals == [(checkout, "synthetic_tiny", "MDE", 5)]  # "best of 5" as the table says


def test_machine_line_names_the_gpu_where_the_runs_use_one(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "GPU" not in bench.machine_description()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    assert bench.machine_description().startswith("GPU NVIDIA H200 (the MMRec runs' device), ")


def test_a_model_that_cannot_run_here_gets_a_row_saying_why_and_the_others_run(tmp_path, monkeypatch):
    checkout = fake_checkout(tmp_path, {"MDE": "import torch\n", "DRAGON": "import zqx_geometric_missing\n"})
    monkeypatch.setattr(bench.synthetic, "make_dataset", lambda *args, **kwargs: None)
    graphs = {"build_s": 1.0, "parts": {"user_cooc": 1.0}, "load_s": 0.01, "cached_files": 1}
    monkeypatch.setattr(bench, "in_child", lambda fn, *a, max_rss_mb=None: (graphs, None, 50.0))
    ran = []

    def fake_run_configs(checkout_, dataset, configs, seeds, out_dir, **kwargs):
        ran.extend(c.model for c in configs)
        return [
            {"label": c.label, "model": c.model, "s_per_epoch": 2.0, "best_valid": {"recall@20": 0.1}} for c in configs
        ], {c.label: "ok" for c in configs}

    monkeypatch.setattr(bench.core, "run_configs", fake_run_configs)
    md, ratio = bench.run_bench(
        checkout, "tiny", ["MDE", "DRAGON"], 1, 999, tmp_path / "out", eval_share=False, echo=lambda line: None
    )
    assert ran == ["MDE"]
    alone, _ = bench.run_bench(
        checkout, "tiny", ["DRAGON"], 1, 999, tmp_path / "alone", eval_share=False, echo=lambda line: None
    )  # nothing runnable: the report still says why
    assert "| DRAGON | - | - | - | - | - | - | - | not run: MMRec's dragon.py imports" in alone.read_text()
    row = next(line for line in md.read_text().splitlines() if line.startswith("| DRAGON |"))
    assert "not run: MMRec's dragon.py imports zqx_geometric_missing, which is not installed" in row
    assert "mde/dragon_epoch=nan" in ratio
    with pytest.raises(MdeMmrecError, match="unknown model 'DRAGN'"):
        bench.run_bench(checkout, "tiny", ["MDE", "DRAGN"], 1, 999, tmp_path / "out", echo=lambda line: None)


def _event(name, parent=None, device=None, us=0.0, annotation=False):
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    return SimpleNamespace(
        name=name,
        cpu_parent=parent,
        device_type=device or DeviceType.CPU,
        time_range=SimpleNamespace(elapsed_us=lambda: us),
        is_user_annotation=annotation,
    )


def test_profile_counts_top_level_operators_and_device_activities_per_step():
    from torch.autograd import DeviceType

    mm = _event("aten::mm")
    engine = _event("autograd::engine::evaluate_function: MmBackward0")
    events = [
        mm,
        _event("aten::empty", parent=mm),
        _event("aten::mm", parent=engine),
        _event("aten::add_"),
        _event("cudaLaunchKernel", parent=mm),
        _event("[memory]"),
        _event("ampere_sgemm", device=DeviceType.CUDA, us=300.0),
        _event("Memcpy DtoH", device=DeviceType.CUDA, us=100.0),
        # a record_function range (Adam's step) on the GPU timeline: it spans kernels already counted
        _event("Optimizer.step#Adam.step", device=DeviceType.CUDA, us=5000.0, annotation=True),
    ]
    # per step over 2 steps: aten::mm, the backward's aten::mm, aten::add_ (aten::empty runs inside aten::mm)
    assert bench.profile_counts(events, 2) == {"ops": 1.5, "device_activities": 1.0, "device_ms": 0.2}
    assert bench.profile_counts(events[:6], 1) == {"ops": 3, "device_activities": None, "device_ms": None}


def test_step_profile_table_rows_for_profiled_failed_and_unrun_models():
    result = {
        "step_ms": 12.345,
        "loader_ms": 3.21,
        "ops": 573.0,
        "device_activities": 812.0,
        "device_ms": 4.5,
        "cuda": True,
    }
    no_events = dict(result, step_ms=5.0, loader_ms=3.0, ops=100.0, device_activities=None, device_ms=None)
    profiles = {
        "MDE": (result, None),
        "DRAGON": (None, "killed at 20.0 GB resident memory"),
        "LightGCN": (no_events, None),
    }  # LightGCN: CUDA, but the profiler recorded no device events
    section = bench._step_section(
        ["MDE", "FREEDOM", "DRAGON", "LightGCN"],
        {"MDE": {}, "DRAGON": {}, "LightGCN": {}},
        {"FREEDOM": "stopped at the 240s time limit"},
        profiles,
        20,
        final=True,
    )
    lines = section.splitlines()
    assert "| MDE | 12.3 | 3.2 | 573 | 812 | 4.50 | ok |" in lines
    assert "| FREEDOM | - | - | - | - | - | not profiled: stopped at the 240s time limit |" in lines
    assert "| DRAGON | - | - | - | - | - | not profiled: killed at 20.0 GB resident memory |" in lines
    assert "| LightGCN | 5.0 | 3.0 | 100 | - | - | no CUDA events recorded (is CUPTI missing?) |" in lines
    assert "20 steps timed after 2 warm-up steps" in section
    partial = bench._step_section(["MDE", "FREEDOM"], {"MDE": {}}, {}, {}, 20, final=False).splitlines()
    assert "| MDE | - | - | - | - | - | pending |" in partial
    assert "| FREEDOM | - | - | - | - | - | pending: the bench has not got to it yet |" in partial


def test_the_report_is_written_after_each_measurement_and_marked_partial_until_the_end(tmp_path, monkeypatch):
    checkout = fake_checkout(tmp_path, {"MDE": "import torch\n", "FREEDOM": "import torch\n"})
    monkeypatch.setattr(bench.synthetic, "make_dataset", lambda *args, **kwargs: None)
    graphs = {"build_s": 1.0, "parts": {"user_cooc": 1.0}, "load_s": 0.01, "cached_files": 1}
    profile = {
        "step_ms": 10.0,
        "loader_ms": 2.0,
        "ops": 500.0,
        "device_activities": None,
        "device_ms": None,
        "cuda": False,
    }
    results = {"mde_graph_seconds": graphs, "model_eval_seconds": 0.5, "training_step_profile": profile}
    seen = []  # (what is about to run, the report as it stands)

    def report_now():
        [path] = list((tmp_path / "out").glob("*.md")) or [None]
        return path.read_text() if path else None

    def fake_child(fn, *args, max_rss_mb=None):
        seen.append((fn.__name__, report_now()))
        return results[fn.__name__], None, 50.0

    def fake_run_configs(checkout_, dataset, configs, seeds, out_dir, **kwargs):
        seen.append(("run " + configs[0].model, report_now()))
        return [
            {"label": c.label, "model": c.model, "s_per_epoch": 2.0, "best_valid": {"recall@20": 0.1}} for c in configs
        ], {c.label: "ok" for c in configs}

    monkeypatch.setattr(bench, "in_child", fake_child)
    monkeypatch.setattr(bench.core, "run_configs", fake_run_configs)
    md, ratio = bench.run_bench(
        checkout, "tiny", ["MDE", "FREEDOM"], 1, 999, tmp_path / "out", profile_steps=3, echo=lambda line: None
    )
    steps = [name for name, _ in seen]
    assert steps == [
        "mde_graph_seconds",
        "run MDE",
        "mde_graph_seconds",
        "run FREEDOM",
        "model_eval_seconds",
        "model_eval_seconds",
        "training_step_profile",
        "training_step_profile",
    ]
    reports = dict(
        zip(
            ["graphs", "run MDE", "load", "run FREEDOM", "eval MDE", "eval FREEDOM", "profile MDE", "profile FREEDOM"],
            [text for _, text in seen],
        )
    )
    assert reports["graphs"] is None
    assert "| MDE | - | - | - | - | - | - | - | pending: the bench has not got to it yet |" in reports["run MDE"]
    assert "| MDE | - | 2 | - | pending |" in reports["run FREEDOM"]
    assert (
        "| FREEDOM | - | - | - | - | - | - | - | pending: the bench has not got to it yet |" in reports["run FREEDOM"]
    )
    assert "| FREEDOM | - | 2 | - | pending |" in reports["eval FREEDOM"]  # written after MDE's timing
    assert "| MDE | - | 2 | - | 0.5 |" in reports["eval FREEDOM"]
    assert "| MDE | 10.0 | 2.0 | 500 |" in reports["profile FREEDOM"]  # written after MDE's profile
    assert "| FREEDOM | - | - | - | - | - | pending |" in reports["profile FREEDOM"]
    for text in list(reports.values())[1:]:
        assert "**Partial:**" in text and "RATIO" not in text.split("**Partial:**")[0]
    final = md.read_text()
    assert sorted((tmp_path / "out").glob("*.md")) == [md]  # one report, rewritten in place
    assert "**Partial:**" not in final and "pending" not in final and final.endswith(f"`{ratio}`\n")
    assert "| MDE | - | 2 | - | 0.5 |" in final and "| FREEDOM | 10.0 | 2.0 | 500 | - | - |" in final
    assert "--profile-steps 3`" in final  # the command line says how it ran
    results_lines = (next((tmp_path / "out" / "runs").iterdir()) / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["model"] for line in results_lines] == ["MDE", "FREEDOM"]  # every run, not the last


def test_bench_profile_steps_flag_reaches_the_run(tmp_path, monkeypatch):
    from mde_mmrec.cli import main

    seen = {}

    def fake_run_bench(checkout, preset, models, epochs, seed, out_dir, **kwargs):
        seen.update(kwargs)
        path = tmp_path / "r.md"
        path.write_text("table\n")
        return path, "RATIO x"

    monkeypatch.setattr(bench.mmrec, "find_checkout", lambda path: tmp_path)
    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert main(["bench", "--mmrec", str(tmp_path), "--profile-steps", "7"]) == 0
    assert seen["profile_steps"] == 7


def test_profile_counts_reads_real_profiler_events():
    import torch
    from torch.profiler import ProfilerActivity, profile

    a = torch.ones(4, 4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            a.mm(a).add(a)  # two top-level operators; what they allocate inside is not counted
    assert bench.profile_counts(prof.events(), 3) == {"ops": 2, "device_activities": None, "device_ms": None}
