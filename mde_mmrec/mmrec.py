"""Working with a patched MMRec checkout: find it (every command reaches it through ``mmrec_root``, which
refuses one that an interrupted install or uninstall left half-switched), run its main.py, read its results file.

The plugin's own MMRec-side modules (repo ``src/utils/*.py``: overrides, results log, fast metrics) are
loaded from this package's copy (``paths.plugin_src()``) with ``plugin_module(name)``, so the tools and the
checkout share one copy of that code.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from .errors import MdeMmrecError
from .paths import fingerprint, patches_dir, plugin_files, plugin_src

# files that make a directory an MMRec checkout
MMREC_MARKERS = (
    "src/main.py",
    "src/utils/quick_start.py",
    "src/utils/configurator.py",
    "src/common/abstract_recommender.py",
    "src/common/trainer.py",
    "src/configs/overall.yaml",
)
INSTALL_BRANCH = "mde-mmrec"  # the git branch `mde-mmrec install` builds and checks out
PLUGIN_INFO = "src/utils/mde_plugin_info.json"  # on that branch only; read by src/utils/results_log.py
# In the checkout while install or uninstall switches its files (they are a mix of two versions until it is
# gone): every command refuses the checkout, and so does the patched main.py (patch 0021).
SWITCH_MARKER = ".mde-mmrec-switching"

_PLUGIN_PACKAGE = "mde_mmrec._plugin_utils"


def plugin_module(name: str):
    """Import repo ``src/utils/<name>.py`` (as ``mde_mmrec._plugin_utils.<name>``, so that it cannot clash
    with MMRec's own ``utils`` package)."""
    if _PLUGIN_PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(_PLUGIN_PACKAGE, None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(plugin_src() / "utils")]
        sys.modules[_PLUGIN_PACKAGE] = package
    return importlib.import_module(f"{_PLUGIN_PACKAGE}.{name}")


def load_yaml(path: Path) -> dict:
    """A config file read with MMRec's YAML loader (1e-3 is a float); {} when absent. The one YAML reader."""
    import yaml

    if not Path(path).is_file():
        return {}
    loader = plugin_module("cli_overrides").MMRecLoader
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader) or {}


def format_override(value) -> str:
    """A Python value as main.py reads it back (lists ``[0.1,0.01]``, ``True``, ``null``)."""
    overrides = plugin_module("cli_overrides")
    try:
        return overrides.format_value(value)
    except overrides.OverrideError as exc:
        raise MdeMmrecError(str(exc)) from None


def override_args(overrides: dict) -> list[str]:
    """``{"epochs": 5, "reg_weight": [0.1, 0.01]}`` -> ``["--epochs=5", "--reg_weight=[0.1,0.01]"]``."""
    return [f"--{key}={format_override(value)}" for key, value in overrides.items()]


def is_mmrec(path: Path) -> bool:
    return all((Path(path) / marker).is_file() for marker in MMREC_MARKERS)


def checkout_root(path) -> Path:
    """The root of an MMRec checkout (``path`` may also be its ``src/``); a clear error otherwise."""
    root = Path(path).expanduser().resolve()
    if root.name == "src" and is_mmrec(root.parent):
        root = root.parent
    if not root.is_dir():
        raise MdeMmrecError(
            f"{root}: no such directory; give the path of your MMRec clone (git clone https://github.com/enoche/MMRec)"
        )
    if not is_mmrec(root):
        missing = [m for m in MMREC_MARKERS if not (root / m).is_file()]
        raise MdeMmrecError(
            f"{root} is not an MMRec checkout: missing {', '.join(missing)} "
            "(give the folder that contains MMRec's src/ and data/)"
        )
    return root


def mmrec_root(path) -> Path:
    """``checkout_root``, refusing a checkout that an interrupted install or uninstall left between two versions:
    every command reaches the checkout through here."""
    root = checkout_root(path)
    if (root / SWITCH_MARKER).exists():
        raise MdeMmrecError(
            f"{root}: an mde-mmrec install or uninstall there was interrupted, its files are a mix "
            f"of two versions ({SWITCH_MARKER} is there); run `mde-mmrec install {root}` to "
            f"complete it (or `mde-mmrec uninstall {root}` to complete it and go back)"
        )
    return root


def find_checkout(path, up_to_date: bool = True) -> Path:
    """The root of an MMRec checkout with the plugin installed; a clear error otherwise. ``up_to_date``: the
    installed plugin and patches must be this mde-mmrec's (else MMRec would run other code than the user
    expects, and main.py's checks may not match the tools')."""
    root = mmrec_root(path)
    if not installed_info(root):
        raise MdeMmrecError(
            f"{root}: the mde-mmrec plugin is not installed there (no {PLUGIN_INFO}: git branch "
            f"{INSTALL_BRANCH} not checked out); run `mde-mmrec install {root}` first"
        )
    if up_to_date and not is_up_to_date(root):
        raise MdeMmrecError(
            f"{root}: the plugin installed there is another version than this mde-mmrec's "
            f"(its model, helpers or patches differ); run `mde-mmrec install {root}` to update it"
        )
    return root


def is_up_to_date(root) -> bool:
    """Whether the plugin installed in ``root`` is the one this mde-mmrec would install."""
    return installed_info(root).get("fingerprint") == fingerprint(patches_dir(), plugin_files(plugin_src()))


_CHECK_COMMANDS = """
import json, sys
from utils.configurator import Config
from utils.cli_overrides import parse_overrides
errors = []
for name, model, dataset, argv in json.load(sys.stdin):
    try:
        parse_overrides(argv, *Config.read_files(model, dataset), model=model, dataset=dataset)
    except ValueError as exc:
        errors.append([name, str(exc)])
print(json.dumps(errors))
"""


def check_commands(checkout, jobs: list[tuple[str, str, str, dict]]) -> None:
    """Check ``(name, model, dataset, overrides)`` jobs as main.py will check them when each one starts, all in
    one process before the first runs: a bad value in the last configuration fails now, not hours in.
    Raises MdeMmrecError naming each failing job and main.py's reason."""
    ours = ("results_file", "resume")  # written by mde-mmrec into folders it creates when the run starts
    payload = json.dumps(
        [
            [name, model, dataset, override_args({k: v for k, v in overrides.items() if k not in ours})]
            for name, model, dataset, overrides in jobs
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK_COMMANDS],
        cwd=Path(checkout) / "src",
        input=payload,
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0:  # else the script's last line is its JSON list
        detail = (proc.stderr.strip().splitlines() or lines or ["no output"])[-1]
        raise MdeMmrecError(
            f"could not check the runs with the code in {checkout}/src ({detail}); "
            f"is this mde-mmrec's plugin installed there? (`mde-mmrec install {checkout}`)"
        )
    errors = json.loads(lines[-1])
    if errors:
        raise MdeMmrecError(
            "checked before any run, as main.py will check it: "
            + "; ".join(f"{name}: {message}" for name, message in errors)
        )


def read_results(path) -> list[dict]:
    """The records of a results file (JSON lines); a line cut off by a killed run is skipped."""
    return plugin_module("results_log").read_results(path)


def installed_info(checkout) -> dict:
    """What install recorded in the checkout (``PLUGIN_INFO``: MMRec commit, plugin version, fingerprint, the
    branch it was installed from); {} if the plugin is not installed, a clear error if the file is damaged."""
    path = Path(checkout) / PLUGIN_INFO
    try:
        info, problem = json.loads(path.read_text(encoding="utf-8")), "not a JSON object"
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        info, problem = None, exc
    if not isinstance(info, dict):
        raise MdeMmrecError(
            f"{path} is damaged ({problem}): restore it with `git checkout -- {PLUGIN_INFO}` in "
            f"{checkout}, or run `mde-mmrec install {checkout}`"
        )
    return info
