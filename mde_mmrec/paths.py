"""Where the files this project installs into an MMRec checkout live, and what they are.

In a source checkout of mde-mmrec (``pip install -e .``, or PYTHONPATH) they are the repository's top-level
``src/`` (the plugin: a mirror of MMRec's src/ whose files are added to a checkout) and ``patches/``. A wheel
(``pip install .``) ships the same two trees as package data in ``mde_mmrec/_data/`` (setup.cfg maps them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import __version__
from .errors import MdeMmrecError

_PACKAGE = Path(__file__).resolve().parent
_LAYOUTS = (_PACKAGE.parent, _PACKAGE / "_data")  # the repository's top level; the wheel's package data
_SKIP_NAMES = {"__pycache__", ".DS_Store", "mde_plugin_info.json"}  # caches; the file install writes itself


def _data_root() -> Path:
    for root in _LAYOUTS:
        if (root / "src" / "models" / "mde.py").is_file() and (root / "patches" / "manifest.json").is_file():
            return root
    raise MdeMmrecError(
        f"the plugin files are missing: neither {_LAYOUTS[0]} nor {_LAYOUTS[1]} holds "
        "src/models/mde.py and patches/manifest.json; reinstall mde-mmrec (`pip install .` or "
        "`pip install -e .` in its repository)"
    )


def plugin_src() -> Path:
    """The plugin tree (mirrors MMRec's src/: every file is added to a checkout as is)."""
    return _data_root() / "src"


def patches_dir() -> Path:
    """The numbered patches against enoche/MMRec and their manifest.json."""
    return _data_root() / "patches"


def plugin_files(src: Path) -> dict[str, bytes]:
    """Checkout path ('src/...') -> content of every file of the plugin tree ``src`` (caches left out)."""
    return {
        (Path("src") / path.relative_to(src)).as_posix(): path.read_bytes()
        for path in sorted(Path(src).rglob("*"))
        if path.is_file() and path.suffix != ".pyc" and not _SKIP_NAMES.intersection(path.relative_to(src).parts)
    }


def fingerprint(patches: Path, files: dict[str, bytes]) -> str:
    """Identifies one version of what install puts into a checkout: the version, the series, the plugin files."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted([*Path(patches).glob("*.patch"), Path(patches) / "manifest.json"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for rel, data in sorted(files.items()):
        digest.update(rel.encode() + b"\0" + data)
    return digest.hexdigest()
