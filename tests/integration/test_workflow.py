"""Tier 2: the workflow commands against a real, patched MMRec (MMREC_HOME), on the synthetic 'tiny' set."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mde_mmrec import compare, core, grid, mmrec, report, runner
from mde_mmrec.errors import MdeMmrecError

pytestmark = pytest.mark.mmrec


def test_compare_two_models_two_seeds(patched_mmrec, tiny_data, tmp_path):
    out = tmp_path / "cmp"
    lines = []
    configs = [core.RunConfig("BPR", "BPR"), core.RunConfig("LightGCN", "LightGCN")]
    records, status = core.run_configs(patched_mmrec, tiny_data, configs, [999, 1000], out, epochs=2, echo=lines.append)
    assert status == {"BPR": "ok", "LightGCN": "ok"}
    assert sorted((r["label"], r["seed"]) for r in records) == [
        ("BPR", 999),
        ("BPR", 1000),
        ("LightGCN", 999),
        ("LightGCN", 1000),
    ]
    assert all(r["epochs_run"] == 2 and "recall@20" in r["test"] for r in records)
    assert any("epoch 2/2" in l for l in lines)  # progress was shown
    assert any("pinned reg_weight" in l for l in lines)  # grid keys pinned, and said so
    md = compare.write_comparison(records, status, out, "tiny")
    table = md.read_text()
    assert "| BPR | 2 |" in table and "| LightGCN | 2 |" in table
    assert (out / "summary.csv").is_file()
    assert (out / "chart.png").is_file() == report.charts_available()  # the chart needs the plots extra
    # a second run finds every seed done and trains nothing
    lines.clear()
    again, _ = core.run_configs(patched_mmrec, tiny_data, configs, [999, 1000], out, epochs=2, echo=lines.append)
    assert len(again) == 4 and all("already in" in l for l in lines if l.startswith("["))


def test_bad_inputs_fail_before_training(patched_mmrec, tiny_data, tmp_path):
    with pytest.raises(MdeMmrecError, match="unknown model 'NoSuchModel'"):
        core.prepare(patched_mmrec, tiny_data, [core.RunConfig("x", "NoSuchModel")], [1], tmp_path)
    with pytest.raises(MdeMmrecError, match="unknown data set 'nodata'.*make-data"):
        core.prepare(patched_mmrec, "nodata", [core.RunConfig("BPR", "BPR")], [1], tmp_path)
    with pytest.raises(MdeMmrecError, match="unknown config key"):
        core.prepare(patched_mmrec, tiny_data, [core.RunConfig("BPR", "BPR", {"nope": 1})], [1], tmp_path)
    with pytest.raises(MdeMmrecError, match="not an MMRec checkout"):
        mmrec.find_checkout(tmp_path)
    from mde_mmrec.synthetic import make_dataset

    make_dataset(patched_mmrec, "nofeat", preset="tiny")
    (patched_mmrec / "data" / "nofeat" / "text_feat.npy").unlink()
    with pytest.raises(MdeMmrecError, match="feature file .*text_feat.npy is missing"):
        core.prepare(patched_mmrec, "nofeat", [core.RunConfig("FREEDOM", "FREEDOM")], [1], tmp_path)


def test_a_bad_value_in_the_last_configuration_fails_before_the_first_runs(patched_mmrec, tiny_data, tmp_path):
    """main.py's own checks (patch 0009, MDE's grid check included) run for every configuration up front."""
    configs = [core.RunConfig("BPR", "BPR"), core.RunConfig("MDE", "MDE", {"cl_temperature": 0.0})]
    with pytest.raises(
        MdeMmrecError,
        match=r"checked before any run.*configuration 'MDE': MDE: 'cl_temperature' "
        r"must be a finite number >= 0.001.*--cl_temperature=VALUE",
    ):
        core.run_configs(patched_mmrec, tiny_data, configs, [1], tmp_path / "cmp", epochs=1)
    assert not list((tmp_path / "cmp").glob("runs/*.jsonl"))  # nothing ran
    with pytest.raises(
        MdeMmrecError, match=r"checked before any run.*MDE grid: MDE: 'cl_weight' must be a finite number >= 0"
    ):
        keys, values, plain = grid.grid_spec(patched_mmrec, "MDE", tiny_data, {"cl_weight": [0.1, -1.0]}, [1])
        grid.run_grid(patched_mmrec, "MDE", tiny_data, keys, values, tmp_path / "grid", plain, epochs=1)
    assert not (tmp_path / "grid" / "results.jsonl").exists()


def test_grid_killed_half_way_resumes(patched_mmrec, tiny_data, tmp_path):
    """Start a 4-point grid, kill MMRec once the first point is stored, resume: every point exactly once."""
    out = tmp_path / "grid"
    out.mkdir()
    keys = ["seed", "reg_weight"]
    values = {"seed": [999, 1000], "reg_weight": [0.1, 0.01]}
    results = out / "results.jsonl"
    overrides = {
        "reg_weight": values["reg_weight"],
        "seed": values["seed"],
        "hyper_parameters": keys,
        "results_file": str(results),
        "resume": True,
        "epochs": 3,
    }
    process = subprocess.Popen(
        runner.main_command("BPR", tiny_data, overrides),
        cwd=patched_mmrec / "src",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not mmrec.read_results(results) and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = mmrec.read_results(results)
    assert 1 <= len(first) < 4, "the kill should land after the first point and before the last"

    lines = []
    code = grid.run_grid(patched_mmrec, "BPR", tiny_data, keys, values, out, epochs=3, echo=lines.append)
    assert code == 0
    # main.py wrote them, without mde-mmrec's settings sidecar: main.py's own per-line check reuses them
    assert "0 already done, 4 to run" in lines[0]
    assert any(f"{len(first)} finished run(s) in {results} without recorded settings" in line for line in lines)
    records = mmrec.read_results(results)
    params = [json.dumps(r["params"], sort_keys=True) for r in records]
    assert len(params) == 4 and len(set(params)) == 4  # no point twice, none missing
    log_text = (out / "grid.log").read_text()
    assert log_text.count("skipping grid point") == len(first)  # MMRec itself skipped them
    md = grid.summarize(records, keys, out, "BPR grid")
    assert "Best point by validation recall@20" in md.read_text()


def test_cli_compare_end_to_end(patched_mmrec, tiny_data, tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mde_mmrec.cli",
            "compare",
            "--mmrec",
            str(patched_mmrec),
            "-d",
            tiny_data,
            "-m",
            "BPR",
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| BPR | 1 |" in run.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mde_mmrec.cli",
            "grid",
            "--mmrec",
            str(patched_mmrec),
            "-d",
            tiny_data,
            "--set",
            "cl_wieght=[0.1,1.0]",
            "--out",
            str(tmp_path / "g"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "--set cl_wieght: unknown config key" in bad.stderr and "cl_weight" in bad.stderr


def test_demo_trains_mde_and_a_baseline_and_reruns_after_a_settings_change(patched_mmrec, tmp_path):
    """README's first command (`mde-mmrec demo`): MDE and LightGCN through MMRec; a second demo with the same
    settings reuses the runs; one with other settings (here the epochs) runs again rather than mixing."""
    from mde_mmrec import demo

    out, lines = tmp_path / "demo", []
    records = demo.run_demo(patched_mmrec, epochs=1, out=out, echo=lines.append)
    assert sorted(r["label"] for r in records) == ["LightGCN", "MDE"] and all(r["epochs_run"] == 1 for r in records)
    lines.clear()
    assert len(demo.run_demo(patched_mmrec, epochs=1, out=out, echo=lines.append)) == 2
    assert sum("already in" in line for line in lines) == 2
    lines.clear()
    records = demo.run_demo(patched_mmrec, epochs=2, out=out, echo=lines.append)
    assert any("made with other settings or record none; running again" in line for line in lines)
    assert len(records) == 2 and all(r["epochs_run"] == 2 for r in records)
    lines.clear()
    runs = out / "runs" / "MDE.jsonl"  # lines of an older mde-mmrec: no recorded settings
    runs.write_text(
        "".join(
            json.dumps({k: v for k, v in json.loads(line).items() if k != "settings"}) + "\n"
            for line in runs.read_text().splitlines()
        )
    )
    records = demo.run_demo(patched_mmrec, epochs=2, out=out, echo=lines.append)
    assert any("made with other settings or record none; running again" in line for line in lines)
    assert len(records) == 2 and all("settings" in r for r in records)


def test_reproduce_from_grid_runs_the_ablations_at_the_grids_best_point(patched_mmrec, tiny_data, tmp_path):
    """The paper's protocol: sigmas by grid search on validation, then Table II at that point."""
    import argparse

    from mde_mmrec import reproduce

    keys, values, plain = grid.grid_spec(
        patched_mmrec, "MDE", tiny_data, {"cl_weight": [0.001, 0.1], "diff_weight": 0.1, "reg_weight": 0.0001}, [1]
    )
    assert grid.run_grid(patched_mmrec, "MDE", tiny_data, keys, values, tmp_path / "g", plain, epochs=1) == 0
    best = reproduce.best_grid_point(tmp_path / "g", tiny_data)
    args = argparse.Namespace(
        mmrec=str(patched_mmrec),
        set=None,
        seeds=1,
        seed_values=None,
        out=str(tmp_path / "t2"),
        experiment="table2",
        dataset=[tiny_data],
        epochs=1,
        models=None,
        paper_dataset=None,
        from_grid=str(tmp_path / "g"),
        readings=None,
        diff_weights=None,
        cl_weights=None,
    )
    assert reproduce._cmd_reproduce(args) == 0
    text = (tmp_path / "t2" / "table2.md").read_text()
    assert f"- MDE: cl_weight={best['cl_weight']}, diff_weight=0.1, reg_weight=0.0001" in text
    records = mmrec.read_results(tmp_path / "t2" / "runs" / "MDE.jsonl")
    assert records[0]["settings"]["cl_weight"] == best["cl_weight"]


def test_main_py_and_the_commands_refuse_a_checkout_mid_install(patched_mmrec, tiny_data):
    """An install or uninstall killed while it switched the files leaves the installer's marker: the patched
    main.py (patch 0021) exits naming the fix instead of an ImportError traceback, and so do the commands."""
    from mde_mmrec.synthetic import make_dataset

    marker = patched_mmrec / mmrec.SWITCH_MARKER
    marker.write_text("{}")
    try:
        lines = []
        assert runner.run_main(patched_mmrec, "MDE", tiny_data, {"epochs": 1}, on_line=lines.append) == 1
        root = patched_mmrec.resolve()
        assert lines == [
            f"main.py: error: an mde-mmrec install or uninstall of this checkout was interrupted (its "
            f"files are a mix of two versions); run `mde-mmrec install {root}` to complete it, or "
            f"`mde-mmrec uninstall {root}`"
        ]
        for command in (lambda: make_dataset(patched_mmrec, "other"), lambda: mmrec.find_checkout(patched_mmrec)):
            with pytest.raises(MdeMmrecError, match=r"was interrupted.*run `mde-mmrec install"):
                command()
    finally:
        marker.unlink()
    assert mmrec.find_checkout(patched_mmrec) == patched_mmrec.resolve()
