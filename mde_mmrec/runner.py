"""Running MMRec's ``main.py`` for the mde-mmrec commands, safely.

- ``run_main``: one ``main.py`` child that ends with its command however the command ends: Ctrl-C or SIGTERM
  stop it through Python's unwinding; a SIGKILL, the OOM killer or a scheduler's time limit, which leave
  mde-mmrec no chance to clean up, reach it through Linux's parent-death signal (``die_with_parent``).
- ``RunGuard``: kills a run that passes its memory or time limit (psutil).
- ``out_dir_lock``: one mde-mmrec run per results folder (filelock), refused too while a ``main.py`` of an
  earlier run still writes into the folder (``writers_of``), so a rerun never trains a point twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import MdeMmrecError

MEMORY_LIMIT_EXIT = 137  # run_main's exit code for a run killed by its memory limit (as SIGKILL's 128 + 9)
TIME_LIMIT_EXIT = 124  # ... and for a run stopped by its time limit (as timeout(1))
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@functools.cache
def _prctl():
    """libc's prctl (elsewhere than Linux: one that does nothing), loaded in the parent (loading a library between
    fork and exec is not safe)."""
    return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else lambda *args: 0


def die_with_parent(parent_pid: int) -> None:
    """Called in a child process: Linux sends it SIGKILL when its parent ends; if the parent has already ended
    (before this call), the child ends now. Elsewhere, only the latter."""
    _prctl()(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(128 + signal.SIGKILL)


class RunGuard:
    """Kill a process and its children once their resident memory passes ``max_rss_mb`` or the wall time passes
    ``max_seconds`` (each optional); ``reason``: the limit that stopped it ("memory" or "time"), else None."""

    def __init__(
        self, pid: int, max_rss_mb: float | None = None, max_seconds: float | None = None, interval: float = 0.5
    ):
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
        import psutil

        while not self._stop.wait(self.interval):
            try:
                process = psutil.Process(self.pid)
                tree = [process, *process.children(recursive=True)]
            except psutil.Error:  # it has ended
                return
            rss = 0
            for process in tree:
                with contextlib.suppress(psutil.Error):  # a child that has ended meanwhile, or a zombie
                    rss += process.memory_info().rss / 2**20
            self.peak_mb = max(self.peak_mb, rss)
            if self.max_rss_mb and rss > self.max_rss_mb:
                self.reason = "memory"
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.reason = "time"
            else:
                continue
            for process in reversed(tree):  # SIGKILL, children first
                with contextlib.suppress(psutil.Error):
                    process.kill()
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main_command(model: str, dataset: str, overrides: dict | None = None) -> list[str]:
    """The argv that runs one MMRec job with the current interpreter (cwd must be CHECKOUT/src)."""
    from .mmrec import override_args

    return [sys.executable, "main.py", "-m", model, "-d", dataset, *override_args(overrides or {})]


def events_file(log_path) -> Path:
    """Where a run logged to ``log_path`` writes its progress events (patch 0023): beside the log."""
    return Path(log_path).with_suffix(".events.jsonl")


def run_main(
    checkout,
    model: str,
    dataset: str,
    overrides: dict | None = None,
    log_path=None,
    on_line: Callable[[str], None] = lambda line: None,
    env: dict | None = None,
    max_rss_mb: float | None = None,
    max_seconds: float | None = None,
) -> int:
    """Run ``python main.py -m MODEL -d DATASET --k=v ...`` in CHECKOUT/src, each output line to ``on_line`` and
    ``log_path`` (progress events to ``events_file(log_path)``); returns main.py's exit code, or
    ``MEMORY_LIMIT_EXIT`` / ``TIME_LIMIT_EXIT``. A relative ``results_file`` is relative to the current folder.
    Call it from the main thread: Linux's parent-death signal follows the thread that started the child."""
    overrides = dict(overrides or {})
    if isinstance(overrides.get("results_file"), (str, Path)):
        overrides["results_file"] = str(Path(overrides["results_file"]).expanduser().resolve())
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if log_path:  # progress events (patch 0023; src/utils/results_log.py reads the variable)
        env["MDE_MMREC_EVENTS"] = str(events_file(log_path).resolve())
    _prctl()  # loaded here: the child calls it between fork and exec
    with (
        open(log_path or os.devnull, "a", encoding="utf-8") as log,
        subprocess.Popen(
            main_command(model, dataset, overrides),
            cwd=Path(checkout) / "src",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        ) as process,
    ):
        guard = RunGuard(process.pid, max_rss_mb, max_seconds) if max_rss_mb or max_seconds else None
        try:
            for line in process.stdout:
                log.write(line)
                log.flush()
                on_line(line.rstrip("\n"))
            code = process.wait()
        except BaseException:  # interrupted (Ctrl-C, or SIGTERM through the CLI): never leave main.py running
            stop_process(process)
            raise
        finally:
            if guard:
                guard.stop()
        if guard and guard.killed:
            message = (
                f"mde-mmrec: killed {model} at {guard.peak_mb:.0f} MB resident memory (limit {max_rss_mb:.0f} MB)"
                if guard.reason == "memory"
                else f"mde-mmrec: stopped {model} at its time limit of {max_seconds:.0f} s"
            )
            log.write(message + "\n")
            on_line(message)
            return MEMORY_LIMIT_EXIT if guard.reason == "memory" else TIME_LIMIT_EXIT
    return code


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate a child (SIGTERM; nothing if it has ended), then kill it if it has not ended after ``grace_s``
    seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def writers_of(out_dir) -> list[int]:
    """Pids of running processes (other than this one) whose command line names a results file inside
    ``out_dir`` (``--results_file=OUT/...``): a main.py that a killed mde-mmrec left behind where the system
    has no parent-death signal, or one started by hand."""
    import psutil

    prefix = f"--results_file={Path(out_dir).resolve()}{os.sep}"
    return [
        process.info["pid"]
        for process in psutil.process_iter(["pid", "cmdline"])
        if process.info["pid"] != os.getpid() and any(arg.startswith(prefix) for arg in process.info["cmdline"] or [])
    ]


LOCK_NAME, HOLDER_NAME = ".mde-mmrec.lock", ".mde-mmrec.holder"  # the lock, and who holds it


@contextlib.contextmanager
def out_dir_lock(out_dir):
    """Hold OUT/.mde-mmrec.lock for the duration (it ends with the process, however it ends): a second run into
    the folder is refused (both would train the missing points), and so is one while a main.py still writes
    there. A folder made here that holds nothing else at the end (the run was refused) is removed again."""
    import filelock

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MdeMmrecError(f"--out {out_dir} is a file, not a folder: choose a folder for the results")
    made_here = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock, holder = filelock.FileLock(out_dir / LOCK_NAME, timeout=0), out_dir / HOLDER_NAME
    try:
        lock.acquire()
    except filelock.Timeout:
        who = holder.read_text(encoding="utf-8").strip() if holder.is_file() else "another process"
        raise MdeMmrecError(
            f"{out_dir} is in use by another mde-mmrec run ({who}); wait for it to end, or choose another --out"
        ) from None
    try:
        holder.write_text(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}\n", encoding="utf-8")
        writers = writers_of(out_dir)
        if writers:
            pids = " ".join(map(str, writers))
            raise MdeMmrecError(
                f"{out_dir}: main.py of an earlier run still writes there (pid {pids}); wait "
                f"for it to end, or end it (kill {pids}), then run again"
            )
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()
        if made_here and not {p.name for p in out_dir.iterdir()} - {LOCK_NAME}:
            (out_dir / LOCK_NAME).unlink(missing_ok=True)
            out_dir.rmdir()
