"""Where the files this project installs into an MMRec checkout live (in this repository)."""

from pathlib import Path

from .errors import MdeMmrecError

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = REPO_ROOT / "src"          # mirrors MMRec's src/: files copied verbatim into a checkout
PATCHES_DIR = REPO_ROOT / "patches"     # numbered patches against enoche/MMRec e775373


def require_plugin_sources() -> Path:
    """Return the plugin source tree, or explain how to get one (a non-editable install lacks it)."""
    if not (PLUGIN_SRC / "models" / "mde.py").is_file() or not PATCHES_DIR.is_dir():
        raise MdeMmrecError(
            f"plugin files not found under {REPO_ROOT} (expected src/models/mde.py and patches/): "
            "install mde-mmrec from its repository with `pip install -e .`")
    return PLUGIN_SRC
