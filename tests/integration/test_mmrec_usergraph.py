"""Tier 2: `mde-mmrec user-graph` writes the same user_graph_dict.npy as MMRec's own
preprocessing/dualgnn-gen-u-u-matrix.py, on a small generated data set."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mde_mmrec.usergraph import write_user_graph

pytestmark = pytest.mark.mmrec


def test_same_file_as_mmrec_script(patched_mmrec, tiny_data, tmp_path):
    # the script needs tqdm only for a progress bar: a stand-in keeps the test free of that dependency
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "tqdm.py").write_text(
        "class tqdm:\n    def __init__(self, total=None): pass\n"
        "    def update(self, n=1): pass\n    def close(self): pass\n"
    )
    data_dir = patched_mmrec / "data" / tiny_data
    target = data_dir / "user_graph_dict.npy"
    target.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(stub), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "dualgnn-gen-u-u-matrix.py", "-d", tiny_data],
        cwd=patched_mmrec / "preprocessing",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    original = np.load(target, allow_pickle=True).item()

    ours_file = write_user_graph(patched_mmrec, tiny_data, output=tmp_path / "ours.npy")
    ours = np.load(ours_file, allow_pickle=True).item()
    assert len(original) == len(ours) > 0
    assert ours == original  # same users, neighbours in the same order, same counts
    assert any(len(v[0]) > 0 for v in ours.values())
