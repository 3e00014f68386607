"""Tier 2: the patch series installs into the oldest MMRec it claims to fit (patches/manifest.json
``oldest_mmrec``; model files added to MMRec later are skipped), MDE trains there, and uninstall gives the
commit's files back; one commit older, install is refused with the fix and changes nothing.

Needs MMREC_HOME to be a git clone with history (a shallow clone, or a copy without .git, skips). The clone is
at the old commit detached, and uninstall goes back there."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from mde_mmrec import installer
from mde_mmrec.errors import MdeMmrecError
from mde_mmrec.mmrec import read_results
from mde_mmrec.paths import patches_dir
from mde_mmrec.runner import run_main
from mde_mmrec.synthetic import make_dataset

pytestmark = pytest.mark.mmrec


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def oldest(mmrec_home) -> str:
    """The oldest commit the series claims to fit; skips unless MMREC_HOME's history has it and its parent."""
    commit = installer.Series.load(patches_dir()).oldest.split()[0]
    probe = subprocess.run(
        ["git", "-C", str(mmrec_home), "rev-parse", "--verify", "--quiet", f"{commit}~1^{{commit}}"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"MMREC_HOME has no git history back to {commit}~1 (shallow clone, or no .git)")
    return commit


def _clone_at(mmrec_home: Path, commit: str, target: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(mmrec_home), str(target)], check=True)
    _git(target, "checkout", "--quiet", commit)
    return target


def _changed(root: Path) -> list:
    """``git status --porcelain`` lines: every changed or untracked path."""
    return _git(root, "status", "--porcelain", "--untracked-files=all").splitlines()


def test_the_oldest_mmrec_the_series_fits_installs_trains_mde_and_uninstalls(mmrec_home, oldest, tmp_path, caplog):
    root = _clone_at(mmrec_home, oldest, tmp_path / "MMRec")
    with caplog.at_level(logging.WARNING):
        assert installer.install(root) == "installed"
    assert "its patch sections are skipped" in caplog.text  # models MMRec added after this commit
    assert "Sections skipped (not in this MMRec): " in _git(root, "log", "--format=%B", f"{oldest}..mde-mmrec")
    make_dataset(root, "tiny", preset="tiny", seed=0)
    results, lines = tmp_path / "old.jsonl", []
    code = run_main(
        root,
        "MDE",
        "tiny",
        {
            "epochs": 1,
            "hyper_parameters": ["seed"],
            "cl_weight": 0.01,
            "diff_weight": 0.1,
            "reg_weight": 0.0001,
            "results_file": str(results),
        },
        on_line=lines.append,
    )
    assert code == 0, "\n".join(lines[-30:])
    [record] = read_results(results)
    assert record["failed"] is None and record["test"]["recall@20"] > 0
    assert record["mmrec_commit"].startswith(oldest)
    installer.uninstall(root)
    assert _git(root, "rev-parse", "HEAD").startswith(oldest) and not _git(root, "branch", "--list", "mde-mmrec")
    made_here = ("?? data/tiny/", "?? src/configs/dataset/tiny.yaml", "?? log/")  # the data set, MMRec's log
    assert [line for line in _changed(root) if not line.startswith(made_here)] == []


def test_one_commit_older_is_refused_with_the_fix_and_nothing_changes(mmrec_home, oldest, tmp_path):
    root = _clone_at(mmrec_home, f"{oldest}~1", tmp_path / "MMRec")
    with pytest.raises(
        MdeMmrecError,
        match=rf"does not apply to src/main.py.*an MMRec older than {oldest}.*"
        r"`git pull` in the checkout.*Nothing was changed",
    ):
        installer.install(root)
    assert _changed(root) == []
