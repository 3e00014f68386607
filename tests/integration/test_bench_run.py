"""Tier 2: `mde-mmrec bench` end to end on the tiny preset: measured rows and the RATIO line, and a model
stopped by --max-minutes reported with how far it got."""

from __future__ import annotations

import re

import pytest
import torch

from mde_mmrec import bench

pytestmark = pytest.mark.mmrec


def test_bench_measures_mde_and_freedom_side_by_side(patched_mmrec, tmp_path):
    md, ratio = bench.run_bench(patched_mmrec, "tiny", ["MDE", "FREEDOM"], epochs=1, seed=999,
                                out_dir=tmp_path, max_rss_mb=8192, echo=lambda line: None)
    text = md.read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines()
            if line.startswith("| MDE") or line.startswith("| FREEDOM")}
    assert set(rows) == {"MDE", "FREEDOM"}
    for cells in rows.values():
        construction, epoch, eval_s, share, rss = map(float, cells[1:6])
        assert epoch > 0 and eval_s > 0 and share > 0 and rss > 100 and 0 <= float(cells[7]) <= 1
        assert float(cells[6]) > 0 if torch.cuda.is_available() else cells[6] == "-"   # peak GPU memory
    assert "graphs built in" in rows["MDE"][8]
    m = re.fullmatch(r"RATIO mde/freedom_epoch=([\d.]+) mde/dragon_epoch=nan mde_graph_build_s=([\d.]+) "
                     r"mde/freedom_rss=([\d.]+)", ratio)
    assert m, ratio
    mde, freedom = float(rows["MDE"][2]), float(rows["FREEDOM"][2])     # the table rounds to 0.01 s
    assert (mde - 0.005) / (freedom + 0.005) <= float(m.group(1)) <= (mde + 0.005) / (freedom - 0.005)
    assert f"`{ratio}`" in text


def test_bench_reports_a_model_stopped_at_its_time_limit(patched_mmrec, tmp_path):
    md, ratio = bench.run_bench(patched_mmrec, "tiny", ["FREEDOM"], epochs=1, seed=999, out_dir=tmp_path,
                                eval_share=False, max_seconds=1, echo=lambda line: None)
    text = md.read_text()
    assert "| FREEDOM | - | - | - | - | - | - | - | stopped at the 1s time limit while loading the data" in text
    assert "--max-minutes 0.0166667 --no-eval-share`" in text
    assert ratio.startswith("RATIO mde/freedom_epoch=nan")
