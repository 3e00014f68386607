"""Tier 1: the guard that lets benchmarks run models which would exhaust the machine's memory or time budget,
and how a run stopped by it is reported."""

import contextlib
import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from checkout_support import standin_checkout

from mde_mmrec import core, runner

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
def test_memory_limit_kills_a_process_past_it():
    grow = "import time\nchunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))\n    time.sleep(0.05)\n"
    process = subprocess.Popen([sys.executable, "-c", grow])
    guard = runner.RunGuard(process.pid, max_rss_mb=300, interval=0.05)
    code = process.wait(timeout=60)
    guard.stop()
    assert guard.reason == "memory" and code == -9
    assert 300 < guard.peak_mb < 2000


@linux_only
def test_time_limit_kills_a_process_that_runs_longer():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    start = time.monotonic()
    guard = runner.RunGuard(process.pid, max_seconds=0.5, interval=0.05)
    code = process.wait(timeout=30)
    guard.stop()
    assert guard.reason == "time" and code == -9
    assert 0.5 <= time.monotonic() - start < 20


@linux_only
def test_guard_leaves_a_process_within_both_limits_alone():
    process = subprocess.Popen([sys.executable, "-c", "x = bytearray(10 * 2**20)"])
    guard = runner.RunGuard(process.pid, max_rss_mb=500, max_seconds=30, interval=0.05)
    code = process.wait(timeout=60)
    guard.stop()
    assert code == 0 and not guard.killed and guard.reason is None


@linux_only
def test_run_main_reports_the_time_limit(tmp_path):
    """run_main's exit code and log line for a run stopped by its time limit (main.py here only sleeps)."""
    checkout = tmp_path / "MMRec"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "main.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    lines = []
    code = runner.run_main(checkout, "MDE", "tiny", log_path=tmp_path / "run.log", on_line=lines.append, max_seconds=1)
    assert code == runner.TIME_LIMIT_EXIT
    assert lines == ["started", "mde-mmrec: stopped MDE at its time limit of 1 s"]
    assert (tmp_path / "run.log").read_text().endswith("time limit of 1 s\n")


T0 = 1_700_000_000.0
EVENTS = [  # what a patched MMRec run writes to $MDE_MMREC_EVENTS (patch 0023), one JSON line each
    {"event": "point", "time": T0, "index": 1, "of": 1, "params": {"seed": 999}},
    {"event": "constructed", "time": T0 + 35.25, "seconds": 35.25},
    {"event": "batches", "time": T0 + 95.3, "epoch": 0, "done": 300, "of": 830, "seconds": 60.1},
    {"event": "batches", "time": T0 + 155.6, "epoch": 0, "done": 600, "of": 830, "seconds": 120.4},
    {"event": "trained", "time": T0 + 202.0, "epoch": 0, "seconds": 166.7},
    {"event": "evaluated", "time": T0 + 207.1, "epoch": 0, "seconds": 5.1, "valid_score": 0.0254},
    {"event": "batches", "time": T0 + 267.1, "epoch": 1, "done": 200, "of": 830, "seconds": 60.0},
]


def _write_events(path, events) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in events)


def test_progress_says_how_far_a_run_got(tmp_path):
    out, events = [], tmp_path / "run.events.jsonl"
    _write_events(events, [{"event": "evaluated", "epoch": 5, "valid_score": 0.5}])  # an earlier run's
    p = core.Progress(n_configs=1, epochs=2, echo=out.append)
    p.begin(0, "DRAGON", 1, events)
    p("a line of the log")
    assert out == ["[1/1] DRAGON: 1 run(s) to go"]  # the earlier run's events are not shown
    assert p.where() == "while loading the data or constructing the model"
    _write_events(events, EVENTS[:2])
    p("a line of the log")
    assert out[-2:] == ["  DRAGON: run 1/1 seed=999", "  DRAGON: model constructed in 35.2s"]
    assert p.where() == "after model construction (35.2s) and 0 training epoch(s)"
    with open(events, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(EVENTS[2]) + "\n" + json.dumps(EVENTS[3])[:20])  # the last line half-written
    p.poll()
    assert out[-1].startswith("  DRAGON epoch 1/2: 300/830 batches in 0:01:00")
    with open(events, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(EVENTS[3])[20:] + "\n")
    _write_events(events, EVENTS[4:])
    p.poll()
    assert any(line.startswith("  DRAGON epoch 1/2: 600/830 batches in 0:02:00") for line in out)
    assert any(line.startswith("  DRAGON run 1/1 epoch 1/2 valid 0.0254 | elapsed") for line in out)
    assert p.where() == (
        "after model construction (35.2s) and 1 training epoch(s); epoch 2 had trained "
        "200/830 batches in 60s (at that rate about 249s per epoch)"
    )
    p.begin(0, "MDE", 1, tmp_path / "other.events.jsonl")  # the next configuration starts from nothing
    assert p.where() == "while loading the data or constructing the model"


def test_run_configs_reports_where_a_run_hit_its_time_limit(tmp_path):
    checkout = standin_checkout(tmp_path / "MMRec", "FREEDOM", "hyper_parameters: ['reg_weight']\nreg_weight: [0.0]\n")
    calls = []

    def stopped(checkout, model, dataset, overrides, log_path=None, on_line=None, **limits):
        calls.append(limits)
        _write_events(runner.events_file(log_path), EVENTS)
        on_line("mde-mmrec: stopped FREEDOM at its time limit of 240 s")
        return runner.TIME_LIMIT_EXIT

    echo = []
    records, status = core.run_configs(
        checkout,
        "tiny",
        [core.RunConfig("FREEDOM", "FREEDOM", {})],
        [999],
        tmp_path / "out",
        epochs=2,
        runner=stopped,
        echo=echo.append,
        max_seconds=240,
    )
    assert calls == [{"max_seconds": 240}] and records == []
    assert status["FREEDOM"].startswith(
        "stopped at the 240s time limit after model construction (35.2s) and 1 "
        "training epoch(s); epoch 2 had trained 200/830 batches"
    )


def test_an_interrupted_run_main_does_not_leave_main_py_running(tmp_path):
    """Ctrl-C or SIGTERM reaching only mde-mmrec (not its process group) must stop main.py as well: an orphan
    would keep appending results to the folder a rerun then resumes."""
    src = tmp_path / "MMRec" / "src"
    src.mkdir(parents=True)
    (src / "main.py").write_text("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n")
    pids = []

    def interrupt(line):
        pids.append(int(line))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run_main(tmp_path / "MMRec", "BPR", "tiny", on_line=interrupt)
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_sigterm_to_mde_mmrec_alone_stops_main_py_too(tmp_path):
    src = tmp_path / "MMRec" / "src"
    src.mkdir(parents=True)
    (src / "main.py").write_text("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n")
    tool = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "from mde_mmrec import cli, runner\n"
                "cli.exit_on_sigterm()\n"
                f"runner.run_main({str(tmp_path / 'MMRec')!r}, 'BPR', 'tiny', on_line=lambda l: print(l, flush=True))\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    with tool:  # closes its stdout pipe
        child = int(tool.stdout.readline())
        tool.terminate()  # SIGTERM to mde-mmrec only, not to its process group
        assert tool.wait(timeout=30) == 143
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def _survivors(pids, wait_s=10.0) -> list[int]:
    """Those of ``pids`` still running after up to ``wait_s`` seconds (a zombie has ended)."""
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(processes, timeout=wait_s)
    return [p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@linux_only
@pytest.mark.parametrize("how", ["run_main", "bench child"])
def test_a_sigkilled_command_leaves_no_child_running(tmp_path, how):
    """SIGKILL (the OOM killer, a scheduler's time limit) gives mde-mmrec no chance to stop its child: the child
    must end by itself, or it keeps appending results while a rerun trains the same points again."""
    src = tmp_path / "MMRec" / "src"
    src.mkdir(parents=True)
    (src / "main.py").write_text("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n")
    start = (
        f"runner.run_main({str(tmp_path / 'MMRec')!r}, 'BPR', 'tiny', on_line=lambda l: print(l, flush=True))"
        if how == "run_main"
        else "bench.in_child(time.sleep, 120)"
    )
    tool = subprocess.Popen(
        [sys.executable, "-c", f"import time\nfrom mde_mmrec import bench, runner\n{start}\n"],
        stdout=subprocess.PIPE,
        text=True,
    )
    with tool:
        if how == "run_main":
            children = [int(tool.stdout.readline())]
        else:
            deadline = time.monotonic() + 30
            while not psutil.Process(tool.pid).children() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)  # the spawned child is computing by now
            children = [p.pid for p in psutil.Process(tool.pid).children(recursive=True)]
        assert children
        tool.kill()
        tool.wait()
    assert _survivors(children) == []
