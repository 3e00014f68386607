"""Tier 1: the installer against a fake MMRec clone (a git repository made here) and a fake patch series."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mde_mmrec import installer, paths
from mde_mmrec.errors import MdeMmrecError
from mde_mmrec.mmrec import MMREC_MARKERS, PLUGIN_INFO, SWITCH_MARKER, find_checkout
from mde_mmrec.runner import run_main

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = {marker: "".join(f"# {marker} line {n}\n" for n in range(1, 13)) for marker in MMREC_MARKERS}
ORIGINAL["src/models/lightgcn.py"] = "".join(f"x{n} = {n}\n" for n in range(1, 13))
ORIGINAL["README.md"] = "MMRec\n"
USER = {
    "GIT_AUTHOR_NAME": "A User",
    "GIT_AUTHOR_EMAIL": "user@example.org",
    "GIT_COMMITTER_NAME": "A User",
    "GIT_COMMITTER_EMAIL": "user@example.org",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env={**os.environ, **USER}
    ).stdout.strip()


def _diff(rel: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}", n=2)
    return f"diff --git a/{rel} b/{rel}\n" + "".join(lines)


def _edit(text: str, line_no: int, new_line: str) -> str:
    lines = text.splitlines(True)
    lines[line_no - 1] = new_line
    return "".join(lines)


@pytest.fixture(autouse=True)
def no_git_identity(tmp_path_factory, monkeypatch):
    """The user may have no git identity: the installer sets its own."""
    home = tmp_path_factory.mktemp("home")
    for key in ("HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(key, str(home))
    for key in ("EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def fake(tmp_path):
    """A fake MMRec clone on branch master, a plugin tree and a two-patch series (the second patch changes a
    file the first one changed too, so the series must be applied in order)."""
    root = tmp_path / "MMRec"
    for rel, text in ORIGINAL.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / ".gitignore").write_text("__pycache__/\n*.log\n")
    git(tmp_path, "init", "-q", "-b", "master", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "MMRec")
    plugin = tmp_path / "plugin_src"
    (plugin / "models").mkdir(parents=True)
    (plugin / "models" / "toy.py").write_text("class TOY:\n    pass\n")
    (plugin / "utils").mkdir()
    (plugin / "utils" / "helper.py").write_text("VALUE = 1\n")
    (plugin / "utils" / "__pycache__").mkdir()
    (plugin / "utils" / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"junk")

    main, trainer, lightgcn = "src/main.py", "src/common/trainer.py", "src/models/lightgcn.py"
    step1 = {
        main: _edit(ORIGINAL[main], 3, "# patched by 0001\n"),
        lightgcn: _edit(ORIGINAL[lightgcn], 8, "x8 = 'patched'\n"),
    }
    step2 = {
        main: _edit(step1[main], 4, "# patched by 0002\n"),
        trainer: _edit(ORIGINAL[trainer], 10, "# patched by 0002\n"),
    }
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-first.patch").write_text(
        "header: the first fix\n\nWhy: a reason\n\n"
        + "".join(_diff(rel, ORIGINAL[rel], new) for rel, new in step1.items())
    )
    (patches / "0002-second.patch").write_text(
        "header: the second fix\n\n"
        + _diff(main, step1[main], step2[main])
        + _diff(trainer, ORIGINAL[trainer], step2[trainer])
    )
    manifest = {
        "mmrec_commit": git(root, "rev-parse", "HEAD"),
        "patches": ["0001-first.patch", "0002-second.patch"],
        "pristine_sha256": {
            rel: hashlib.sha256(ORIGINAL[rel].encode()).hexdigest() for rel in (main, trainer, lightgcn)
        },
    }
    (patches / "manifest.json").write_text(json.dumps(manifest))
    expected = {**step1, **step2}
    return root, plugin, patches, expected


def snapshot(root: Path) -> dict:
    """The clone as the user sees it: every file outside .git, HEAD (branch or commit) and the branches."""
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }
    head = subprocess.run(
        ["git", "-C", str(root), "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True
    ).stdout.strip() or git(root, "rev-parse", "HEAD")
    return {"files": files, "HEAD": head, "branches": git(root, "branch", "--format=%(refname)").split()}


def run_install(fake):
    root, plugin, patches, _ = fake
    return installer.install(root, plugin_src=plugin, patches_dir=patches)


def test_install_builds_a_branch_that_git_log_explains_and_uninstall_goes_back(fake):
    root, _, _, expected = fake
    before, master = snapshot(root), git(root, "rev-parse", "HEAD")
    assert run_install(fake) == "installed"
    for rel, text in expected.items():
        assert (root / rel).read_text() == text
    assert (root / "src/models/toy.py").read_text() == "class TOY:\n    pass\n"
    assert (root / "src/utils/helper.py").is_file()
    assert not (root / "src/utils/__pycache__").exists()  # caches are not copied
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/mde-mmrec"
    assert git(root, "status", "--porcelain") == ""  # everything is committed on the branch
    log = git(root, "log", "--format=%an <%ae>|%s", f"{master}..mde-mmrec").splitlines()
    assert [line.split("|")[1] for line in log] == [
        "mde-mmrec 0.1.0: the plugin's files",
        "header: the second fix",
        "header: the first fix",
    ]
    assert {line.split("|")[0] for line in log} == {"mde-mmrec <mde-mmrec@localhost>"}  # no identity needed
    assert "Why: a reason" in git(root, "log", "-1", "--format=%B", "mde-mmrec~2")  # the whole header
    assert git(root, "diff", "--name-only", "mde-mmrec~2", "mde-mmrec~1").split() == [
        "src/common/trainer.py",
        "src/main.py",
    ]
    assert git(root, "rev-parse", "mde-mmrec~3") == master
    info = json.loads((root / PLUGIN_INFO).read_text())
    assert info["plugin_version"] == "0.1.0" and info["mmrec_commit"] == master
    assert info["installed_from"] == "refs/heads/master"
    assert find_checkout(root, up_to_date=False) == root.resolve()  # a test plugin: not this mde-mmrec's

    assert installer.uninstall(root) == "uninstalled"
    assert snapshot(root) == before
    assert git(root, "rev-parse", "HEAD") == master


def test_second_install_says_so_and_changes_nothing(fake, caplog):
    root = fake[0]
    run_install(fake)
    installed, tip = snapshot(root), git(root, "rev-parse", "mde-mmrec")
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    with caplog.at_level(logging.INFO):
        assert run_install(fake) == "already installed"
    assert "already installed" in caplog.text and "nothing changed" in caplog.text
    assert snapshot(root) == installed and git(root, "rev-parse", "mde-mmrec") == tip
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and ".git" not in p.parts} == mtimes


def test_uninstall_returns_to_a_detached_commit(fake):
    root = fake[0]
    git(root, "commit", "-q", "--allow-empty", "-m", "second")
    git(root, "checkout", "-q", "--detach", "HEAD~1")
    before = snapshot(root)
    run_install(fake)
    assert json.loads((root / PLUGIN_INFO).read_text())["installed_from"] is None
    installer.uninstall(root)
    assert snapshot(root) == before


def test_other_uncommitted_edits_survive_install_and_uninstall(fake):
    root = fake[0]
    (root / "README.md").write_text("MMRec, my notes\n")  # tracked, edited
    (root / "src/configs/overall.yaml").write_text("seed: [1]\n")
    git(root, "add", "src/configs/overall.yaml")  # staged
    (root / "notes.txt").write_text("mine\n")  # untracked
    (root / "run.log").write_text("ignored\n")  # ignored
    before, status = snapshot(root), git(root, "status", "--porcelain", "--ignored")
    run_install(fake)
    assert (root / "README.md").read_text() == "MMRec, my notes\n" and (root / "notes.txt").is_file()
    assert git(root, "status", "--porcelain", "--ignored") == status
    installer.uninstall(root)
    assert snapshot(root) == before and git(root, "status", "--porcelain", "--ignored") == status


@pytest.mark.parametrize("edit", ["modified", "staged", "untracked plugin path", "ignored plugin path"])
def test_refuses_uncommitted_changes_to_files_the_install_changes(fake, edit):
    root = fake[0]
    if edit in ("modified", "staged"):
        (root / "src/common/trainer.py").write_text(ORIGINAL["src/common/trainer.py"] + "# my own last line\n")
        if edit == "staged":
            git(root, "add", "src/common/trainer.py")
        rel = "src/common/trainer.py"
    else:  # a file of the user's where the plugin adds one
        rel = "src/models/toy.py"
        if edit.startswith("ignored"):
            (root / ".gitignore").write_text("toy.py\n")
            git(root, "commit", "-qam", "ignore toy.py")
        (root / rel).write_text("my own toy\n")
    before = snapshot(root)
    with pytest.raises(
        MdeMmrecError,
        match=rf"uncommitted changes in .* to files the install changes: .*{rel}.*"
        r"`git stash`.*Nothing was changed",
    ):
        run_install(fake)
    assert snapshot(root) == before


def test_refuses_a_folder_that_is_not_mmrec_or_not_a_git_clone(tmp_path, fake):
    (tmp_path / "other" / "src").mkdir(parents=True)
    (tmp_path / "other" / "src" / "main.py").write_text("print('hi')\n")
    with pytest.raises(MdeMmrecError, match="not an MMRec checkout: missing src/utils/quick_start.py"):
        installer.install(tmp_path / "other", plugin_src=fake[1], patches_dir=fake[2])
    with pytest.raises(MdeMmrecError, match="no such directory"):
        installer.install(tmp_path / "missing", plugin_src=fake[1], patches_dir=fake[2])
    copy = shutil.copytree(fake[0], tmp_path / "download", ignore=shutil.ignore_patterns(".git"))
    before = snapshot(fake[0])["files"]
    for attempt in (
        lambda: installer.install(copy, plugin_src=fake[1], patches_dir=fake[2]),
        lambda: installer.uninstall(copy),
    ):
        with pytest.raises(
            MdeMmrecError,
            match=r"is not a git clone .*`git clone https://github.com/enoche/MMRec`"
            r".*Nothing was changed",
        ):
            attempt()
    inner = shutil.copytree(copy, fake[0] / "vendored" / "MMRec")  # inside another clone: not its top
    with pytest.raises(MdeMmrecError, match="is not a git clone"):
        installer.install(inner, plugin_src=fake[1], patches_dir=fake[2])
    shutil.rmtree(fake[0] / "vendored")
    assert snapshot(fake[0])["files"] == before


def test_a_commit_that_conflicts_with_a_patch_is_refused_and_nothing_changes(fake):
    root = fake[0]
    (root / "src/common/trainer.py").write_text(_edit(ORIGINAL["src/common/trainer.py"], 9, "# my own line 9\n"))
    git(root, "commit", "-qam", "my change")  # patch 0002 changes line 10; line 9 is its context
    before = snapshot(root)
    with pytest.raises(MdeMmrecError) as error:
        run_install(fake)
    message = str(error.value)
    assert "patch 0002-second.patch does not apply to src/main.py, src/common/trainer.py" in message
    assert "your own commits" in message and "Nothing was changed" in message
    assert snapshot(root) == before


def test_update_after_plugin_change_rebuilds_the_branch(fake, caplog):
    root, plugin, _, _ = fake
    before = snapshot(root)
    run_install(fake)
    (plugin / "utils" / "helper.py").write_text("VALUE = 2\n")
    (plugin / "models" / "toy.py").unlink()
    assert run_install(fake) == "updated"
    assert (root / "src/utils/helper.py").read_text() == "VALUE = 2\n"
    assert not (root / "src/models/toy.py").exists()  # dropped by the new version
    assert (
        git(root, "status", "--porcelain") == ""
        and git(root, "rev-parse", "mde-mmrec~3") == json.loads((root / PLUGIN_INFO).read_text())["mmrec_commit"]
    )
    assert run_install(fake) == "already installed"
    installer.uninstall(root)
    assert snapshot(root) == before


def test_an_update_whose_series_no_longer_patches_a_file_restores_it(fake, tmp_path):
    root, plugin, _, _ = fake
    before = snapshot(root)
    run_install(fake)
    main = "src/main.py"
    smaller = tmp_path / "patches_v2"  # the new series patches src/main.py only
    smaller.mkdir()
    (smaller / "0001-first.patch").write_text(
        "v2\n\n" + _diff(main, ORIGINAL[main], _edit(ORIGINAL[main], 3, "# v2\n"))
    )
    (smaller / "manifest.json").write_text(
        json.dumps(
            {
                "mmrec_commit": "0" * 40,
                "patches": ["0001-first.patch"],
                "pristine_sha256": {main: hashlib.sha256(ORIGINAL[main].encode()).hexdigest()},
            }
        )
    )
    assert installer.install(root, plugin_src=plugin, patches_dir=smaller) == "updated"
    for rel in ("src/models/lightgcn.py", "src/common/trainer.py"):
        assert (root / rel).read_text() == ORIGINAL[rel], rel
    installer.uninstall(root)
    assert snapshot(root) == before


def test_uninstall_and_update_refuse_to_discard_edits_unless_forced(fake):
    root, plugin = fake[0], fake[1]
    before = snapshot(root)
    run_install(fake)
    (root / "src/main.py").write_text("my edits\n")
    with pytest.raises(MdeMmrecError, match="edited since.*src/main.py"):
        installer.uninstall(root)
    (root / "src/utils/helper.py").write_text("VALUE = 'mine'\n")
    (plugin / "utils" / "helper.py").write_text("VALUE = 2\n")  # an update rewrites helper.py, not main.py
    with pytest.raises(MdeMmrecError, match=r"uncommitted changes .*: M src/utils/helper.py\. Commit"):
        run_install(fake)
    installer.uninstall(root, force=True)
    assert snapshot(root) == before


def test_uninstall_of_a_clean_checkout_says_so(fake):
    before = snapshot(fake[0])
    assert installer.uninstall(fake[0]) == "not installed"
    assert snapshot(fake[0]) == before
    with pytest.raises(MdeMmrecError, match="not installed there .*run `mde-mmrec install"):
        find_checkout(fake[0])


def test_commits_of_the_user_on_the_branch_are_never_dropped_silently(fake):
    root = fake[0]
    run_install(fake)
    (root / "src/utils/helper.py").write_text("VALUE = 'mine'\n")
    git(root, "commit", "-qam", "my experiment")
    installed = snapshot(root)
    for attempt in (lambda: installer.uninstall(root), lambda: run_install(fake)):
        with pytest.raises(MdeMmrecError, match="has commits mde-mmrec did not make .*`git branch"):
            attempt()
        assert snapshot(root) == installed
    git(root, "branch", "my-work")
    installer.uninstall(root, force=True)
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/master"
    assert git(root, "log", "-1", "--format=%s", "my-work") == "my experiment"
    git(root, "branch", "mde-mmrec", "master")  # a branch of the user's with our name
    before = snapshot(root)
    with pytest.raises(MdeMmrecError, match=r"has commits mde-mmrec did not make .*`git branch -m mde-mmrec"):
        run_install(fake)
    assert snapshot(root) == before


def test_uninstall_after_the_user_switched_branches_deletes_the_branch_only(fake):
    root = fake[0]
    before = snapshot(root)
    run_install(fake)
    git(root, "checkout", "-q", "master")
    assert installer.uninstall(root) == "uninstalled"
    assert snapshot(root) == before


def test_the_real_series_is_complete_and_documented():
    series = installer.Series.load(paths.patches_dir())
    assert series.names == sorted(series.names) and len(series.names) >= 10
    touched = set()
    for name in series.names:
        text = (paths.patches_dir() / name).read_text()
        header, _, body = text.partition("diff --git ")
        assert header.startswith(f"mde-mmrec patch {name[:4]}:"), name  # says what it fixes ...
        assert "Fixes:" in header or "Adds:" in header or "Speeds up:" in header
        assert body, name
        touched.update(installer.patched_files(text))
    assert touched == set(series.pristine)
    assert series.oldest.split()[0] in (REPO / "README.md").read_text()  # README names the oldest MMRec
    # the patched main.py refuses a checkout mid-switch: it looks for the installer's own marker
    assert f"'{SWITCH_MARKER}'" in (paths.patches_dir() / "0021-main-refuses-a-checkout-mid-install.patch").read_text()


def test_the_plugin_files_and_patches_found_are_this_repository_s():
    """Installed from a wheel (`pip install .`, the files in mde_mmrec/_data/) as in the source tree: every file
    of src/ and of the series is there, byte for byte."""
    assert paths.plugin_files(paths.plugin_src()) == paths.plugin_files(REPO / "src")
    assert "src/models/mde.py" in paths.plugin_files(paths.plugin_src())
    series = installer.Series.load(paths.patches_dir())
    assert series.names == installer.Series.load(REPO / "patches").names
    assert all(series.text(name) == (REPO / "patches" / name).read_text() for name in series.names)


def test_run_main_streams_lines_and_returns_the_exit_code(fake, tmp_path, monkeypatch):
    root = fake[0]
    (root / "src/main.py").write_text(
        "import sys\nprint('args', sys.argv[1:])\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n"
    )
    monkeypatch.chdir(tmp_path)
    lines = []
    code = run_main(
        root,
        "MDE",
        "tiny",
        {"epochs": 2, "reg_weight": [0.1, 0.01], "results_file": "r.jsonl"},
        log_path=tmp_path / "run.log",
        on_line=lines.append,
    )
    assert code == 3
    expected_args = [
        "-m",
        "MDE",
        "-d",
        "tiny",
        "--epochs=2",
        "--reg_weight=[0.1,0.01]",
        f"--results_file={tmp_path / 'r.jsonl'}",
    ]
    assert lines == [f"args {expected_args}", "to stderr"]
    assert (tmp_path / "run.log").read_text().splitlines() == lines


def test_install_and_uninstall_say_where_and_name_the_data_left_behind(fake, caplog):
    root = fake[0]
    (root / "src" / "configs" / "dataset").mkdir(parents=True, exist_ok=True)
    with caplog.at_level(logging.INFO):
        run_install(fake)
        assert "installed in" in caplog.text and "branch mde-mmrec checked out, 2 patch commits" in caplog.text
        assert "`mde-mmrec uninstall" in caplog.text and "returns to branch master" in caplog.text
        from mde_mmrec.mmrec import plugin_module

        (root / "src" / "configs" / "dataset" / "syn.yaml").write_text(
            plugin_module("cli_overrides").SYNTHETIC_MARKER + " ...\n"
        )
        (root / "data" / "real" / "mde_graphs").mkdir(parents=True)
        caplog.clear()
        installer.uninstall(root)
    assert "back on branch master, branch mde-mmrec deleted" in caplog.text
    assert "synthetic data set syn (data/syn/" in caplog.text and "graph cache data/real/mde_graphs/" in caplog.text
    assert (root / "src/configs/dataset/syn.yaml").is_file() and (root / "data/real/mde_graphs").is_dir()


def test_the_tools_refuse_a_checkout_installed_by_another_mde_mmrec(fake):
    run_install(fake)  # the test's own plugin and patches, not this repository's
    with pytest.raises(MdeMmrecError, match=r"another version than this mde-mmrec's .*run `mde-mmrec install"):
        find_checkout(fake[0])


@pytest.mark.parametrize("command", ["install", "update", "uninstall"])
def test_a_failure_at_any_file_write_is_undone(fake, tmp_path, monkeypatch, command):
    """A write that fails (disk full, permissions) undoes the switch at once: the checkout is as before."""
    if command in ("update", "uninstall"):
        run_install(fake)
    if command == "update":
        (fake[1] / "models" / "toy.py").write_text("class TOY:\n    version = 2\n")
    real, calls = installer._write_file, []
    monkeypatch.setattr(installer, "_write_file", lambda *a: (calls.append(a[0]), real(*a)))
    probe = shutil.copytree(fake[0], tmp_path / "probe")
    installer.uninstall(probe) if command == "uninstall" else run_install((probe, *fake[1:]))
    writes = len(calls)
    assert writes >= 2  # update: toy.py and the plugin-info file
    for fail_at in range(writes):
        root = shutil.copytree(fake[0], tmp_path / f"fail-{fail_at}")
        before = snapshot(root)
        calls.clear()

        def failing(path, data, executable):
            calls.append(path)
            if len(calls) == fail_at + 1:
                raise OSError(28, "No space left on device", str(path))
            real(path, data, executable)

        monkeypatch.setattr(installer, "_write_file", failing)
        with pytest.raises(MdeMmrecError, match="No space left on device.*every change was undone"):
            installer.uninstall(root) if command == "uninstall" else run_install((root, *fake[1:]))
        assert snapshot(root) == before, f"not undone after a failure at write {fail_at + 1}"


def _patch_also_changes(fake, patch_name: str, rel: str, old: str, new: str) -> None:
    """Put a section for ``rel`` first in one of the fake series' patches (and ``rel`` into its manifest)."""
    patches = fake[2]
    patch = patches / patch_name
    patch.write_text(patch.read_text().replace("diff --git", _diff(rel, old, new) + "diff --git", 1))
    manifest = json.loads((patches / "manifest.json").read_text())
    manifest["pristine_sha256"][rel] = hashlib.sha256(old.encode()).hexdigest()
    (patches / "manifest.json").write_text(json.dumps(manifest))


def test_an_older_mmrec_without_a_patched_model_file_installs_without_that_section(fake, caplog):
    """An MMRec older than the series' commit lacks the models added since: their sections are skipped, every
    other section of the same patch is applied, and uninstall gives back the checkout as it was."""
    newer = "src/models/newer.py"
    _patch_also_changes(fake, "0001-first.patch", newer, "y = 1\n", "y = 2\n")
    root, _, _, expected = fake
    before = snapshot(root)
    with caplog.at_level(logging.WARNING):
        assert run_install(fake) == "installed"
    assert (
        f"{newer} is missing (a model added to MMRec after this checkout: its patch sections are skipped)"
        in caplog.text
    )
    for rel, text in expected.items():  # 0001's other sections, before and after the skipped one
        assert (root / rel).read_text() == text
    assert not (root / newer).exists()
    assert f"Sections skipped (not in this MMRec): {newer}" in git(root, "log", "-1", "--format=%B", "mde-mmrec~2")
    installer.uninstall(root)
    assert snapshot(root) == before


def test_without_files_drops_exactly_the_named_sections():
    first, second = _diff("src/a.py", "a\n", "b\n"), _diff("src/models/m.py", "c\n", "d\n")
    text = "header line\n\n" + first + second + first.replace("src/a.py", "src/c.py")
    assert installer.without_files(text, {"src/models/m.py"}) == "header line\n\n" + first + first.replace(
        "src/a.py", "src/c.py"
    )
    assert installer.without_files(text, set()) == text
    assert installer.without_files(second, {"src/models/m.py"}) == ""


def test_a_missing_core_file_is_refused_and_nothing_changes(fake):
    _patch_also_changes(fake, "0002-second.patch", "src/utils/extra.py", "z = 1\n", "z = 2\n")
    root = fake[0]
    before = snapshot(root)
    with pytest.raises(
        MdeMmrecError,
        match=r"0002-second.patch changes src/utils/extra.py, which the checkout "
        r"lacks: is it a complete MMRec checkout\?.*Nothing was changed",
    ):
        run_install(fake)
    assert snapshot(root) == before


def test_a_patch_that_does_not_apply_names_the_oldest_mmrec_the_series_fits(fake):
    root, _, patches, _ = fake
    manifest = json.loads((patches / "manifest.json").read_text())
    (patches / "manifest.json").write_text(json.dumps({**manifest, "oldest_mmrec": "abc1234 (2024-12-25)"}))
    (root / "src/main.py").write_text(_edit(ORIGINAL["src/main.py"], 3, "# an older main.py\n"))
    git(root, "commit", "-qam", "older")
    with pytest.raises(
        MdeMmrecError,
        match=r"0001-first.patch does not apply .*an MMRec older than abc1234 "
        r"\(2024-12-25\).*`git pull` in the checkout.*Nothing was changed",
    ):
        run_install(fake)


def test_a_commit_that_already_has_the_patches_is_named_as_such(fake):
    """A branch the user made from mde-mmrec's: the error says the patches are there already, not "your own
    commits"."""
    root = fake[0]
    run_install(fake)
    git(root, "checkout", "-q", "-b", "experiment")
    before = snapshot(root)
    with pytest.raises(MdeMmrecError) as error:
        run_install(fake)
    message = str(error.value)
    assert "patch 0001-first.patch is already in the commit the checkout is on" in message
    assert "`git checkout master`" in message and "Nothing was changed" in message
    assert "your own commits" not in message
    assert snapshot(root) == before


@pytest.mark.parametrize("content", ["[1, 2]", "{not json"])
def test_a_damaged_plugin_info_file_is_a_clear_error(fake, content):
    root = fake[0]
    run_install(fake)
    (root / PLUGIN_INFO).write_text(content)
    with pytest.raises(
        MdeMmrecError,
        match=r"mde_plugin_info.json is damaged .*`git checkout -- "
        r"src/utils/mde_plugin_info.json`",
    ):
        find_checkout(root)  # what compare, grid, reproduce and bench call first


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "-m", "BPR", "-d", "tiny"],
        ["grid", "-d", "tiny"],
        ["reproduce", "table1", "-d", "tiny"],
        ["bench"],
        ["make-data", "tiny"],
        ["check-data", "-d", "tiny"],
        ["user-graph", "-d", "tiny"],
    ],
)
def test_every_command_refuses_a_checkout_mid_switch_and_names_the_fix(fake, tmp_path, command, capsys):
    """The installer's marker is there (an install or uninstall was killed): every command that takes --mmrec
    stops with the fix before it reads or writes anything (demo completes the switch itself: it installs)."""
    from mde_mmrec import cli

    root = fake[0]
    (root / SWITCH_MARKER).write_text("{}")
    before = snapshot(root)
    assert (
        cli.main(
            [
                *command,
                "--mmrec",
                str(root),
                *(["--out", str(tmp_path / "out")] if command[0] in ("compare", "grid", "reproduce", "bench") else []),
            ]
        )
        == 2
    )
    assert (
        f"an mde-mmrec install or uninstall there was interrupted, its files are a mix of two versions "
        f"({SWITCH_MARKER} is there); run `mde-mmrec install {root}` to complete it" in capsys.readouterr().err
    )
    assert snapshot(root) == before and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ killed at any moment (SIGKILL)
_KILLED_AT_STEP = """
import os, sys
from pathlib import Path
from mde_mmrec import installer, paths
root, plugin, patches, kill_at, command = sys.argv[1:6]
steps = [0]
real_git, real_write = installer._git, installer._write_file

def step():
    steps[0] += 1
    return steps[0] == int(kill_at)

def git_then_die(*args, **kwargs):
    if step():                          # killed with git: the lock files it held stay behind
        if (Path(root) / installer.SWITCH_MARKER).exists():
            for lock in ("index.lock", "HEAD.lock", "refs/heads/mde-mmrec.lock"):
                Path(root, ".git", lock).write_text("")
        os._exit(9)
    return real_git(*args, **kwargs)

def write_then_die(path, data, executable):
    if step():                          # half of the new content written, then killed
        path.with_name(f".{path.name}.mde-mmrec-partial").write_bytes(data[: len(data) // 2])
        os._exit(9)
    real_write(path, data, executable)

installer._git, installer._write_file = git_then_die, write_then_die
if command in ("install", "update"):
    installer.install(root, plugin_src=plugin, patches_dir=patches)
else:
    installer.uninstall(root)
print("finished", steps[0])
"""


def _run_killed(fake, root, kill_at: int, command: str) -> subprocess.CompletedProcess:
    _, plugin, patches, _ = fake
    return subprocess.run(
        [sys.executable, "-c", _KILLED_AT_STEP, str(root), str(plugin), str(patches), str(kill_at), command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(installer.__file__).parents[1])},
    )


def _states(fake, tmp_path, command: str) -> tuple[dict, dict]:
    """(the clone's snapshot before ``command``, after it), from a copy of the clone."""
    root = shutil.copytree(fake[0], tmp_path / "reference")
    before = snapshot(root)
    installer.uninstall(root) if command == "uninstall" else run_install((root, *fake[1:]))
    return before, snapshot(root)


@pytest.mark.parametrize("command", ["install", "update", "uninstall"])
def test_an_install_or_uninstall_killed_at_any_step_is_completed_by_the_next_run(fake, tmp_path, command, caplog):
    """SIGKILL at any git command or file write: the checkout is as before, or the tools (make-data too)
    refuse it naming the fix until the next install or uninstall completes the switch; either way that
    command ends where it would have without the kill."""
    from mde_mmrec.mmrec import mmrec_root
    from mde_mmrec.synthetic import make_dataset

    if command in ("update", "uninstall"):
        run_install(fake)
    if command == "update":  # a newer plugin: the branch is rebuilt
        (fake[1] / "models" / "toy.py").write_text("class TOY:\n    version = 2\n")
    before, after = _states(fake, tmp_path, command)
    installed_main = (before if command == "uninstall" else after)["files"]["src/main.py"]
    total = int(_run_killed(fake, shutil.copytree(fake[0], tmp_path / "count"), 10**6, command).stdout.split()[-1])
    assert total > 10
    interrupted = 0
    for kill_at in range(1, total + 1):
        root = shutil.copytree(fake[0], tmp_path / f"killed-{kill_at}")
        assert _run_killed(fake, root, kill_at, command).returncode == 9
        interrupted_here = (root / SWITCH_MARKER).exists()
        if interrupted_here:
            interrupted += 1
            files = {
                rel: data
                for rel, data in snapshot(root)["files"].items()
                if rel != SWITCH_MARKER and not rel.endswith(".mde-mmrec-partial")
            }
            if files not in (before["files"], after["files"]):  # mixed: main.py is the patched one, which refuses
                assert files["src/main.py"] == installed_main, f"killed at step {kill_at} of {total}"
            for tool in (
                lambda: find_checkout(root, up_to_date=False),
                lambda: mmrec_root(root),
                lambda: make_dataset(root, "tiny"),
            ):
                with pytest.raises(MdeMmrecError, match="was interrupted.*run `mde-mmrec install"):
                    tool()
        else:
            assert snapshot(root) == before, f"killed at step {kill_at} of {total}: changed, and no marker"
        caplog.clear()
        with caplog.at_level(logging.WARNING):  # the next command: the one killed, or the other one
            if kill_at % 2:
                installer.uninstall(root) if command == "uninstall" else run_install((root, *fake[1:]))
                expected = after
            else:
                installer.uninstall(root)
                expected = before if command == "install" else _states_after_uninstall(fake, tmp_path)
        assert not (root / SWITCH_MARKER).exists()
        if interrupted_here:
            assert "was interrupted" in caplog.text  # the next command says what it completed
        assert snapshot(root)["files"] == expected["files"], f"killed at step {kill_at} of {total}"
        assert snapshot(root)["HEAD"] == expected["HEAD"] and snapshot(root)["branches"] == expected["branches"]
    assert interrupted >= 5


def _states_after_uninstall(fake, tmp_path) -> dict:
    root = tmp_path / "uninstalled"
    if not root.exists():
        shutil.copytree(fake[0], root)
        installer.uninstall(root)
    return snapshot(root)


def test_an_install_killed_at_random_moments_is_completed_by_the_next_run(fake, tmp_path):
    """Real SIGKILLs of the installer and its git child at moments spread over an install's duration."""
    _, plugin, patches, _ = fake
    before, after = _states(fake, tmp_path, "install")
    command = [
        sys.executable,
        "-c",
        "import sys; from mde_mmrec import installer; "
        "installer.install(sys.argv[1], plugin_src=sys.argv[2], patches_dir=sys.argv[3])",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(installer.__file__).parents[1])}
    start = time.monotonic()
    subprocess.run(
        [*command, str(shutil.copytree(fake[0], tmp_path / "timed")), str(plugin), str(patches)], env=env, check=True
    )
    duration = time.monotonic() - start
    for n in range(8):
        root = shutil.copytree(fake[0], tmp_path / f"killed-{n}")
        process = subprocess.Popen([*command, str(root), str(plugin), str(patches)], env=env, start_new_session=True)
        time.sleep(duration * (0.3 + n / 10))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if not (root / SWITCH_MARKER).exists() and snapshot(root) != after:
            assert snapshot(root) == before, f"killed after {duration * (0.3 + n / 10):.2f} s"
        run_install((root, *fake[1:]))
        state = snapshot(root)
        assert (state["files"], state["HEAD"], state["branches"]) == (after["files"], after["HEAD"], after["branches"])
