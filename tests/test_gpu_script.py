"""Tier 1: bench/gpu.sh, the GPU measurements, keeps to its time limit and its record of finished steps (its
steps themselves need a CUDA machine; here every step is skipped or refused before it starts)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.sh"


def run_script(tmp_path, *steps, budget="0", allow_cpu="1"):
    mmrec, out = tmp_path / "MMRec", tmp_path / "out"
    mmrec.mkdir(exist_ok=True)
    env = dict(os.environ, GPU_BUDGET_S=budget, PYTHON=sys.executable, GPU_ALLOW_CPU=allow_cpu)
    done = subprocess.run(
        ["bash", str(SCRIPT), str(mmrec), str(out), *steps],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, mmrec, out


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_an_unknown_step_is_refused_before_anything_runs(tmp_path):
    done, _, out = run_script(tmp_path, "tests", "elec-fredom")
    assert done.returncode == 2 and "unknown step elec-fredom" in done.stdout and not out.exists()


def test_steps_past_the_budget_are_skipped_and_not_recorded_as_done(tmp_path):
    done, mmrec, out = run_script(tmp_path, "tests", "elec-freedom")
    assert done.returncode == 0
    log = (out / "gpu.log").read_text()
    assert "== tests: skipped, 0s of the budget left and it needs 40s: run again" in log
    assert "== elec-freedom: skipped" in log and not (mmrec / ".gpu-steps-done").exists()


def test_a_step_that_ended_in_an_earlier_run_is_skipped(tmp_path):
    (tmp_path / "MMRec").mkdir()
    (tmp_path / "MMRec" / ".gpu-steps-done").write_text("tests\n")
    done, _, out = run_script(tmp_path, "tests", "baby")
    log = (out / "gpu.log").read_text()
    assert "== tests: ended in an earlier run, skipped" in log and "== baby: skipped, " in log


def test_a_step_that_succeeds_is_recorded_and_one_that_fails_is_left_for_the_next_run(tmp_path):
    """tests (on this machine the CUDA tests skip) succeeds; elec-data fails at once: the folder is no MMRec."""
    done, mmrec, out = run_script(tmp_path, "tests", "elec-data", budget="400")
    log = (out / "gpu.log").read_text()
    assert "== tests: exit 0" in log and (out / "pytest-cuda.xml").is_file()
    assert "test_compiled_losses_equal_eager_over_20_steps[cuda-defaults]" in (out / "pytest-cuda.xml").read_text()
    assert "== elec-data: failed; a later run tries it again" in log
    assert (mmrec / ".gpu-steps-done").read_text() == "tests\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_before_any_step(tmp_path):
    done, mmrec, out = run_script(tmp_path, "tests", budget="400", allow_cpu="0")
    assert done.returncode == 3 and "PyTorch sees no CUDA device here; stopping" in done.stdout
    assert "== tests" not in (out / "gpu.log").read_text() and not (mmrec / ".gpu-steps-done").exists()


def test_after_a_step_the_runs_logs_are_archived_in_one_file(tmp_path):
    """A bench step's MMRec logs lie in OUT/STEP/runs/RUN/logs/, four folders deep: runs.tgz has them all."""
    log = tmp_path / "out" / "elec-mde" / "runs" / "elec-1" / "logs" / "MDE.log"
    log.parent.mkdir(parents=True)
    log.write_text("epoch 0 training: 26/632 batches\n")
    done, _, out = run_script(tmp_path, "tests", budget="400")
    assert "== tests: exit 0" in (out / "gpu.log").read_text()
    with tarfile.open(out / "runs.tgz") as archive:
        member = archive.extractfile("./elec-mde/runs/elec-1/logs/MDE.log")
        assert member.read() == b"epoch 0 training: 26/632 batches\n"
    assert not (out / "runs.tgz.part").exists()


def hunk_sides(patch: Path) -> tuple[str, str]:
    """The text of a patch's hunks before and after it applies (context and removed / context and added lines)."""
    before, after = [], []
    for line in patch.read_text().split("\n@@")[1:]:
        for row in line.split("\n")[1:]:
            if row[:1] in (" ", "-"):
                before.append(row[1:])
            if row[:1] in (" ", "+"):
                after.append(row[1:])
    return "\n".join(before) + "\n", "\n".join(after) + "\n"


def _stand_in_interpreter(tmp_path) -> tuple[Path, Path]:
    """A stand-in for the bench runs (they need CUDA and minutes): it records each mde-mmrec command and writes
    a report with a RATIO line that names the checkout; other Python runs as usual."""
    calls, stand_in = tmp_path / "calls.log", tmp_path / "python"
    stand_in.write_text(f"""#!/usr/bin/env bash
if [ "$1 $2" != "-m mde_mmrec.cli" ]; then exec {sys.executable} "$@"; fi
echo "${{*:3}}" >> {calls}
if [ "$3" = bench ]; then
    while [ $# -gt 0 ]; do case $1 in --out) out=$2 ;; --mmrec) checkout=$2 ;; esac; shift; done
    mkdir -p "$out" && echo "\\`RATIO mde/freedom_epoch=$(basename "$checkout")\\`" > "$out/baby-1.md"
fi
""")
    stand_in.chmod(0o755)
    return stand_in, calls


@pytest.mark.parametrize(
    "step, copies",
    [
        ("baby-ratio", {"baby-ratio": "", "baby-ratio-compiled": "-compiled"}),
        ("baby-loader", {"baby-loader": "-without-0024"}),
    ],
)
def test_baby_steps_bench_the_checkout_and_its_changed_copies(tmp_path, step, copies):
    """baby-ratio: as shipped and a copy with compile_losses: True; baby-loader: a copy with patch 0024 reversed.
    Each copy leaves the checkout as it was and has no data folder."""
    unpatched, patched = hunk_sides(ROOT / "patches" / "0024-dataloader-vectorised-negative-sampling.patch")
    yaml_text = (ROOT / "src" / "configs" / "model" / "MDE.yaml").read_text()
    mmrec = tmp_path / "MMRec"
    (mmrec / "src" / "utils").mkdir(parents=True)
    (mmrec / "src" / "configs" / "model").mkdir(parents=True)
    (mmrec / "src" / "utils" / "dataloader.py").write_text(patched)
    (mmrec / "src" / "configs" / "model" / "MDE.yaml").write_text(yaml_text)
    (mmrec / "data" / "synthetic_elec").mkdir(parents=True)
    stand_in, calls = _stand_in_interpreter(tmp_path)
    out = tmp_path / "out"
    env = dict(os.environ, GPU_BUDGET_S="400", PYTHON=str(stand_in), GPU_ALLOW_CPU="1")
    subprocess.run(
        ["bash", str(SCRIPT), str(mmrec), str(out), step],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (out / "gpu.log").read_text()
    assert f"== {step}: exit 0" in log and (mmrec / ".gpu-steps-done").read_text() == f"{step}\n"
    assert (mmrec / "src" / "utils" / "dataloader.py").read_text() == patched
    assert (mmrec / "src" / "configs" / "model" / "MDE.yaml").read_text() == yaml_text
    install, *benches = calls.read_text().splitlines()
    assert install == f"install {mmrec}" and len(benches) == len(copies)
    for bench, (folder, suffix) in zip(benches, copies.items()):
        checkout = Path(f"{mmrec}{suffix}")
        assert bench.startswith(f"bench --mmrec {checkout} --out {out / folder} --max-rss-gb 100 --preset baby ")
        assert "--models MDE FREEDOM" in bench and "--profile-steps 20" in bench
        assert f"`RATIO mde/freedom_epoch={checkout.name}`" in log
        if suffix:
            assert not (checkout / "data").exists()
            changed_yaml = (checkout / "src" / "configs" / "model" / "MDE.yaml").read_text()
            assert ("compile_losses: True" in changed_yaml) == (suffix == "-compiled")
            dataloader = (checkout / "src" / "utils" / "dataloader.py").read_text()
            assert dataloader == (unpatched if suffix == "-without-0024" else patched)
