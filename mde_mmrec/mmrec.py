"""Working with a patched MMRec checkout: find it (every command reaches it through ``mmrec_root``, which
refuses one that an interrupted install or uninstall left half-switched), run its main.py, read its results file.

The plugin's own MMRec-side modules (repo ``src/utils/*.py``: overrides, results log, fast metrics) are
loaded from this package's copy (``paths.plugin_src()``) with ``plugin_module(name)``, so the tools and the
checkout share one copy of that code.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from .errors import MdeMmrecError
from .paths import current_fingerprint, plugin_src

# files that make a directory an MMRec checkout
MMREC_MARKERS = ("src/main.py", "src/utils/quick_start.py", "src/utils/configurator.py",
                 "src/common/abstract_recommender.py", "src/common/trainer.py", "src/configs/overall.yaml")
INSTALL_BRANCH = "mde-mmrec"                   # the git branch `mde-mmrec install` builds and checks out
PLUGIN_INFO = "src/utils/mde_plugin_info.json"   # on that branch only; read by src/utils/results_log.py
# In the checkout while install or uninstall switches its files (they are a mix of two versions until it is
# gone): every command refuses the checkout, and so does the patched main.py (patch 0021).
SWITCH_MARKER = ".mde-mmrec-switching"

_PLUGIN_PACKAGE = "mde_mmrec._plugin_utils"
MEMORY_LIMIT_EXIT = 137  # run_main's exit code for a run killed by its memory limit (as SIGKILL's 128 + 9)
TIME_LIMIT_EXIT = 124    # ... and for a run stopped by its time limit (as timeout(1))


def plugin_module(name: str):
    """Import repo ``src/utils/<name>.py`` (as ``mde_mmrec._plugin_utils.<name>``, so that it cannot clash
    with MMRec's own ``utils`` package)."""
    if _PLUGIN_PACKAGE not in sys.modules:
        spec = importlib.machinery.ModuleSpec(_PLUGIN_PACKAGE, None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(plugin_src() / "utils")]
        sys.modules[_PLUGIN_PACKAGE] = package
    return importlib.import_module(f"{_PLUGIN_PACKAGE}.{name}")


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
        raise MdeMmrecError(f"{root}: no such directory; give the path of your MMRec clone "
                            "(git clone https://github.com/enoche/MMRec)")
    if not is_mmrec(root):
        missing = [m for m in MMREC_MARKERS if not (root / m).is_file()]
        raise MdeMmrecError(f"{root} is not an MMRec checkout: missing {', '.join(missing)} "
                            "(give the folder that contains MMRec's src/ and data/)")
    return root


def mmrec_root(path) -> Path:
    """``checkout_root``, refusing a checkout that an interrupted install or uninstall left between two versions:
    every command reaches the checkout through here."""
    root = checkout_root(path)
    if (root / SWITCH_MARKER).exists():
        raise MdeMmrecError(f"{root}: an mde-mmrec install or uninstall there was interrupted, its files are a mix "
                            f"of two versions ({SWITCH_MARKER} is there); run `mde-mmrec install {root}` to "
                            f"complete it (or `mde-mmrec uninstall {root}` to complete it and go back)")
    return root


def find_checkout(path, up_to_date: bool = True) -> Path:
    """The root of an MMRec checkout with the plugin installed; a clear error otherwise. ``up_to_date``: the
    installed plugin and patches must be this mde-mmrec's (else MMRec would run other code than the user
    expects, and main.py's checks may not match the tools')."""
    root = mmrec_root(path)
    if not installed_info(root):
        raise MdeMmrecError(f"{root}: the mde-mmrec plugin is not installed there (no {PLUGIN_INFO}: git branch "
                            f"{INSTALL_BRANCH} not checked out); run `mde-mmrec install {root}` first")
    if up_to_date and not is_up_to_date(root):
        raise MdeMmrecError(f"{root}: the plugin installed there is another version than this mde-mmrec's "
                            f"(its model, helpers or patches differ); run `mde-mmrec install {root}` to update it")
    return root


def is_up_to_date(root) -> bool:
    """Whether the plugin installed in ``root`` is the one this mde-mmrec would install."""
    return installed_info(root).get("fingerprint") == current_fingerprint()


def main_command(model: str, dataset: str, overrides: dict | None = None) -> list[str]:
    """The argv that runs one MMRec job with the current interpreter (cwd must be CHECKOUT/src)."""
    return [sys.executable, "main.py", "-m", model, "-d", dataset, *override_args(overrides or {})]


# Runs in CHECKOUT/src with the checkout's own (patched) code: main.py's checks of -m, -d and the overrides
# (utils/cli_overrides.py, patch 0009), the model's grid check included, for several command lines at once.
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
    ours = ("results_file", "resume")   # written by mde-mmrec into folders it creates when the run starts
    payload = json.dumps([[name, model, dataset, override_args({k: v for k, v in overrides.items() if k not in ours})]
                          for name, model, dataset, overrides in jobs])
    proc = subprocess.run([sys.executable, "-c", _CHECK_COMMANDS], cwd=Path(checkout) / "src", input=payload,
                          capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = proc.stdout.strip().splitlines()
    try:
        errors = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except ValueError:
        errors = None
    if errors is None:
        detail = (proc.stderr.strip().splitlines() or lines or ["no output"])[-1]
        raise MdeMmrecError(f"could not check the runs with the code in {checkout}/src ({detail}); "
                            f"is this mde-mmrec's plugin installed there? (`mde-mmrec install {checkout}`)")
    if errors:
        raise MdeMmrecError("checked before any run, as main.py will check it: " + "; ".join(
            f"{name}: {message}" for name, message in errors))


class RunGuard:
    """Kill a process whose resident memory passes ``max_rss_mb`` or whose wall time passes ``max_seconds``
    (each optional; checked every ``interval`` seconds), so a model that builds a dense items x items matrix,
    or one that would train for hours, fails cleanly instead of taking the machine or the time budget.
    ``reason`` says which limit stopped it ("memory" or "time"); None while it runs within both."""

    def __init__(self, pid: int, max_rss_mb: float | None = None, max_seconds: float | None = None,
                 interval: float = 0.5):
        self.pid, self.max_rss_mb, self.max_seconds, self.interval = pid, max_rss_mb, max_seconds, interval
        self.deadline = time.monotonic() + max_seconds if max_seconds else None
        self.peak_mb, self.reason = 0.0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def killed(self) -> bool:
        return self.reason is not None

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            rss = rss_mb(self.pid)
            self.peak_mb = max(self.peak_mb, rss)
            if self.max_rss_mb and rss > self.max_rss_mb:
                self.reason = "memory"
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.reason = "time"
            else:
                continue
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB), from /proc; 0 where /proc is unavailable."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) / 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def run_main(checkout, model: str, dataset: str, overrides: dict | None = None, log_path=None,
             on_line: Callable[[str], None] | None = None, env: dict | None = None,
             max_rss_mb: float | None = None, max_seconds: float | None = None) -> int:
    """Run ``python main.py -m MODEL -d DATASET --k=v ...`` in CHECKOUT/src; each output line (stdout and
    stderr together) goes to ``on_line`` and, if given, to ``log_path``. Returns main.py's exit code, or
    ``MEMORY_LIMIT_EXIT`` / ``TIME_LIMIT_EXIT`` when the run was killed for passing ``max_rss_mb`` /
    ``max_seconds``. A relative ``results_file`` is taken relative to the current directory (main.py runs in
    CHECKOUT/src)."""
    src = Path(checkout) / "src"
    overrides = dict(overrides or {})
    if isinstance(overrides.get("results_file"), (str, Path)):
        overrides["results_file"] = str(Path(overrides["results_file"]).expanduser().resolve())
    command = main_command(model, dataset, overrides)
    run_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    guard = None
    try:
        with subprocess.Popen(command, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              encoding="utf-8", errors="replace", bufsize=1, env=run_env) as process:
            if max_rss_mb or max_seconds:
                guard = RunGuard(process.pid, max_rss_mb, max_seconds)
            try:
                for line in process.stdout:
                    if log:
                        log.write(line)
                        log.flush()
                    if on_line:
                        on_line(line.rstrip("\n"))
                code = process.wait()
            except BaseException:   # interrupted (Ctrl-C, or SIGTERM through the CLI): never leave main.py running
                stop_process(process)
                raise
        if guard and guard.killed:
            message = (f"mde-mmrec: killed {model} at {guard.peak_mb:.0f} MB resident memory "
                       f"(limit {max_rss_mb:.0f} MB)" if guard.reason == "memory" else
                       f"mde-mmrec: stopped {model} at its time limit of {max_seconds:.0f} s")
            for sink in (on_line, log.write if log else None):
                if sink:
                    sink(message + ("\n" if sink is not on_line else ""))
            return MEMORY_LIMIT_EXIT if guard.reason == "memory" else TIME_LIMIT_EXIT
        return code
    finally:
        if guard:
            guard.stop()
        if log:
            log.close()


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate a child (SIGTERM), then kill it if it has not ended after ``grace_s`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def out_dir_lock(out_dir):
    """Hold OUT/.mde-mmrec.lock for the duration: a second mde-mmrec run into the same folder is refused (two
    runs would both train the missing seeds and append them twice). The lock ends with the process, however
    it ends, so a killed run never leaves a stale lock. A folder made here that holds nothing else when the
    run ends (it was refused before writing anything) is removed again."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MdeMmrecError(f"--out {out_dir} is a file, not a folder: choose a folder for the results")
    made_here = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ".mde-mmrec.lock"
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise MdeMmrecError(f"{out_dir} is in use by another mde-mmrec run ({holder}); wait for it to end, "
                                "or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        handle.close()
        if made_here and [p.name for p in out_dir.iterdir()] == [path.name]:
            path.unlink()
            out_dir.rmdir()


def read_results(path) -> list[dict]:
    """The records of a results file (JSON lines); a line cut off by a killed run is skipped."""
    return plugin_module("results_log").read_results(path)


def installed_info(checkout) -> dict:
    """What install recorded in the checkout (``PLUGIN_INFO``: MMRec commit, plugin version, fingerprint, the
    branch it was installed from); {} if the plugin is not installed, a clear error if the file is damaged."""
    path = Path(checkout) / PLUGIN_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MdeMmrecError(f"{path} is damaged ({exc}): restore it with `git checkout -- {PLUGIN_INFO}` in "
                            f"{checkout}, or run `mde-mmrec install {checkout}`") from None
    if not isinstance(info, dict):
        raise MdeMmrecError(f"{path} is damaged (not a JSON object): restore it with `git checkout -- "
                            f"{PLUGIN_INFO}` in {checkout}, or run `mde-mmrec install {checkout}`")
    return info
