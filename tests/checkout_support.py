"""A stand-in MMRec checkout for the tier-1 tests of the tools (compare's checks, run_configs, grid): only
the config files, the model file and the interaction file that those checks look for (written by us; no
MMRec code)."""

from __future__ import annotations

from pathlib import Path


def standin_checkout(
    root: Path,
    model: str = "BPR",
    model_yaml: str = "hyper_parameters: ['reg_weight']\nreg_weight: [0.1, 0.01]\n",
    interactions: str = "userID\titemID\tx_label\n0\t0\t0\n",
) -> Path:
    cfg = root / "src" / "configs"
    (cfg / "model").mkdir(parents=True)
    (cfg / "dataset").mkdir()
    (cfg / "overall.yaml").write_text("seed: [999]\nepochs: 1000\nhyper_parameters: ['seed']\n")
    (cfg / "dataset" / "tiny.yaml").write_text("inter_file_name: 'tiny.inter'\n")
    (cfg / "model" / f"{model}.yaml").write_text(model_yaml)
    (root / "src" / "models").mkdir()
    (root / "src" / "models" / f"{model.lower()}.py").write_text("")
    (root / "data" / "tiny").mkdir(parents=True)
    (root / "data" / "tiny" / "tiny.inter").write_text(interactions)
    return root
