"""Tier 1: the memory guard that lets benchmarks run models which would exhaust the machine's memory."""

import subprocess
import sys

import pytest

from mde_mmrec import mmrec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_memory_guard_kills_a_process_past_its_limit():
    grow = "import time\nchunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))\n    time.sleep(0.05)\n"
    process = subprocess.Popen([sys.executable, "-c", grow])
    guard = mmrec.MemoryGuard(process.pid, max_rss_mb=300, interval=0.05)
    code = process.wait(timeout=60)
    guard.stop()
    assert guard.killed and code == -9
    assert 300 < guard.peak_mb < 2000


def test_memory_guard_leaves_a_small_process_alone():
    process = subprocess.Popen([sys.executable, "-c", "x = bytearray(10 * 2**20)"])
    guard = mmrec.MemoryGuard(process.pid, max_rss_mb=500, interval=0.05)
    code = process.wait(timeout=60)
    guard.stop()
    assert code == 0 and not guard.killed
