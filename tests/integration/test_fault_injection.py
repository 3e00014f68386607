"""Tier 2: `mde-mmrec grid` and `compare` SIGKILLed at several moments (as the OOM killer or a scheduler's time
limit would), then rerun: no process of a killed run survives it, every point is trained and stored exactly
once, and the summaries count each point once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.mmrec

REPO = Path(__file__).resolve().parents[2]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mde_mmrec.cli", *args]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


def _kill_when(args: list[str], ready, timeout_s: float = 120) -> list[int]:
    """Start mde-mmrec, SIGKILL it (it alone, not its process group) once ``ready()`` holds; returns the pids
    of its child processes at that moment."""
    tool = subprocess.Popen(_command(*args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, children = time.monotonic() + timeout_s, []
    try:
        while time.monotonic() < deadline and tool.poll() is None:
            children = [p.pid for p in psutil.Process(tool.pid).children(recursive=True)]
            if ready():
                break
            time.sleep(0.02)
        assert tool.poll() is None, "the run ended before the moment of the kill"
        children = [p.pid for p in psutil.Process(tool.pid).children(recursive=True)] or children
        os.kill(tool.pid, signal.SIGKILL)
    finally:
        tool.kill()
        tool.wait()
    return children


def _survivors(pids: list[int], wait_s: float = 10) -> list[int]:
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=wait_s)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _lines(path: Path) -> list[str]:
    return [line for line in _text(path).splitlines() if line.strip()]


def test_grid_killed_at_three_moments_then_rerun_trains_each_point_once(patched_mmrec, tiny_data, tmp_path):
    out = tmp_path / "grid"
    args = [
        "grid",
        "--mmrec",
        str(patched_mmrec),
        "-d",
        tiny_data,
        "-m",
        "BPR",
        "--set",
        "reg_weight=[0.1,0.01,0.001]",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    log, results = out / "grid.log", out / "results.jsonl"
    for moment in ("construction", "mid-training", "between points"):
        start, before = len(_text(log)), len(_lines(results))
        new_log = lambda: _text(log)[start:]  # noqa: E731 (this run's part of the log)
        ready = {
            "construction": lambda: "Parameters:" in new_log(),  # the first point's model is being built
            "mid-training": lambda: "epoch 0 evaluating" in new_log(),
            "between points": lambda: len(_lines(results)) > before,
        }[moment]
        children = _kill_when(args, ready)
        assert children, f"{moment}: main.py had not started"
        assert _survivors(children) == [], f"{moment}: a process of the killed run survived it"
        print(
            f"killed at {moment}: {len(children)} child process(es), none left; results lines {before} -> "
            f"{len(_lines(results))}"
        )
    rerun = subprocess.run(_command(*args), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    lines = _lines(results)
    points = [json.dumps(json.loads(line)["params"], sort_keys=True) for line in lines]  # every line complete
    assert len(points) == 6 and len(set(points)) == 6  # each of the 6 points exactly once
    assert "6 finished run(s)" in _text(out / "summary.md")
    assert "repeat a grid point" not in rerun.stderr


def test_compare_killed_between_seeds_then_rerun_trains_each_seed_once(patched_mmrec, tiny_data, tmp_path):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--mmrec",
        str(patched_mmrec),
        "-d",
        tiny_data,
        "-m",
        "BPR",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    children = _kill_when(args, lambda: len(_lines(out / "runs" / "BPR.jsonl")) >= 1)
    assert children and _survivors(children) == []
    rerun = subprocess.run(_command(*args), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    seeds = [json.loads(line)["seed"] for line in _lines(out / "runs" / "BPR.jsonl")]
    assert sorted(seeds) == [999, 1000]  # each seed exactly once
    assert len(_lines(out / "results.jsonl")) == 2
    assert "| BPR | 2 |" in rerun.stdout
