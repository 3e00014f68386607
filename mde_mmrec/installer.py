"""`mde-mmrec install PATH` / `mde-mmrec uninstall PATH`: put the plugin into an MMRec checkout, and take it out.

What install does, in this order (nothing in the checkout changes before step 5):

1. checks that PATH is an MMRec checkout (src/main.py, src/utils/quick_start.py, ...) and writable;
2. compares it with the MMRec commit the patches are made for (patches/manifest.json): the git HEAD if PATH
   is a git clone, and the SHA-256 of every file the patches touch; differences are reported by name;
3. if the plugin is installed already: with the same plugin files and patches it says so and stops
   ("already installed", nothing changes); with other ones (a newer mde-mmrec) it updates: the original
   files (kept in the backup) are the base of the new installation;
4. applies the whole patch series to copies of the files it touches, in a scratch folder (GNU ``patch -p1``,
   or ``git apply`` where there is none, as on macOS); a patch that does not apply stops the install, naming
   the patch, the file and the tool's message;
5. saves every file it will change into PATH/.mde-mmrec-backup/ (with manifest.json), then writes the
   patched files, the plugin's own files (this repository's src/: the MDE model, its config, the helper
   modules in src/utils/) and src/utils/mde_plugin_info.json (MMRec commit and plugin version, for the
   results lines). If anything fails on the way, every file written so far is put back: the checkout is
   never left half-patched.

uninstall restores the saved originals byte for byte, deletes the added files and the backup folder. It
refuses when installed files were edited since (their edits would be lost), unless --force.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import MdeMmrecError
from .mmrec import INSTALL_MANIFEST, JOURNAL_DIR, mmrec_root
from .paths import PATCHES_DIR, require_plugin_sources

log = logging.getLogger(__name__)

BACKUP_DIR = Path(INSTALL_MANIFEST).parent           # .mde-mmrec-backup
PLUGIN_INFO = "src/utils/mde_plugin_info.json"      # read by src/utils/results_log.py
_SKIP_NAMES = {"__pycache__", ".DS_Store", Path(PLUGIN_INFO).name}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------- inputs
@dataclass
class Series:
    """The numbered patches and what they were made against (patches/manifest.json)."""
    directory: Path
    names: list
    mmrec_commit: str
    pristine: dict          # file (relative to the checkout) -> sha256 at mmrec_commit
    oldest: str | None = None   # the oldest MMRec the series applies to, "<commit> (<date>)"

    @classmethod
    def load(cls, directory: Path) -> "Series":
        manifest = Path(directory) / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            series = cls(Path(directory), list(data["patches"]), data["mmrec_commit"],
                         dict(data["pristine_sha256"]), data.get("oldest_mmrec"))
        except (OSError, ValueError, KeyError) as exc:
            raise MdeMmrecError(f"{manifest}: cannot read the patch series ({exc}); "
                                "reinstall mde-mmrec from its repository") from None
        for name in series.names:
            if not (series.directory / name).is_file():
                raise MdeMmrecError(f"{manifest} lists {name}, which is missing from {directory}")
        return series

    def patch_bytes(self, name: str) -> bytes:
        return (self.directory / name).read_bytes()


def plugin_files(plugin_src: Path) -> dict:
    """Checkout path ('src/...') -> content of every file the plugin adds (caches skipped)."""
    files = {}
    for path in sorted(Path(plugin_src).rglob("*")):
        rel = path.relative_to(plugin_src)
        if path.is_file() and not _SKIP_NAMES.intersection(rel.parts) and path.suffix != ".pyc":
            files[(Path("src") / rel).as_posix()] = path.read_bytes()
    return files


def fingerprint(series: Series, added: dict) -> str:
    """Identifies one version of what install writes: plugin version, patches, plugin files."""
    digest = hashlib.sha256(__version__.encode())
    for name in series.names:
        digest.update(name.encode() + b"\0" + series.patch_bytes(name))
    for rel, data in sorted(added.items()):
        digest.update(rel.encode() + b"\0" + data)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ the checkout
def _writable(path: Path) -> bool:
    """A file this user may overwrite, or a folder this user may create files in (tried, not guessed)."""
    if not os.access(path, os.W_OK):
        return False
    if path.is_file():
        return True
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".mde-mmrec-probe-"):
            return True
    except OSError:
        return False


def check_writable(root: Path, rels) -> None:
    """Every file to write, and the nearest existing folder of every new one, must be writable."""
    blocked = set()
    for rel in set(rels):
        target = root / rel
        if target.exists():
            if not _writable(target):
                blocked.add(rel)
            continue
        folder = target.parent
        while not folder.exists():
            folder = folder.parent
        if not _writable(folder):
            blocked.add(folder.relative_to(root).as_posix() + "/")
    if blocked:
        raise MdeMmrecError(f"{root} is read-only for this user: cannot write {', '.join(sorted(blocked))}; "
                            "make the checkout writable (or install into a copy of it)")


def git_head(root: Path):
    """The checkout's git HEAD commit, or None (not a git clone, or git missing)."""
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def compare_with_series(root: Path, series: Series, base: dict) -> list:
    """Messages for every way the checkout differs from the commit the patches are made for."""
    notes = []
    head = git_head(root)
    if head and head != series.mmrec_commit:
        notes.append(f"git HEAD is {head[:12]}, the patches are made for MMRec {series.mmrec_commit[:12]}")
    for rel, expected in sorted(series.pristine.items()):
        if base.get(rel) is None:
            notes.append(f"{rel} is missing" + (" (a model added to MMRec after this checkout: its patch "
                                                "sections are skipped)" if optional_file(rel) else ""))
        elif sha256(base[rel]) != expected:
            notes.append(f"{rel} differs from MMRec {series.mmrec_commit[:7]} (local edits or another version)")
    return notes


# ------------------------------------------------------------------------------------- patching
def _patch_tool():
    """GNU patch if there is one (its options are used below), else git apply (macOS ships a BSD patch)."""
    if _is_gnu_patch():
        return "patch"
    if shutil.which("git"):
        return "git"
    raise MdeMmrecError("neither GNU patch nor git is on PATH: install one of them (git, which clones MMRec; or "
                        "GNU patch: apt-get install patch, brew install gpatch)")


def _is_gnu_patch() -> bool:
    if not shutil.which("patch"):
        return False
    try:
        result = subprocess.run(["patch", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and "GNU patch" in result.stdout


def _apply_command(tool: str, patch_file: Path, dry_run: bool = False, reverse: bool = False) -> list:
    if tool == "patch":
        direction = ["--reverse"] if reverse else ["--forward"]
        return ["patch", "-p1", "--batch", *direction, "--fuzz=0", "--no-backup-if-mismatch",
                "--reject-file=-", *(["--dry-run"] if dry_run else []), "-i", str(patch_file)]
    return ["git", "apply", *(["--check"] if dry_run else []), *(["--reverse"] if reverse else []), str(patch_file)]


def patched_files(patch_text: str) -> list:
    """The files a patch changes ('+++ b/...' lines)."""
    return [line[6:].split("\t")[0].strip() for line in patch_text.splitlines() if line.startswith("+++ b/")]


def optional_file(rel: str) -> bool:
    """A file the series may find absent: one of MMRec's model files (an older MMRec has fewer models; a patch
    section for a model the checkout does not have is not needed). Everything else is MMRec's core."""
    return rel.startswith("src/models/")


def without_files(patch_text: str, skip: set) -> str:
    """The patch without its sections (``diff --git`` to the next one) that change a file in ``skip``."""
    header, *sections = re.split(r"(?m)^(?=diff --git )", patch_text)
    return header + "".join(s for s in sections if not set(patched_files(s)) & skip)


def patch_for_checkout(series: Series, name: str, base: dict, scratch: Path) -> Path:
    """The patch file to apply to ``base``: the series' own, or (written into ``scratch``) a copy without the
    sections for model files the checkout lacks. Raises MdeMmrecError if it lacks any other file."""
    patch_file = (series.directory / name).resolve()
    text = patch_file.read_text(encoding="utf-8")
    absent = {t for t in patched_files(text) if base.get(t) is None}
    core = sorted(t for t in absent if not optional_file(t))
    if core:
        raise MdeMmrecError(f"patch {name} changes {', '.join(core)}, which the checkout lacks: is it a complete "
                            f"MMRec checkout? Start from a clean clone of enoche/MMRec. Nothing was changed.")
    if not absent:
        return patch_file
    filtered = Path(scratch) / name
    filtered.write_text(without_files(text, absent), encoding="utf-8")
    return filtered


def _stage(base: dict, stage: Path) -> dict:
    """Write ``base`` (path -> bytes, None for absent files) into the scratch folder ``stage``; the
    environment the patch tools run in there."""
    stage.mkdir(parents=True, exist_ok=True)
    for rel, data in base.items():
        if data is not None:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / rel).write_bytes(data)
    return dict(os.environ, GIT_CEILING_DIRECTORIES=str(stage.parent), LC_ALL="C")


def _series_already_applied(series: Series, base: dict, tool: str) -> bool:
    """Whether ``base`` is MMRec with the whole series applied: it reverts, last patch first."""
    with tempfile.TemporaryDirectory(prefix="mde-mmrec-revert-") as scratch:
        stage = Path(scratch) / "stage"
        env = _stage(base, stage)
        return all(subprocess.run(_apply_command(tool, patch_for_checkout(series, name, base, Path(scratch)),
                                                 reverse=True),
                                  cwd=stage, env=env, capture_output=True).returncode == 0
                   for name in reversed(series.names))


def apply_series(series: Series, base: dict, tool: str | None = None) -> dict:
    """Apply the series to copies of ``base`` (path -> original bytes) in a scratch folder; return
    path -> patched bytes. Raises MdeMmrecError naming the patch and file that do not apply."""
    tool = tool or _patch_tool()
    with tempfile.TemporaryDirectory(prefix="mde-mmrec-stage-") as scratch:
        stage = Path(scratch) / "stage"
        env = _stage(base, stage)
        for name in series.names:
            patch_file = patch_for_checkout(series, name, base, Path(scratch))
            targets = [t for t in patched_files(patch_file.read_text(encoding="utf-8")) if base.get(t) is not None]
            result = subprocess.run(_apply_command(tool, patch_file), cwd=stage, env=env, capture_output=True,
                                    text=True)
            if result.returncode != 0:
                output = " ".join((result.stdout + " " + result.stderr).split())
                if _series_already_applied(series, base, tool):
                    raise MdeMmrecError(
                        f"the patches are already applied to the checkout's files, but it has no "
                        f"{BACKUP_DIR}/ with MMRec's original files (a copy of an installed checkout made "
                        "without it, or patches applied by hand): restore MMRec's files first (`git checkout "
                        "-- src` in a git clone, or start from a clean clone) and install again. Nothing was "
                        "changed.")
                older = (f"; or an MMRec older than {series.oldest}, the oldest these patches fit: update it "
                         "(`git pull` in the checkout)") if series.oldest else ""
                raise MdeMmrecError(
                    f"patch {name} does not apply to {', '.join(targets)} ({tool}: {output}); that file differs "
                    f"from MMRec {series.mmrec_commit[:7]} where the patch changes it: local edits (commit or "
                    f"stash them, or start from a clean clone){older}. Nothing was changed.")
        return {rel: (stage / rel).read_bytes() for rel in base if (stage / rel).is_file()}


# ------------------------------------------------------------------------------- all-or-nothing writes
def _write_bytes(path: Path, data: bytes) -> None:
    """Replace a file's content in place (its permissions stay)."""
    with open(path, "wb") as handle:
        handle.write(data)


class Transaction:
    """Writes and deletes files under ``root``, remembering what was there, so that ``rollback`` puts
    every touched path back exactly (content, or absence) and removes the folders it created.

    What it remembers is also journaled on disk (``JOURNAL_DIR``) before each path is touched, so that a run
    killed outright (SIGKILL, power loss), which cannot roll back itself, is rolled back by the next
    install or uninstall (``recover_interrupted``). ``finish`` removes the journal."""

    def __init__(self, root: Path):
        self.root = root
        self.saved = {}          # rel -> original bytes, or None if the file did not exist
        self.new_dirs = []
        self.journal = root / JOURNAL_DIR
        self.entries = []        # the journal's index: {"rel", "copy" (file name, or None if absent)} / {"dir"}

    def _journal(self, entry: dict, data: bytes | None = None) -> None:
        self.journal.mkdir(exist_ok=True)
        if data is not None:
            _write_bytes(self.journal / entry["copy"], data)
        self.entries.append(entry)
        tmp = self.journal / "index.json.tmp"
        tmp.write_text(json.dumps(self.entries), encoding="utf-8")
        os.replace(tmp, self.journal / "index.json")   # the index names only copies already complete

    def _remember(self, rel: str) -> Path:
        path = self.root / rel
        if path.exists() and not path.is_file():     # never replaced, never removed on rollback
            raise MdeMmrecError(f"{path} is not a regular file (a folder?); the plugin writes a file there: "
                                "move it away and run again")
        if rel not in self.saved:
            self.saved[rel] = path.read_bytes() if path.is_file() else None
            copy = None if self.saved[rel] is None else f"{len(self.entries)}.orig"
            self._journal({"rel": rel, "copy": copy}, self.saved[rel])
        return path

    def write(self, rel: str, data: bytes) -> None:
        path = self._remember(rel)
        missing = []
        folder = path.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            self._journal({"dir": folder.relative_to(self.root).as_posix()})
            folder.mkdir()
            self.new_dirs.append(folder)
        _write_bytes(path, data)

    def finish(self) -> None:
        shutil.rmtree(self.journal, ignore_errors=True)

    def delete(self, rel: str) -> None:
        path = self._remember(rel)
        if path.exists():
            path.unlink()

    def rollback(self) -> list:
        """Undo everything; returns the paths that could not be restored (normally none)."""
        failed = []
        for rel, data in reversed(list(self.saved.items())):
            path = self.root / rel
            try:
                if data is None:
                    if path.exists():
                        path.unlink()
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
            except OSError:
                failed.append(rel)
        for folder in reversed(self.new_dirs):
            _remove_empty_dir(folder)
        if not failed:
            self.finish()
        return failed


def recover_interrupted(root: Path) -> bool:
    """Roll back an install or uninstall that was killed before it could roll back itself (its journal is
    still there); True if there was one. Raises, keeping the journal, where a path cannot be restored."""
    journal = root / JOURNAL_DIR
    if not journal.is_dir():
        return False
    index = journal / "index.json"
    entries = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else []
    failed = []
    for entry in reversed(entries):
        if "dir" in entry:
            _remove_empty_dir(root / entry["dir"])
            continue
        path = root / entry["rel"]
        try:
            if entry["copy"] is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_bytes(path, (journal / entry["copy"]).read_bytes())
        except OSError:
            failed.append(entry["rel"])
    if failed:
        raise MdeMmrecError(f"an earlier install or uninstall in {root} was interrupted, and rolling it back "
                            f"failed for {', '.join(failed)}; their original contents are in {journal}")
    shutil.rmtree(journal)
    log.warning(f"an earlier install or uninstall in {root} was interrupted; its {len(entries)} change(s) were "
                "rolled back")
    return True


def _remove_empty_dir(folder: Path) -> None:
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _run(root: Path, action) -> None:
    """Run ``action(transaction)``; on any error roll back and re-raise with what happened."""
    transaction = Transaction(root)
    try:
        action(transaction)
        transaction.finish()
    except BaseException as exc:
        failed = transaction.rollback()
        what = f"{exc}" if isinstance(exc, MdeMmrecError) else f"{type(exc).__name__}: {exc}"
        if failed:
            raise MdeMmrecError(f"{what}; rolling back FAILED for {', '.join(failed)} (copies of the originals "
                                f"are in {root / BACKUP_DIR})") from exc
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise MdeMmrecError(f"{what}; every change was rolled back, {root} is as before") from exc


# -------------------------------------------------------------------------------------- install
@dataclass
class InstallState:
    """The manifest of an installed plugin (None fields when it is not installed)."""
    manifest: dict = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> "InstallState":
        path = root / INSTALL_MANIFEST
        if not path.is_file():
            return cls()
        fix = (f"restore it from a copy, or delete {root / BACKUP_DIR} and restore MMRec's files with `git "
               "checkout -- src` (or start from a clean clone)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise MdeMmrecError(f"{path} is damaged (not JSON): {fix}") from None
        if not isinstance(manifest, dict) or not all(isinstance(manifest.get(k), dict) for k in ("modified", "added")):
            raise MdeMmrecError(f"{path} is damaged (its 'modified' and 'added' file lists are missing): {fix}")
        return cls(manifest)

    @property
    def installed(self) -> bool:
        return bool(self.manifest)

    def original(self, root: Path, rel: str):
        """The file as it was before the install (from the backup), or None if it did not exist."""
        if rel in self.manifest.get("modified", {}):
            return (root / BACKUP_DIR / "files" / rel).read_bytes()
        if rel in self.manifest.get("added", {}):
            return None
        path = root / rel
        return path.read_bytes() if path.is_file() else None

    def damaged_backups(self, root: Path) -> list:
        """Saved originals that are missing or not the bytes the install saved (their recorded SHA-256)."""
        damaged = []
        for rel, info in self.manifest.get("modified", {}).items():
            path = root / BACKUP_DIR / "files" / rel
            if not path.is_file() or sha256(path.read_bytes()) != info.get("original_sha256"):
                damaged.append(rel)
        return sorted(damaged)

    def check_backups(self, root: Path) -> None:
        """Refuse to restore (or to patch anew from) saved originals that are damaged."""
        damaged = self.damaged_backups(root)
        if damaged:
            raise MdeMmrecError(
                f"the saved originals of {', '.join(damaged)} in {root / BACKUP_DIR}/files are missing or damaged "
                f"(not the bytes the install saved); restoring them would break MMRec. Restore MMRec's files with "
                f"`git checkout -- src` in a git clone (or start from a clean clone), then delete {root / BACKUP_DIR}"
                ". Nothing was changed.")

    def edited_since(self, root: Path) -> list:
        """Installed files whose content is not what install wrote."""
        edited = []
        for rel, info in {**self.manifest.get("modified", {}), **self.manifest.get("added", {})}.items():
            path = root / rel
            if not path.is_file() or sha256(path.read_bytes()) != info["installed_sha256"]:
                edited.append(rel)
        return sorted(edited)


def current_fingerprint() -> str:
    """The fingerprint an install from this mde-mmrec would record (to spot a checkout installed by another)."""
    return fingerprint(Series.load(PATCHES_DIR), plugin_files(require_plugin_sources()))


def install(path, plugin_src: Path | None = None, patches_dir: Path | None = None,
            tool: str | None = None) -> str:
    """Install (or update) the plugin; returns "installed", "updated" or "already installed"."""
    plugin_src = Path(plugin_src) if plugin_src else require_plugin_sources()
    series = Series.load(Path(patches_dir) if patches_dir else PATCHES_DIR)
    root = mmrec_root(path)
    recover_interrupted(root)
    state = InstallState.read(root)
    added = plugin_files(plugin_src)
    if not added:
        raise MdeMmrecError(f"{plugin_src} holds no plugin files")
    stamp = fingerprint(series, added)

    if state.installed:
        state.check_backups(root)
        edited = state.edited_since(root)
        if state.manifest.get("fingerprint") == stamp and not edited:
            log.info(f"mde-mmrec {state.manifest.get('plugin_version')} is already installed in {root}; "
                   "nothing changed")
            return "already installed"
        if edited:
            raise MdeMmrecError(
                f"installed files were edited since mde-mmrec was installed in {root}: {', '.join(edited)}; "
                f"keep a copy of your edits, then run `mde-mmrec uninstall --force {root}` and install again")

    # the files as they were before any installation: the base the patches apply to
    base = {rel: state.original(root, rel) for rel in series.pristine}
    differences = compare_with_series(root, series, base)
    for note in differences:
        log.warning("checkout differs: %s", note)
    patched = apply_series(series, base, tool)          # raises (nothing changed) if a patch does not apply
    changed = {rel: data for rel, data in patched.items() if data != base[rel]}

    head = git_head(root)
    info = {"mmrec_commit": head or (series.mmrec_commit if not differences else None),
            "plugin_version": __version__}
    to_write = dict(changed)
    to_write.update(added)
    to_write[PLUGIN_INFO] = (json.dumps(info, indent=2) + "\n").encode()
    old_added = set(state.manifest.get("added", {}))
    stale = sorted(old_added - set(to_write))              # files an older plugin version added
    restore = {rel: state.original(root, rel) for rel in state.manifest.get("modified", {}) if rel not in to_write}
    check_writable(root, list(to_write) + stale + list(restore) + [INSTALL_MANIFEST])

    originals = {rel: state.original(root, rel) for rel in to_write}
    manifest = {
        "plugin_version": __version__, "fingerprint": stamp, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime()),
        "mmrec_commit": head, "series_commit": series.mmrec_commit, "differences": differences,
        "patches": {name: sha256(series.patch_bytes(name)) for name in series.names},
        "modified": {rel: {"original_sha256": sha256(originals[rel]), "installed_sha256": sha256(data)}
                     for rel, data in to_write.items() if originals[rel] is not None},
        "added": {rel: {"installed_sha256": sha256(data)}
                  for rel, data in to_write.items() if originals[rel] is None},
    }

    def action(tx: Transaction) -> None:
        for rel, original in restore.items():             # an older version changed it, this one does not
            tx.write(rel, original)
        for rel in stale:
            tx.delete(rel)
        for rel in list(state.manifest.get("modified", {})):
            tx.delete((BACKUP_DIR / "files" / rel).as_posix())
        for rel, original in originals.items():           # 1. save the originals
            if original is not None:
                tx.write((BACKUP_DIR / "files" / rel).as_posix(), original)
        for rel, data in to_write.items():                # 2. the patched and the added files
            tx.write(rel, data)
        tx.write(INSTALL_MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())   # 3. last

    _run(root, action)
    verb = "updated" if state.installed else "installed"
    log.info(f"mde-mmrec {__version__} {verb} in {root}: {len(series.names)} patches applied to "
           f"{len(changed)} MMRec files, {len(manifest['added'])} plugin files added; originals saved in "
           f"{root / BACKUP_DIR}")
    return verb


def uninstall(path, force: bool = False) -> str:
    """Restore the original files; returns "uninstalled" or "not installed"."""
    root = mmrec_root(path)
    recover_interrupted(root)
    state = InstallState.read(root)
    if not state.installed:
        log.info(f"mde-mmrec is not installed in {root}; nothing changed")
        return "not installed"
    state.check_backups(root)
    edited = state.edited_since(root)
    if edited and not force:
        raise MdeMmrecError(f"these installed files were edited since the install: {', '.join(edited)}; "
                            f"uninstalling would discard those edits. Keep a copy, then run "
                            f"`mde-mmrec uninstall --force {root}`")
    modified, added = state.manifest.get("modified", {}), state.manifest.get("added", {})
    backup_files = [p.relative_to(root).as_posix() for p in (root / BACKUP_DIR).rglob("*") if p.is_file()]
    check_writable(root, list(modified) + list(added) + backup_files)

    def action(tx: Transaction) -> None:
        for rel in modified:
            tx.write(rel, state.original(root, rel))
        for rel in added:
            tx.delete(rel)
        for rel in backup_files:
            tx.delete(rel)

    _run(root, action)
    for rel in added:                                     # caches of the removed modules, emptied folders
        if rel.endswith(".py"):
            for cached in (root / rel).parent.glob(f"__pycache__/{Path(rel).stem}.*.pyc"):
                cached.unlink(missing_ok=True)
    for folder in sorted({(root / rel).parent for rel in added}, key=lambda p: len(p.parts), reverse=True):
        if folder != root and not any(p.name != "__pycache__" for p in folder.iterdir()):
            _remove_empty_dir(folder)
    shutil.rmtree(root / BACKUP_DIR, ignore_errors=True)
    log.info(f"mde-mmrec uninstalled from {root}: {len(modified)} files restored, {len(added)} removed")
    left = _data_left_behind(root)
    if left:
        log.info("left in place (your data; delete them by hand if you no longer need them): " + "; ".join(left))
    return "uninstalled"


def _data_left_behind(root: Path) -> list[str]:
    """What mde-mmrec's commands wrote beside MMRec's own files: synthetic data sets (make-data) and MDE's
    graph caches (data/*/mde_graphs)."""
    from .synthetic import YAML_MARKER
    configs = sorted(p for p in (root / "src" / "configs" / "dataset").glob("*.yaml")
                     if p.read_text(encoding="utf-8", errors="replace").startswith(YAML_MARKER))
    left = [f"synthetic data set {p.stem} (data/{p.stem}/, src/configs/dataset/{p.name})" for p in configs]
    synthetic_names = {p.stem for p in configs}
    left += [f"MDE's graph cache {p.relative_to(root)}/" for p in sorted((root / "data").glob("*/mde_graphs"))
             if p.parent.name not in synthetic_names]
    return left


# ------------------------------------------------------------------------------------------ CLI
def _cmd_install(args) -> int:
    install(args.path)
    return 0


def _cmd_uninstall(args) -> int:
    uninstall(args.path, force=args.force)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("install", help="install the MDE plugin and the patches into an MMRec checkout",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="the MMRec checkout (git clone https://github.com/enoche/MMRec)")
    p.set_defaults(func=_cmd_install)
    p = subparsers.add_parser("uninstall", help="restore an MMRec checkout's original files",
                              description="Restore every MMRec file the install patched (from CHECKOUT/"
                              ".mde-mmrec-backup/) and remove the files it added. Files edited since the install "
                              "are not discarded without --force. Data sets made by make-data and MDE's graph "
                              "caches are left in place (listed at the end).")
    p.add_argument("path", help="the MMRec checkout")
    p.add_argument("--force", action="store_true", help="also when installed files were edited since")
    p.set_defaults(func=_cmd_uninstall)
