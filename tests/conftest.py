"""Shared fixtures.

Tier 1 needs nothing but this repository. Tier 2 (``@pytest.mark.mmrec``) needs an MMRec checkout of
enoche/MMRec at e775373 in the environment variable MMREC_HOME; it is never modified: the tests work in a
temporary copy with the plugin installed (``patched_mmrec``). MMREC_HOME may be a checkout that
``mde-mmrec install`` (or ``demo``) has already patched: its copy is uninstalled first, back to MMRec's files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_REASON = "set MMREC_HOME to an MMRec checkout (enoche/MMRec e775373) to run tier-2 tests"


def pytest_configure(config):
    config.addinivalue_line("markers", "mmrec: tier-2 integration test, needs MMREC_HOME pointing at an MMRec checkout")


def _copy_ignore(folder, names):
    """Leave out data, caches, logs and saved models when copying a checkout."""
    skip = {"__pycache__", "log", "saved", "recommend_topk"}
    if Path(folder).name == "data":
        return [n for n in names if n != "README.md"]
    return [n for n in names if n in skip or n.endswith((".pt", ".npy", ".pth"))]


def copy_checkout(source: Path, target: Path) -> Path:
    """A working copy of an MMRec checkout (git metadata kept, so the commit check works)."""
    shutil.copytree(source, target, ignore=_copy_ignore, symlinks=True)
    return target


@pytest.fixture(scope="session")
def copy_mmrec():
    """``copy_mmrec(source, target)``: a working copy of a checkout, without data and caches."""
    return copy_checkout


def pristine_copy(source: Path, target: Path) -> Path:
    """A copy of the checkout with MMRec's own files: if mde-mmrec is installed there, uninstalled in the copy
    (forced: the copy is ours, and edits made after installing are not MMRec's files either)."""
    from mde_mmrec import installer, mmrec

    copy_checkout(source, target)
    if (target / mmrec.PLUGIN_INFO).is_file() or (target / mmrec.SWITCH_MARKER).exists():
        installer.uninstall(target, force=True)
    return target


@pytest.fixture(scope="session")
def pristine_mmrec(mmrec_home, tmp_path_factory) -> Path:
    """An untouched copy of MMREC_HOME (running its code in place would write caches into it)."""
    return pristine_copy(mmrec_home, tmp_path_factory.mktemp("pristine") / "MMRec")


@pytest.fixture(scope="session")
def mmrec_home() -> Path:
    """The pristine MMRec checkout named by MMREC_HOME (skips the test without one)."""
    value = os.environ.get("MMREC_HOME")
    if not value:
        pytest.skip(SKIP_REASON)
    home = Path(value).expanduser().resolve()
    if not (home / "src" / "main.py").is_file():
        pytest.fail(f"MMREC_HOME={value} is not an MMRec checkout (no src/main.py)")
    return home


@pytest.fixture(scope="session")
def patched_mmrec(mmrec_home, tmp_path_factory) -> Path:
    """A temporary copy of MMREC_HOME with the plugin installed (shared by the tier-2 tests)."""
    from mde_mmrec import installer

    root = pristine_copy(mmrec_home, tmp_path_factory.mktemp("mmrec") / "MMRec")
    installer.install(root)
    return root


@pytest.fixture(scope="session")
def tiny_data(patched_mmrec) -> str:
    """A small synthetic data set ("tiny") in the patched checkout; returns its name."""
    from mde_mmrec.synthetic import make_dataset

    make_dataset(patched_mmrec, "tiny", preset="tiny", seed=0)
    return "tiny"


@pytest.fixture(scope="session")
def without_optional_packages(tmp_path_factory) -> dict:
    """Environment for a subprocess in which `import torchvision` and `import matplotlib` fail, as on a
    machine without them."""
    blockers = tmp_path_factory.mktemp("blockers")
    for name in ("torchvision", "matplotlib"):
        (blockers / name).mkdir()
        (blockers / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked by the mde-mmrec tests (no {name} installed)')\n"
        )
    path = os.pathsep.join([str(blockers), str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
