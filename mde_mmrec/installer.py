"""`mde-mmrec install PATH` / `mde-mmrec uninstall PATH`: the plugin as a git branch of an MMRec clone.

install builds the branch ``mde-mmrec`` on the commit the clone is on, without touching its files: one commit
per patch of patches/ (the patch's header is its message) and one adding the plugin's files (this project's
src/ tree, and src/utils/mde_plugin_info.json: MMRec commit, plugin version, the branch installed from). A
patch that does not apply stops it with nothing changed; only then is the checkout switched to the branch.
install again rebuilds the branch if the plugin or the patches changed. uninstall switches back to the branch
(or detached commit) the clone was on and deletes ``mde-mmrec``.

A switch changes only the files that differ between the two commits and refuses uncommitted edits of those. It
writes SWITCH_MARKER (what HEAD, the branch and those files must become), then the files (src/main.py first
when installing, last otherwise: meanwhile main.py is the patched one, which refuses to run while the marker is
there), the index, the branch and HEAD, and removes the marker. Each step can be redone: a switch killed at any
moment is completed by the next install or uninstall (every command refuses the checkout until then); one that
fails with an error is undone at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__, paths
from .errors import MdeMmrecError
from .mmrec import INSTALL_BRANCH, PLUGIN_INFO, SWITCH_MARKER, checkout_root, plugin_module

log = logging.getLogger(__name__)

BRANCH_REF = f"refs/heads/{INSTALL_BRANCH}"
EMAIL = "mde-mmrec@localhost"  # install's commits are by "mde-mmrec <EMAIL>" (the user may have no identity)


@dataclass
class Series:
    """The numbered patches and what they were made against (patches/manifest.json)."""

    directory: Path
    names: list
    mmrec_commit: str
    pristine: dict  # file (relative to the checkout) -> sha256 at mmrec_commit
    oldest: str | None = None  # the oldest MMRec the series applies to, "<commit> (<date>)"

    @classmethod
    def load(cls, directory: Path) -> Series:
        manifest = Path(directory) / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            names, commit, pristine = list(data["patches"]), data["mmrec_commit"], dict(data["pristine_sha256"])
        except (OSError, ValueError, KeyError) as exc:
            raise MdeMmrecError(
                f"{manifest}: cannot read the patch series ({exc}); reinstall mde-mmrec from its repository"
            ) from None
        for name in names:
            if not (Path(directory) / name).is_file():
                raise MdeMmrecError(f"{manifest} lists {name}, which is missing from {directory}")
        return cls(Path(directory), names, commit, pristine, data.get("oldest_mmrec"))

    def text(self, name: str) -> str:
        return (self.directory / name).read_text(encoding="utf-8")


def patched_files(patch_text: str) -> list:
    """The files a patch changes ('+++ b/...' lines)."""
    return [line[6:].split("\t")[0].strip() for line in patch_text.splitlines() if line.startswith("+++ b/")]


def without_files(patch_text: str, skip: set) -> str:
    """The patch without its sections (``diff --git`` to the next one) that change a file in ``skip``."""
    header, *sections = re.split(r"(?m)^(?=diff --git )", patch_text)
    return header + "".join(s for s in sections if not set(patched_files(s)) & skip)


# -------------------------------------------------------------------------------------------- git
def _git(
    root: Path, *args: str, stdin: bytes | None = None, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run git in ``root`` with mde-mmrec's identity and literal paths."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base_env.update(LC_ALL="C", GIT_LITERAL_PATHSPECS="1", **(env or {}))
    identity = ["-c", "user.name=mde-mmrec", "-c", f"user.email={EMAIL}"]
    try:
        result = subprocess.run(
            ["git", *identity, "-C", str(root), *args], input=stdin, capture_output=True, env=base_env
        )
    except FileNotFoundError:
        raise MdeMmrecError(
            "git is not on PATH: install git (MMRec is a git clone, and install builds a git branch in it)"
        ) from None
    if check and result.returncode:
        raise MdeMmrecError(f"`git {' '.join(args[:2])}` failed in {root}: {_said(result)}")
    return result


def _said(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stderr or result.stdout).decode(errors="replace").split())


def _out(root: Path, *args: str, **kwargs) -> str:
    return _git(root, *args, **kwargs).stdout.decode(errors="replace").strip()


def _commit_or_none(root: Path, rev: str) -> str | None:
    return _out(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False) or None


def _clone(path) -> Path:
    """The root of the MMRec clone at ``path``, any switch killed there completed; a clear error if it is not
    the top of a git clone with a commit checked out."""
    root = checkout_root(path)
    top = _git(root, "rev-parse", "--show-toplevel", check=False)
    if top.returncode or Path(top.stdout.decode().strip()).resolve() != root or not _commit_or_none(root, "HEAD"):
        raise MdeMmrecError(
            f"{root} is not a git clone (install builds a git branch in it): clone MMRec with "
            f"`git clone https://github.com/enoche/MMRec`, or make this copy one: `git init && "
            f"git add -A && git commit -m MMRec` in {root}. Nothing was changed."
        )
    finish_interrupted(root)
    return root


def _head(root: Path) -> tuple[str | None, str]:
    """(the branch HEAD is on, e.g. 'refs/heads/master', or None when detached; HEAD's commit)."""
    return _out(root, "symbolic-ref", "-q", "HEAD", check=False) or None, _commit_or_none(root, "HEAD")


def info_at(root: Path, commit: str) -> dict:
    """The plugin-info file in ``commit``'s tree; {} if there is none."""
    result = _git(root, "cat-file", "blob", f"{commit}:{PLUGIN_INFO}", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def _ours(root: Path, commit: str) -> bool:
    """Whether ``commit`` is one install made (the last of a branch it built), not one of the user's."""
    return _out(root, "log", "-1", "--format=%ae", commit) == EMAIL and bool(info_at(root, commit))


def _described(root: Path, head: str) -> str:
    """'branch master' or 'commit 1a2b3c4d5e6f' (a detached HEAD)."""
    return f"branch {head.removeprefix('refs/heads/')}" if head.startswith("refs/") else f"commit {head[:12]}"


# ------------------------------------------------------------------------------------ the branch
def build_branch(root: Path, base: str, series: Series, files: dict, info: dict) -> str:
    """Commit the series and then the plugin's files on top of ``base`` (objects only: no ref, no file of the
    checkout changes); returns the last commit. Raises MdeMmrecError naming a patch that does not apply."""
    present = set(_out(root, "ls-tree", "-r", "--name-only", "-z", base).split("\0"))
    with tempfile.TemporaryDirectory(prefix="mde-mmrec-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(root, "read-tree", base, env=env)
        commit = base
        for name in series.names:
            text = series.text(name)
            absent = {rel for rel in patched_files(text) if rel not in present}
            # an older MMRec has fewer models: their sections are skipped; every other file is MMRec's core
            core = sorted(rel for rel in absent if not rel.startswith("src/models/"))
            if core:
                raise MdeMmrecError(
                    f"patch {name} changes {', '.join(core)}, which the checkout lacks: is it a "
                    "complete MMRec checkout? Start from a clean clone of enoche/MMRec. Nothing was "
                    "changed."
                )
            for rel in sorted(absent):
                log.warning(
                    f"{rel} is missing (a model added to MMRec after this checkout: its patch sections are skipped)"
                )
            patch = without_files(text, absent).encode()
            applied = _git(root, "apply", "--cached", "-", stdin=patch, env=env, check=False)
            if applied.returncode:
                raise _does_not_apply(root, series, name, patch, applied, base)
            header = text.split("diff --git ", 1)[0].strip()
            skipped = f"\n\nSections skipped (not in this MMRec): {', '.join(sorted(absent))}" if absent else ""
            commit = _commit(root, env, commit, header + skipped)
        data = {**files, PLUGIN_INFO: (json.dumps(info, indent=2) + "\n").encode()}
        entries = "".join(
            f"100644 {_out(root, 'hash-object', '-w', '--stdin', stdin=data[rel])}\t{rel}\n" for rel in sorted(data)
        )
        _git(root, "update-index", "--add", "--index-info", stdin=entries.encode(), env=env)
        return _commit(
            root,
            env,
            commit,
            f"mde-mmrec {__version__}: the plugin's files\n\nAdds the MDE model, "
            "its config and the helper modules the patches call (mde-mmrec's src/ tree), and "
            f"{PLUGIN_INFO} (MMRec commit and plugin version, for the results lines):\n"
            + "".join(f"  {rel}\n" for rel in sorted(data)),
        )


def _commit(root: Path, env: dict, parent: str, message: str) -> str:
    tree = _out(root, "write-tree", env=env)
    return _out(root, "commit-tree", "--no-gpg-sign", tree, "-p", parent, "-F", "-", stdin=message.encode() + b"\n")


def _does_not_apply(root, series, name, patch, applied, base) -> MdeMmrecError:
    if _out(root, "log", "-1", "--format=%H", f"--author=<{EMAIL}>", base):  # built on an install's commits
        return MdeMmrecError(
            f"patch {name} is already in the commit the checkout is on ({base[:12]}: a branch made "
            "from mde-mmrec's?): switch to MMRec's own commit (e.g. `git checkout master`) and "
            "install again. Nothing was changed."
        )
    older = (
        f"; or an MMRec older than {series.oldest}, the oldest these patches fit: update it (`git pull` in the "
        "checkout)"
        if series.oldest
        else ""
    )
    return MdeMmrecError(
        f"patch {name} does not apply to {', '.join(patched_files(patch.decode()))} (git apply: {_said(applied)}); "
        f"the commit the checkout is on ({base[:12]}) differs from MMRec {series.mmrec_commit[:7]} where the patch "
        f"changes it: your own commits (install from MMRec's){older}. Nothing was changed."
    )


# ------------------------------------------------------------------------------------ the switch
def _changed_paths(root: Path, old: str, new: str) -> list[str]:
    """The files that differ between two commits."""
    return sorted(
        filter(None, _out(root, "diff-tree", "-r", "--name-only", "--no-renames", "-z", old, new).split("\0"))
    )


def _uncommitted(root: Path, paths: list[str]) -> list[str]:
    """``git status`` lines of those of ``paths`` that have uncommitted changes, or are untracked or ignored."""
    if not paths:
        return []
    out = _out(root, "status", "--porcelain", "-z", "--untracked-files=all", "--ignored", "--no-renames", "--", *paths)
    return sorted(entry for entry in out.split("\0") if entry.strip())


def _write_file(path: Path, data: bytes, executable: bool) -> None:
    """Replace a file at once (a kill leaves the old content or the new one, never half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.mde-mmrec-partial")
    partial.write_bytes(data)
    partial.chmod(0o755 if executable else 0o644)
    os.replace(partial, path)


def _remove_file(root: Path, rel: str) -> None:
    """Delete a file, its bytecode cache and the folders this leaves empty."""
    path = root / rel
    path.unlink(missing_ok=True)
    cache = path.parent / "__pycache__"
    for cached in cache.glob(f"{path.stem}.*.pyc"):
        cached.unlink()
    for folder in (cache, path.parent):
        with contextlib.suppress(OSError):  # stops at the first folder that is not empty (the root never is)
            os.removedirs(folder)


def _complete(root: Path, target: dict) -> None:
    """Bring the checkout to ``target`` (the marker's content): the branch ``target['branch']`` (None: deleted),
    the files ``target['paths']`` and their index entries as in commit ``target['sha']``, HEAD ``target['head']``
    (a branch, or a commit: detached). Every step can be redone."""
    if target["branch"]:
        _git(root, "update-ref", "-m", f"mde-mmrec {target['action']}", BRANCH_REF, target["branch"])
    installing = target["head"] == BRANCH_REF
    paths = sorted(target["paths"], key=lambda rel: (rel == "src/main.py") != installing)
    listing = _out(root, "ls-tree", "-z", target["sha"], "--", *paths) if paths else ""
    entries = {line.split("\t", 1)[1]: line.split("\t", 1)[0].split() for line in listing.split("\0") if line}
    for rel in paths:
        if rel in entries:
            mode, _, blob = entries[rel]
            _write_file(root / rel, _git(root, "cat-file", "blob", blob).stdout, mode == "100755")
        else:
            _remove_file(root, rel)
    if paths:  # their index entries as in the commit (removed where it has none)
        _git(root, "reset", "-q", target["sha"], "--", *paths)
    _git(root, "update-index", "-q", "--refresh", check=False)
    message = f"mde-mmrec {target['action']}: to {_described(root, target['head'])}"
    if target["head"].startswith("refs/"):
        _git(root, "symbolic-ref", "-m", message, "HEAD", target["head"])
    else:
        _git(root, "update-ref", "--no-deref", "-m", message, "HEAD", target["sha"])
    if not target["branch"]:
        _git(root, "update-ref", "-d", BRANCH_REF)
    (root / SWITCH_MARKER).unlink()


def _switch(root: Path, target: dict, undo: dict) -> None:
    """Switch to ``target``; if that fails with an error, switch back to ``undo`` (the state before)."""
    _write_marker(root, target)
    try:
        _complete(root, target)
    except BaseException as exc:
        what = f"{exc}" if isinstance(exc, MdeMmrecError) else f"{type(exc).__name__}: {exc}"
        try:
            _write_marker(root, undo)
            _complete(root, undo)
        except Exception as again:
            raise MdeMmrecError(
                f"{what}; undoing it failed too ({again}): once the cause is fixed, run `mde-mmrec "
                f"install {root}` or `mde-mmrec uninstall {root}` to complete either"
            ) from exc
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise MdeMmrecError(f"{what}; every change was undone, {root} is as before") from exc


def _write_marker(root: Path, target: dict) -> None:
    (root / SWITCH_MARKER).write_text(json.dumps(target, indent=1) + "\n", encoding="utf-8")


def finish_interrupted(root: Path) -> bool:
    """Complete a switch that was killed before it could end (SWITCH_MARKER is still there); True if there was
    one. Lock files git left when it was killed with it are removed."""
    marker = root / SWITCH_MARKER
    if not marker.exists():
        return False
    try:
        target = json.loads(marker.read_text(encoding="utf-8"))
        fields = (target["action"], target["head"], target["sha"], target["branch"], list(target["paths"]))
    except (ValueError, KeyError, TypeError):  # killed while writing the marker: nothing else had changed
        marker.unlink()
        log.warning(f"an mde-mmrec install or uninstall in {root} was interrupted before it changed anything")
        return True
    git_dir = Path(_out(root, "rev-parse", "--absolute-git-dir"))
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / f"{BRANCH_REF}.lock"):
        if lock.exists() and lock.stat().st_mtime >= marker.stat().st_mtime - 1:
            lock.unlink()  # left by a git command killed with the switch
    _complete(root, target)
    done = "installed" if fields[1] == BRANCH_REF else f"back on {_described(root, fields[1])}"
    log.warning(f"an mde-mmrec {fields[0]} in {root} was interrupted; it is complete now ({done})")
    return True


# -------------------------------------------------------------------------------- install, uninstall
def install(path, plugin_src: Path | None = None, patches_dir: Path | None = None) -> str:
    """Install (or update) the plugin; returns "installed", "updated" or "already installed"."""
    files = paths.plugin_files(Path(plugin_src) if plugin_src else paths.plugin_src())
    series = Series.load(Path(patches_dir) if patches_dir else paths.patches_dir())
    if not files:
        raise MdeMmrecError(f"{plugin_src} holds no plugin files")
    root = _clone(path)
    stamp = paths.fingerprint(series.directory, files)
    head_ref, head = _head(root)
    old_tip = _commit_or_none(root, BRANCH_REF)
    updating = head_ref == BRANCH_REF
    if old_tip and not _ours(root, old_tip):
        raise MdeMmrecError(
            f"the branch {INSTALL_BRANCH} in {root} has commits mde-mmrec did not make (`git log "
            f"{INSTALL_BRANCH}`): keep them on a branch of your own (`git branch -m {INSTALL_BRANCH} "
            f"my-work`), then install again. Nothing was changed."
        )
    if updating:
        installed = info_at(root, head)
        if installed.get("fingerprint") == stamp:
            log.info(
                f"mde-mmrec {__version__} is already installed in {root} (branch {INSTALL_BRANCH}); nothing changed"
            )
            return "already installed"
        base, installed_from = installed["mmrec_commit"], installed.get("installed_from")
    else:
        base, installed_from = head, head_ref
    if base != series.mmrec_commit:
        log.info(
            f"{root} is at {base[:12]}, not MMRec {series.mmrec_commit[:12]} (the commit the patches are made "
            "for); they are applied to it"
        )
    info = {"mmrec_commit": base, "plugin_version": __version__, "fingerprint": stamp, "installed_from": installed_from}
    tip = build_branch(root, base, series, files, info)
    changed = _changed_paths(root, head, tip)
    dirty = _uncommitted(root, changed)
    if dirty:
        raise MdeMmrecError(
            f"uncommitted changes in {root} to files the install changes: {'; '.join(dirty)}. "
            "Commit them (`git commit`), put them aside (`git stash`) or move the untracked ones "
            "away, then install again. Nothing was changed."
        )
    _switch(
        root,
        {"action": "install", "head": BRANCH_REF, "sha": tip, "branch": tip, "paths": changed},
        undo={"action": "undo", "head": head_ref or head, "sha": head, "branch": old_tip, "paths": changed},
    )
    verb = "updated" if updating else "installed"
    log.info(
        f"mde-mmrec {__version__} {verb} in {root}: branch {INSTALL_BRANCH} checked out, {len(series.names)} "
        f"patch commits and 1 commit of {len(files) + 1} plugin files on {base[:12]} (`git log --stat "
        f"{base[:7]}..{INSTALL_BRANCH}` shows each change); `mde-mmrec uninstall {root}` returns to "
        f"{_described(root, installed_from or base)}"
    )
    return verb


def uninstall(path, force: bool = False) -> str:
    """Switch back to the branch or commit installed from and delete the plugin's branch; returns
    "uninstalled" or "not installed"."""
    root = _clone(path)
    head_ref, head = _head(root)
    tip = _commit_or_none(root, BRANCH_REF)
    if head_ref != BRANCH_REF:
        if tip and _ours(root, tip):
            _git(root, "update-ref", "-d", BRANCH_REF, tip)
            log.info(
                f"mde-mmrec was not checked out in {root} (HEAD is on {_described(root, head_ref or head)}); "
                f"its branch {INSTALL_BRANCH} is deleted"
            )
            return "uninstalled"
        log.info(f"mde-mmrec is not installed in {root}; nothing changed")
        return "not installed"
    if not _ours(root, head) and not force:
        raise MdeMmrecError(
            f"the branch {INSTALL_BRANCH} in {root} has commits mde-mmrec did not make (`git log "
            f"{INSTALL_BRANCH}`); uninstalling deletes the branch. Keep them on a branch of your own "
            f"(`git branch my-work`), then run `mde-mmrec uninstall --force {root}`"
        )
    installed = info_at(root, head)
    back = installed.get("installed_from")
    back_sha = back and _commit_or_none(root, back)
    if not back_sha:  # installed from a detached commit, or that branch is gone
        back = back_sha = installed["mmrec_commit"]
    changed = _changed_paths(root, head, back_sha)
    dirty = _uncommitted(root, changed)
    if dirty and not force:
        raise MdeMmrecError(
            f"these installed files were edited since the install: {'; '.join(dirty)}; "
            f"uninstalling would discard those edits. Keep a copy (or `git stash`), then run "
            f"`mde-mmrec uninstall --force {root}`"
        )
    _switch(
        root,
        {"action": "uninstall", "head": back, "sha": back_sha, "branch": None, "paths": changed},
        undo={"action": "undo", "head": BRANCH_REF, "sha": head, "branch": tip, "paths": changed},
    )
    log.info(
        f"mde-mmrec uninstalled from {root}: back on {_described(root, back)}, branch {INSTALL_BRANCH} "
        f"deleted ({len(changed)} files restored or removed)"
    )
    left = data_left_behind(root)
    if left:
        log.info("left in place (your data; delete them by hand if you no longer need them): " + "; ".join(left))
    return "uninstalled"


def data_left_behind(root: Path) -> list[str]:
    """What mde-mmrec's commands wrote beside MMRec's own files: synthetic data sets (make-data) and MDE's
    graph caches (data/*/mde_graphs)."""
    marker = plugin_module("cli_overrides").SYNTHETIC_MARKER
    configs = (root / "src" / "configs" / "dataset").glob("*.yaml")
    made = sorted(p.stem for p in configs if p.read_text(encoding="utf-8", errors="replace").startswith(marker))
    return [f"synthetic data set {name} (data/{name}/, src/configs/dataset/{name}.yaml)" for name in made] + [
        f"MDE's graph cache {p.relative_to(root)}/"
        for p in sorted((root / "data").glob("*/mde_graphs"))
        if p.parent.name not in made
    ]


# ------------------------------------------------------------------------------------------ CLI
def _cmd_install(args) -> None:
    install(args.path)


def _cmd_uninstall(args) -> None:
    uninstall(args.path, force=args.force)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "install",
        help=f"install the MDE plugin and the patches into an MMRec clone (as the git branch {INSTALL_BRANCH})",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="the MMRec clone (git clone https://github.com/enoche/MMRec)")
    p.set_defaults(func=_cmd_install)
    p = subparsers.add_parser(
        "uninstall",
        help="switch an MMRec clone back to the branch it was installed from",
        description=f"Switch the clone back to the branch (or commit) it was on when "
        f"mde-mmrec was installed and delete the branch {INSTALL_BRANCH}. Uncommitted edits "
        "of the files this changes are not discarded without --force; other uncommitted "
        "edits stay. Data sets made by make-data and MDE's graph caches are left in place "
        "(listed at the end).",
    )
    p.add_argument("path", help="the MMRec clone")
    p.add_argument(
        "--force",
        action="store_true",
        help=f"also when files it changes were edited, or {INSTALL_BRANCH} has commits of yours",
    )
    p.set_defaults(func=_cmd_uninstall)
