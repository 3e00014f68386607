"""Tier 2: `mde-mmrec reproduce readings` end to end against a real, patched MMRec (MMREC_HOME), on 'tiny':
two readings, one grid point, one seed, 2 epochs (about half a minute on 2 cores)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mde_mmrec import mmrec, reproduce

pytestmark = pytest.mark.mmrec


def _readings(checkout, dataset, out):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    command = [sys.executable, "-m", "mde_mmrec.cli", "reproduce", "readings", "--mmrec", str(checkout),
               "-d", dataset, "--readings", "diff_form", "align_users", "--diff-weights", "10", "--cl-weights", "0.1",
               "--seeds", "1", "--epochs", "2", "--out", str(out)]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


def test_readings_study_end_to_end_and_a_rerun_trains_nothing(patched_mmrec, tiny_data, tmp_path):
    out = tmp_path / "readings"
    _readings(patched_mmrec, tiny_data, out)
    with open(out / "readings.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["reading"], r["value"]) for r in rows] == [
        ("default", ""),
        ("diff_form", "literal"),
        ("align_users", "False"),
    ]
    runs = out / tiny_data / "runs"
    assert sorted(p.name for p in runs.glob("*.jsonl")) == [
        "align_users_False_diff_10_cl_0.1.jsonl",
        "default_diff_10_cl_0.1.jsonl",
        "diff_form_literal_diff_10_cl_0.1.jsonl",
    ]
    for row, name in zip(rows, ("default", "diff_form_literal", "align_users_False")):
        (record,) = mmrec.read_results(runs / f"{name}_diff_10_cl_0.1.jsonl")
        assert record["settings"]["diff_weight"] == 10.0 and record["settings"]["cl_weight"] == 0.1
        assert float(row["recall@20 mean"]) == pytest.approx(record["test"]["recall@20"])
        log = (out / tiny_data / "logs" / f"{name}_diff_10_cl_0.1.log").read_text()
        first = reproduce.w_diff_trajectories(log)[999][0]
        assert float(row["W_diff epoch 0"]) == pytest.approx(first) and 0 < first < 1  # read from MDE's own line
        assert row["W_diff epoch 5"] == ""  # 2 epochs only
        assert row["n_seeds"] == "1" and row["verdict"] in ("", "fewer than 2 seeds: no verdict")
    assert rows[1]["verdict"] == "fewer than 2 seeds: no verdict"
    assert (out / "readings.md").read_text().count("| diff_form=literal | 10 | 0.1 | 1 |") == 1
    before = (out / "readings.csv").read_text()
    again = _readings(patched_mmrec, tiny_data, out)
    assert again.count("already in") == 3 and "run 1/1" not in again
    assert (out / "readings.csv").read_text() == before
