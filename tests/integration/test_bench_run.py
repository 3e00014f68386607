"""Tier 2: `mde-mmrec bench` end to end on the tiny preset: measured rows, the per-step table and the RATIO
line, and a model stopped by --max-minutes reported with how far it got."""

from __future__ import annotations

import re

import pytest
import torch

from mde_mmrec import bench, synthetic
from mde_mmrec.core import why_not_runnable
from mde_mmrec.usergraph import write_user_graph

pytestmark = pytest.mark.mmrec


def test_bench_measures_mde_and_freedom_side_by_side(patched_mmrec, tmp_path):
    md, ratio = bench.run_bench(
        patched_mmrec,
        "tiny",
        ["MDE", "FREEDOM"],
        epochs=1,
        seed=999,
        out_dir=tmp_path,
        max_rss_mb=8192,
        profile_steps=3,
        echo=lambda line: None,
    )
    text = md.read_text()
    main_table, steps_table = text.split("## Per training step")
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")
        for line in main_table.splitlines()
        if line.startswith("| MDE") or line.startswith("| FREEDOM")
    }
    assert set(rows) == {"MDE", "FREEDOM"}
    steps = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")
        for line in steps_table.splitlines()
        if line.startswith("| MDE") or line.startswith("| FREEDOM")
    }
    assert set(steps) == {"MDE", "FREEDOM"}
    for cells in steps.values():  # step ms, loader ms per batch, aten operators per step
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) >= 20
        assert (float(cells[4]) > 0) if torch.cuda.is_available() else cells[4] == "-"
    assert float(steps["MDE"][3]) != float(steps["FREEDOM"][3])  # counted per model, not one shared number
    for cells in rows.values():
        construction, epoch, eval_s, share, rss = map(float, cells[1:6])
        assert epoch > 0 and eval_s > 0 and share > 0 and rss > 100 and 0 <= float(cells[7]) <= 1
        assert float(cells[6]) > 0 if torch.cuda.is_available() else cells[6] == "-"  # peak GPU memory
    assert "graphs built in" in rows["MDE"][8]
    m = re.fullmatch(
        r"RATIO mde/freedom_epoch=([\d.]+) mde/dragon_epoch=nan mde_graph_build_s=([\d.]+) "
        r"mde/freedom_rss=([\d.]+)",
        ratio,
    )
    assert m, ratio
    mde, freedom = float(rows["MDE"][2]), float(rows["FREEDOM"][2])  # the table rounds to 0.01 s
    assert (mde - 0.005) / (freedom + 0.005) <= float(m.group(1)) <= (mde + 0.005) / (freedom - 0.005)
    assert f"`{ratio}`" in text


def test_bench_reports_a_model_stopped_at_its_time_limit(patched_mmrec, tmp_path):
    md, ratio = bench.run_bench(
        patched_mmrec,
        "tiny",
        ["FREEDOM"],
        epochs=1,
        seed=999,
        out_dir=tmp_path,
        eval_share=False,
        max_seconds=1,
        echo=lambda line: None,
    )
    text = md.read_text()
    assert "| FREEDOM | - | - | - | - | - | - | - | stopped at the 1s time limit while loading the data" in text
    assert "--max-minutes 0.0166667 --no-eval-share`" in text
    assert ratio.startswith("RATIO mde/freedom_epoch=nan")


def test_step_profile_reuses_batches_that_a_model_changes_in_place(patched_mmrec):
    # tiny has one training batch, so the 10 steps reuse it; DRAGON shifts a batch's item ids in place, so
    # without a copy per step its second step indexes past its embedding table
    reason = why_not_runnable("DRAGON", checkout=patched_mmrec)
    if reason:
        pytest.skip(reason)
    dataset = "synthetic_tiny"
    synthetic.make_dataset(patched_mmrec, dataset, preset="tiny", seed=0)
    write_user_graph(patched_mmrec, dataset)
    result, error, _ = bench.in_child(bench.training_step_profile, patched_mmrec, dataset, "DRAGON", 3)
    assert error is None
    assert result["step_ms"] > 0 and result["loader_ms"] > 0 and result["ops"] >= 20
