"""Helpers for the tier-2 tests that run code inside an MMRec checkout (in a subprocess, with the
checkout's src/ as working directory, as main.py runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from mde_mmrec.mmrec import plugin_module


def run_in_src(checkout: Path, code: str, env: dict | None = None, timeout: int = 300):
    """Run a Python snippet in CHECKOUT/src (sys.path[0] = src, like main.py); returns the result, raising
    with the snippet's output when it fails."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=Path(checkout) / "src",
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"snippet failed in {checkout}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def merged_config(checkout: Path, model: str, dataset: str) -> dict:
    """overall + dataset + model yaml, merged the way MMRec's Config merges them."""
    loader = plugin_module("cli_overrides").MMRecLoader
    merged, grid = {}, []
    configs = Path(checkout) / "src" / "configs"
    for path in (
        configs / "overall.yaml",
        configs / "dataset" / f"{dataset}.yaml",
        configs / "model" / f"{model}.yaml",
    ):
        if path.is_file():
            data = yaml.load(path.read_text(), Loader=loader) or {}
            grid += data.get("hyper_parameters") or []
            merged.update(data)
    merged["hyper_parameters"] = grid
    return merged


def single_point(checkout: Path, model: str, dataset: str) -> dict:
    """Overrides that pin every grid key to its first configured value: one grid point."""
    config = merged_config(checkout, model, dataset)
    return {
        key: config[key][0]
        for key in dict.fromkeys(config["hyper_parameters"])
        if isinstance(config.get(key), list) and len(config[key]) > 1
    }
