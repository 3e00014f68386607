"""Tier 1: the installer against a fake MMRec checkout and a fake patch series, both made here."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mde_mmrec import installer
from mde_mmrec.errors import MdeMmrecError
from mde_mmrec.mmrec import MMREC_MARKERS, find_checkout, run_main
from mde_mmrec.paths import PATCHES_DIR

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = {marker: "".join(f"# {marker} line {n}\n" for n in range(1, 13)) for marker in MMREC_MARKERS}
ORIGINAL["src/models/lightgcn.py"] = "".join(f"x{n} = {n}\n" for n in range(1, 13))


def _diff(rel: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}", n=2)
    return f"diff --git a/{rel} b/{rel}\n" + "".join(lines)


def _edit(text: str, line_no: int, new_line: str) -> str:
    lines = text.splitlines(True)
    lines[line_no - 1] = new_line
    return "".join(lines)


@pytest.fixture
def fake(tmp_path):
    """A fake checkout, plugin tree and two-patch series (the second patch changes a file the first one
    changed too, so the series must be applied in order)."""
    root = tmp_path / "MMRec"
    for rel, text in ORIGINAL.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    plugin = tmp_path / "plugin_src"
    (plugin / "models").mkdir(parents=True)
    (plugin / "models" / "toy.py").write_text("class TOY:\n    pass\n")
    (plugin / "utils").mkdir()
    (plugin / "utils" / "helper.py").write_text("VALUE = 1\n")
    (plugin / "utils" / "__pycache__").mkdir()
    (plugin / "utils" / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"junk")

    main, trainer, lightgcn = "src/main.py", "src/common/trainer.py", "src/models/lightgcn.py"
    step1 = {main: _edit(ORIGINAL[main], 3, "# patched by 0001\n"),
             lightgcn: _edit(ORIGINAL[lightgcn], 8, "x8 = 'patched'\n")}
    step2 = {main: _edit(step1[main], 4, "# patched by 0002\n"),
             trainer: _edit(ORIGINAL[trainer], 10, "# patched by 0002\n")}
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-first.patch").write_text("header: the first fix\n\n" + "".join(
        _diff(rel, ORIGINAL[rel], new) for rel, new in step1.items()))
    (patches / "0002-second.patch").write_text("header: the second fix\n\n" + _diff(main, step1[main], step2[main])
                                              + _diff(trainer, ORIGINAL[trainer], step2[trainer]))
    manifest = {"mmrec_commit": "0" * 40, "patches": ["0001-first.patch", "0002-second.patch"],
                "pristine_sha256": {rel: hashlib.sha256(ORIGINAL[rel].encode()).hexdigest()
                                    for rel in (main, trainer, lightgcn)}}
    (patches / "manifest.json").write_text(json.dumps(manifest))
    expected = {**step1, **step2}
    return root, plugin, patches, expected


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_install(fake, tool=None):
    root, plugin, patches, _ = fake
    return installer.install(root, plugin_src=plugin, patches_dir=patches, tool=tool)


@pytest.mark.parametrize("tool", ["patch", "git"])
def test_install_patches_adds_files_and_uninstall_restores(fake, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not on PATH")
    root, _, _, expected = fake
    before = snapshot(root)
    assert run_install(fake, tool) == "installed"
    for rel, text in expected.items():
        assert (root / rel).read_text() == text
    assert (root / "src/models/toy.py").read_text() == "class TOY:\n    pass\n"
    assert (root / "src/utils/helper.py").is_file()
    assert not (root / "src/utils/__pycache__").exists()          # caches are not copied
    info = json.loads((root / installer.PLUGIN_INFO).read_text())
    assert info["plugin_version"] and info["mmrec_commit"] == "0" * 40
    for rel in expected:                                             # originals kept byte for byte
        assert (root / ".mde-mmrec-backup/files" / rel).read_bytes() == before[rel]
    assert find_checkout(root, up_to_date=False) == root.resolve()   # a test plugin: not this mde-mmrec's

    assert installer.uninstall(root) == "uninstalled"
    assert snapshot(root) == before
    assert not (root / ".mde-mmrec-backup").exists()


def test_second_install_changes_nothing(fake, caplog):
    root = fake[0]
    run_install(fake)
    installed = snapshot(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    with caplog.at_level(logging.INFO):
        assert run_install(fake) == "already installed"
    assert "already installed" in caplog.text
    assert snapshot(root) == installed
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes


def count_writes(fake, monkeypatch) -> int:
    calls = []
    real = installer._write_bytes
    monkeypatch.setattr(installer, "_write_bytes", lambda path, data: (calls.append(path), real(path, data)))
    run_install(fake)
    return len(calls)


def test_failure_at_every_write_rolls_everything_back(fake, tmp_path_factory, monkeypatch):
    probe = tmp_path_factory.mktemp("probe")
    probe_fake = (shutil.copytree(fake[0], probe / "MMRec"), *fake[1:])
    writes = count_writes(probe_fake, monkeypatch)
    monkeypatch.undo()
    assert writes >= 8          # backups, patched files, plugin files, info, manifest
    root = fake[0]
    before = snapshot(root)
    real = installer._write_bytes
    for fail_at in range(writes):
        calls = []

        def failing(path, data):
            calls.append(path)
            if len(calls) > fail_at:
                raise OSError(28, "No space left on device", str(path))
            real(path, data)

        monkeypatch.setattr(installer, "_write_bytes", failing)
        with pytest.raises(MdeMmrecError, match="rolled back") as error:
            run_install(fake)
        assert "No space left on device" in str(error.value)
        assert snapshot(root) == before, f"not rolled back after a failure at write {fail_at + 1}"
        assert not (root / ".mde-mmrec-backup").exists()
        assert not (root / "src/models/toy.py").exists()


def test_refuses_a_folder_that_is_not_mmrec(tmp_path, fake):
    (tmp_path / "other" / "src").mkdir(parents=True)
    (tmp_path / "other" / "src" / "main.py").write_text("print('hi')\n")
    with pytest.raises(MdeMmrecError, match="not an MMRec checkout: missing src/utils/quick_start.py"):
        installer.install(tmp_path / "other", plugin_src=fake[1], patches_dir=fake[2])
    with pytest.raises(MdeMmrecError, match="no such directory"):
        installer.install(tmp_path / "missing", plugin_src=fake[1], patches_dir=fake[2])


def test_refuses_conflicting_local_edits_and_changes_nothing(fake):
    root = fake[0]
    trainer = root / "src/common/trainer.py"
    trainer.write_text(_edit(ORIGINAL["src/common/trainer.py"], 10, "# my own line 10\n"))
    before = snapshot(root)
    with pytest.raises(MdeMmrecError) as error:
        run_install(fake)
    message = str(error.value)
    assert "0002-second.patch" in message and "src/common/trainer.py" in message and "Nothing was changed" in message
    assert snapshot(root) == before


def test_a_folder_where_the_plugin_writes_a_file_is_refused_and_left_alone(fake):
    root = fake[0]
    (root / "src/utils/helper.py").mkdir(parents=True)          # the user's folder, named like a plugin file
    before = snapshot(root)
    with pytest.raises(MdeMmrecError, match=r"src/utils/helper.py is not a regular file .*move it away.*"
                                            r"every change was rolled back"):
        run_install(fake)
    assert snapshot(root) == before and (root / "src/utils/helper.py").is_dir()
    assert not (root / ".mde-mmrec-backup").exists()


def test_accepts_local_edits_that_do_not_conflict(fake, caplog):
    root = fake[0]
    trainer = root / "src/common/trainer.py"
    trainer.write_text(ORIGINAL["src/common/trainer.py"] + "# my own last line\n")
    with caplog.at_level(logging.WARNING):
        assert run_install(fake) == "installed"
    assert "src/common/trainer.py differs from MMRec" in caplog.text
    assert trainer.read_text().endswith("# patched by 0002\n" + "".join(
        f"# src/common/trainer.py line {n}\n" for n in (11, 12)) + "# my own last line\n")
    info = json.loads((root / installer.PLUGIN_INFO).read_text())
    assert info["mmrec_commit"] is None          # not the known commit, and no git to say which


def test_refuses_a_read_only_checkout(fake, monkeypatch):
    root = fake[0]
    before = snapshot(root)
    if os.geteuid() == 0:       # root may write anywhere: simulate the read-only mount
        monkeypatch.setattr(installer, "_writable", lambda path: False)
    else:
        for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            folder.chmod(0o555)
    try:
        with pytest.raises(MdeMmrecError, match="read-only"):
            run_install(fake)
    finally:
        for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
    assert snapshot(root) == before


def test_update_after_plugin_change_and_uninstall_restores_originals(fake, caplog):
    root, plugin, _, _ = fake
    before = snapshot(root)
    run_install(fake)
    (plugin / "utils" / "helper.py").write_text("VALUE = 2\n")
    (plugin / "models" / "toy.py").unlink()
    assert run_install(fake) == "updated"
    assert (root / "src/utils/helper.py").read_text() == "VALUE = 2\n"
    assert not (root / "src/models/toy.py").exists()            # dropped by the new version
    assert run_install(fake) == "already installed"
    installer.uninstall(root)
    assert snapshot(root) == before


def test_uninstall_refuses_to_discard_edits_unless_forced(fake):
    root = fake[0]
    before = snapshot(root)
    run_install(fake)
    (root / "src/main.py").write_text("my edits\n")
    with pytest.raises(MdeMmrecError, match="edited since.*src/main.py"):
        installer.uninstall(root)
    with pytest.raises(MdeMmrecError, match="edited since"):
        run_install(fake)
    installer.uninstall(root, force=True)
    assert snapshot(root) == before


def test_uninstall_of_a_clean_checkout_says_so(fake):
    assert installer.uninstall(fake[0]) == "not installed"
    with pytest.raises(MdeMmrecError, match="run `mde-mmrec install"):
        find_checkout(fake[0])


def test_the_real_series_is_complete_and_documented():
    series = installer.Series.load(PATCHES_DIR)
    assert series.names == sorted(series.names) and len(series.names) >= 10
    touched = set()
    for name in series.names:
        text = (PATCHES_DIR / name).read_text()
        header, _, body = text.partition("diff --git ")
        assert header.startswith(f"mde-mmrec patch {name[:4]}:"), name       # says what it fixes ...
        assert "Fixes:" in header or "Adds:" in header or "Speeds up:" in header
        assert body, name
        touched.update(installer.patched_files(text))
    assert touched == set(series.pristine)
    assert series.oldest.split()[0] in (REPO / "README.md").read_text()    # README names the oldest MMRec


def test_run_main_streams_lines_and_returns_the_exit_code(fake, tmp_path, monkeypatch):
    root = fake[0]
    (root / "src/main.py").write_text("import sys\nprint('args', sys.argv[1:])\n"
                                      "print('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    lines = []
    code = run_main(root, "MDE", "tiny", {"epochs": 2, "reg_weight": [0.1, 0.01], "results_file": "r.jsonl"},
                    log_path=tmp_path / "run.log", on_line=lines.append)
    assert code == 3
    expected_args = ["-m", "MDE", "-d", "tiny", "--epochs=2", "--reg_weight=[0.1,0.01]",
                     f"--results_file={tmp_path / 'r.jsonl'}"]
    assert lines == [f"args {expected_args}", "to stderr"]
    assert (tmp_path / "run.log").read_text().splitlines() == lines


def test_install_and_uninstall_count_the_same_files_and_name_the_data_left_behind(fake, caplog):
    root = fake[0]
    (root / "src" / "configs" / "dataset").mkdir(parents=True, exist_ok=True)
    with caplog.at_level(logging.INFO):
        run_install(fake)
        added = json.loads((root / installer.INSTALL_MANIFEST).read_text())["added"]
        assert f"{len(added)} plugin files added" in caplog.text
        from mde_mmrec.synthetic import YAML_MARKER
        (root / "src" / "configs" / "dataset" / "syn.yaml").write_text(YAML_MARKER + " ...\n")
        (root / "data" / "real" / "mde_graphs").mkdir(parents=True)
        caplog.clear()
        installer.uninstall(root)
    assert f"{len(added)} removed" in caplog.text
    assert "synthetic data set syn (data/syn/" in caplog.text and "graph cache data/real/mde_graphs/" in caplog.text


def test_the_tools_refuse_a_checkout_installed_by_another_mde_mmrec(fake):
    run_install(fake)                  # the test's own plugin and patches, not this repository's
    with pytest.raises(MdeMmrecError, match=r"another version than this mde-mmrec's .*run `mde-mmrec install"):
        find_checkout(fake[0])


def test_an_update_whose_series_no_longer_patches_a_file_restores_it(fake, tmp_path):
    root, plugin, _, _ = fake
    before = snapshot(root)
    run_install(fake)
    main = "src/main.py"
    smaller = tmp_path / "patches_v2"                    # the new series patches src/main.py only
    smaller.mkdir()
    (smaller / "0001-first.patch").write_text(_diff(main, ORIGINAL[main], _edit(ORIGINAL[main], 3, "# v2\n")))
    (smaller / "manifest.json").write_text(json.dumps({
        "mmrec_commit": "0" * 40, "patches": ["0001-first.patch"],
        "pristine_sha256": {main: hashlib.sha256(ORIGINAL[main].encode()).hexdigest()}}))
    assert installer.install(root, plugin_src=plugin, patches_dir=smaller) == "updated"
    for rel in ("src/models/lightgcn.py", "src/common/trainer.py"):
        assert (root / rel).read_text() == ORIGINAL[rel], rel
    installer.uninstall(root)
    assert snapshot(root) == before


def test_a_failed_update_keeps_the_installation_and_its_backups(fake, monkeypatch):
    root, plugin = fake[0], fake[1]
    run_install(fake)
    installed = snapshot(root)
    (plugin / "utils" / "helper.py").write_text("VALUE = 2\n")
    real = installer._write_bytes

    def full_disk_at_the_manifest(path, data):
        if path == root / installer.INSTALL_MANIFEST:
            raise OSError(28, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(installer, "_write_bytes", full_disk_at_the_manifest)
    with pytest.raises(MdeMmrecError, match="rolled back"):
        run_install(fake)
    assert snapshot(root) == installed                  # backups of MMRec's originals included


def test_a_patch_whose_context_was_edited_is_refused_not_applied_fuzzily(fake):
    root = fake[0]
    trainer = root / "src/common/trainer.py"            # patch 0002 changes line 10; line 9 is its context
    trainer.write_text(_edit(ORIGINAL["src/common/trainer.py"], 9, "# my own line 9\n"))
    before = snapshot(root)
    with pytest.raises(MdeMmrecError, match=r"0002-second.patch does not apply .*Nothing was changed"):
        run_install(fake, tool="patch")
    assert snapshot(root) == before


def test_a_patch_that_is_not_gnu_patch_is_passed_over_for_git(tmp_path, monkeypatch):
    """macOS ships a BSD patch without GNU's options: the installer uses git apply there."""
    if not (shutil.which("git") and shutil.which("patch")):
        pytest.skip("needs git and patch on PATH")
    assert installer._patch_tool() == "patch"                     # GNU patch on this machine
    bsd = tmp_path / "bin" / "patch"
    bsd.parent.mkdir()
    bsd.write_text("#!/bin/sh\necho 'patch 2.0-12u11 FreeBSD'\n")
    bsd.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bsd.parent}{os.pathsep}{os.environ['PATH']}")
    assert installer._patch_tool() == "git"


def _patch_also_changes(fake, patch_name: str, rel: str, old: str, new: str) -> None:
    """Put a section for ``rel`` first in one of the fake series' patches (and ``rel`` into its manifest)."""
    patches = fake[2]
    patch = patches / patch_name
    patch.write_text(patch.read_text().replace("diff --git", _diff(rel, old, new) + "diff --git", 1))
    manifest = json.loads((patches / "manifest.json").read_text())
    manifest["pristine_sha256"][rel] = hashlib.sha256(old.encode()).hexdigest()
    (patches / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("tool", ["patch", "git"])
def test_an_older_mmrec_without_a_patched_model_file_installs_without_that_section(fake, tool, caplog):
    """An MMRec older than the series' commit lacks the models added since: their sections are skipped, every
    other section of the same patch is applied, and uninstall gives back the checkout as it was."""
    if not shutil.which(tool):
        pytest.skip(f"{tool} not on PATH")
    newer = "src/models/newer.py"
    _patch_also_changes(fake, "0001-first.patch", newer, "y = 1\n", "y = 2\n")
    root, _, _, expected = fake
    before = snapshot(root)
    with caplog.at_level(logging.WARNING):
        assert run_install(fake, tool) == "installed"
    assert f"{newer} is missing (a model added to MMRec after this checkout: its patch sections are skipped)" \
        in caplog.text
    for rel, text in expected.items():                  # 0001's other sections, before and after the skipped one
        assert (root / rel).read_text() == text
    assert not (root / newer).exists()
    installer.uninstall(root)
    assert snapshot(root) == before


def test_without_files_drops_exactly_the_named_sections():
    first, second = _diff("src/a.py", "a\n", "b\n"), _diff("src/models/m.py", "c\n", "d\n")
    text = "header line\n\n" + first + second + first.replace("src/a.py", "src/c.py")
    assert installer.without_files(text, {"src/models/m.py"}) == "header line\n\n" + first + first.replace(
        "src/a.py", "src/c.py")
    assert installer.without_files(text, set()) == text
    assert installer.without_files(second, {"src/models/m.py"}) == ""


def test_a_missing_core_file_is_refused_and_nothing_changes(fake):
    _patch_also_changes(fake, "0002-second.patch", "src/utils/extra.py", "z = 1\n", "z = 2\n")
    root = fake[0]
    before = snapshot(root)
    with pytest.raises(MdeMmrecError, match=r"0002-second.patch changes src/utils/extra.py, which the checkout "
                                            r"lacks: is it a complete MMRec checkout\?.*Nothing was changed"):
        run_install(fake)
    assert snapshot(root) == before


def test_a_patch_that_does_not_apply_names_the_oldest_mmrec_the_series_fits(fake):
    root, _, patches, _ = fake
    manifest = json.loads((patches / "manifest.json").read_text())
    (patches / "manifest.json").write_text(json.dumps({**manifest, "oldest_mmrec": "abc1234 (2024-12-25)"}))
    (root / "src/main.py").write_text(_edit(ORIGINAL["src/main.py"], 3, "# an older main.py\n"))
    with pytest.raises(MdeMmrecError, match=r"0001-first.patch does not apply .*an MMRec older than abc1234 "
                                            r"\(2024-12-25\).*`git pull` in the checkout.*Nothing was changed"):
        run_install(fake)


@pytest.mark.parametrize("tool", ["patch", "git"])
def test_a_copy_of_an_installed_checkout_without_its_backup_is_named_as_such(fake, tool):
    """Patched files but no .mde-mmrec-backup (copied without it, or patched by hand): the error says the
    patches are already there and how to get MMRec's files back, not "local edits"."""
    if not shutil.which(tool):
        pytest.skip(f"{tool} not on PATH")
    root = fake[0]
    run_install(fake, tool)
    shutil.rmtree(root / ".mde-mmrec-backup")
    before = snapshot(root)
    with pytest.raises(MdeMmrecError) as error:
        run_install(fake, tool)
    message = str(error.value)
    assert "the patches are already applied" in message and "git checkout -- src" in message
    assert "Nothing was changed" in message and "local edits" not in message
    assert snapshot(root) == before


def test_damaged_saved_originals_are_never_restored(fake):
    """uninstall (even --force) and an update start from the saved originals: a truncated or missing one is
    refused, naming it, and nothing changes."""
    root = fake[0]
    run_install(fake)
    backup = root / ".mde-mmrec-backup" / "files" / "src" / "main.py"
    backup.write_bytes(backup.read_bytes()[:10])
    before = snapshot(root)
    for attempt in (lambda: installer.uninstall(root), lambda: installer.uninstall(root, force=True),
                    lambda: run_install(fake)):
        with pytest.raises(MdeMmrecError, match=r"saved originals of src/main.py in .* are missing or damaged"):
            attempt()
        assert snapshot(root) == before
    backup.unlink()
    with pytest.raises(MdeMmrecError, match="saved originals of src/main.py"):
        installer.uninstall(root)


@pytest.mark.parametrize("manifest", ["[1, 2]", '{"plugin_version": "0.1.0", "added": {}}', "{not json"])
def test_a_damaged_install_manifest_is_a_clear_error_everywhere(fake, manifest):
    root = fake[0]
    run_install(fake)
    (root / installer.INSTALL_MANIFEST).write_text(manifest)
    before = snapshot(root)
    for attempt in (lambda: installer.uninstall(root), lambda: run_install(fake),
                    lambda: find_checkout(root)):      # what compare, grid, reproduce and bench call first
        with pytest.raises(MdeMmrecError, match=r"manifest.json is damaged \((not JSON|its 'modified' and 'added')"):
            attempt()
    assert snapshot(root) == before


_KILLED_AT_WRITE = """
import os, sys
from mde_mmrec import installer
root, plugin, patches, kill_at, command = sys.argv[1:6]
writes = [0]
real = installer._write_bytes

def write_then_die(path, data):
    writes[0] += 1
    if writes[0] == int(kill_at):          # half of this file written, then killed outright (no rollback)
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        os._exit(9)
    real(path, data)

installer._write_bytes = write_then_die
if command in ("install", "update"):
    installer.install(root, plugin_src=plugin, patches_dir=patches)
else:
    installer.uninstall(root)
print("finished", writes[0])
"""


def _killed_at(fake, root, kill_at: int, command: str) -> subprocess.CompletedProcess:
    _, plugin, patches, _ = fake
    return subprocess.run([sys.executable, "-c", _KILLED_AT_WRITE, str(root), str(plugin), str(patches),
                           str(kill_at), command], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(installer.__file__).parents[1])})


@pytest.mark.parametrize("command", ["install", "update", "uninstall"])
def test_an_install_or_uninstall_killed_at_any_write_is_rolled_back_by_the_next_run(fake, tmp_path, command):
    """SIGKILL cannot be rolled back by the run itself: the journal it keeps lets the next install or
    uninstall put every file back, whichever write the kill interrupted (the standards: never a
    half-modified MMRec checkout). The tools refuse the checkout until then."""
    if command in ("update", "uninstall"):
        run_install(fake)
    if command == "update":     # a newer plugin: install rewrites the backups and the plugin files
        (fake[1] / "models" / "toy.py").write_text("class TOY:\n    version = 2\n")
    start = snapshot(fake[0])
    total = int(_killed_at(fake, shutil.copytree(fake[0], tmp_path / "count"), 10 ** 6, command).stdout.split()[-1])
    assert total > 5
    for kill_at in range(1, total + 1):
        root = shutil.copytree(fake[0], tmp_path / f"killed-{kill_at}")
        assert _killed_at(fake, root, kill_at, command).returncode == 9
        with pytest.raises(MdeMmrecError, match="was interrupted; run `mde-mmrec install"):
            find_checkout(root, up_to_date=False)
        assert installer.recover_interrupted(root)
        assert snapshot(root) == start, f"killed at write {kill_at} of {total}"
        assert not installer.recover_interrupted(root)
    root = tmp_path / f"killed-{total}"
    _, plugin, patches, _ = fake
    assert installer.install(root, plugin_src=plugin, patches_dir=patches) in ("installed", "updated", "already installed")
    assert installer.uninstall(root) == "uninstalled"
