"""Tier 1: docs/slurm-grid.sbatch, run as Slurm would run two of its array tasks (sbatch and mde-mmrec faked)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "slurm-grid.sbatch"


def _task(tmp_path: Path, task: int) -> list[str]:
    """Run the script as array task ``task`` of ``--array=2-4``; returns the faked commands' argument lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    for name in ("sbatch", "mde-mmrec"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        (bin_dir / name).chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        MMREC="/m",
        DATASET="baby",
        OUT="out",
        EXTRA="--seeds 2",
        SLURM_ARRAY_JOB_ID="77",
        SLURM_ARRAY_TASK_ID=str(task),
        SLURM_ARRAY_TASK_MIN="2",
        SLURM_ARRAY_TASK_MAX="4",
        SLURM_ARRAY_TASK_COUNT="3",
    )
    calls.unlink(missing_ok=True)
    subprocess.run(["bash", str(SCRIPT)], env=env, check=True, timeout=30, cwd=tmp_path)
    return calls.read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("seq") is None, reason="needs bash and seq")
def test_each_task_runs_its_shard_and_the_first_submits_the_merge(tmp_path):
    first = _task(tmp_path, 2)
    assert first[0] == (
        "sbatch --dependency=afterok:77 --kill-on-invalid-dep=yes --job-name=mde-grid-merge "
        "--time=00:30:00 --mem=4G --output=slurm-%x-%j.out "
        "--wrap=mde-mmrec grid-merge out/shard-2 out/shard-3 out/shard-4 --out out/merged"
    )
    assert first[1] == "mde-mmrec grid --mmrec /m -d baby -m MDE --out out/shard-2 --seeds 2"  # shard: from Slurm
    assert _task(tmp_path, 3) == ["mde-mmrec grid --mmrec /m -d baby -m MDE --out out/shard-3 --seeds 2"]
