"""Tier 1: the `mde-mmrec` command line rejects bad arguments before doing anything."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_cli_rejects_zero_epochs_and_negative_seeds_before_doing_anything(capsys):
    from mde_mmrec.cli import main

    for argv in (
        ["compare", "--mmrec", "/nonexistent", "-d", "x", "-m", "MDE", "--epochs", "0"],
        ["make-data", "x", "--mmrec", "/nonexistent", "--seed", "-1"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--epochs: must be at least 1, got 0" in err and "--seed: must be at least 0, got -1" in err


def test_negative_seed_values_are_rejected_before_doing_anything(capsys):
    from mde_mmrec.cli import main

    for command in (["compare", "-d", "x"], ["grid", "-d", "x"], ["reproduce", "table2", "-d", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(command + ["--mmrec", "/nonexistent", "--seed-values", "1", "-2"])
        assert exit_info.value.code == 2
        assert "--seed-values: must be at least 0, got -2" in capsys.readouterr().err


def test_log_lines_say_when_they_are_warnings():
    import logging

    from mde_mmrec.cli import LogFormat

    record = lambda level: logging.LogRecord("mde_mmrec", level, __file__, 1, "the %s", ("message",), None)
    assert LogFormat().format(record(logging.INFO)).split(" ", 1)[1] == "the message"
    assert LogFormat().format(record(logging.WARNING)).split(" ", 1)[1] == "warning: the message"


def test_help_imports_no_heavy_package():
    """`mde-mmrec --help` answers at once: torch, pandas, scipy and matplotlib load only where a command uses them."""
    code = (
        "import sys\nfrom mde_mmrec import cli\ncli.build_parser().format_help()\n"
        "print(sorted({'torch', 'pandas', 'scipy', 'matplotlib', 'yaml'} & set(sys.modules)))"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
