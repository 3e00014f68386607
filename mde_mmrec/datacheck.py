"""`mde-mmrec check-data --mmrec PATH -d DATASET`: check a data set as main.py and the other commands will
(src/utils/data_checks.py), and describe it, without training anything. For a data set of your own before
its first run: errors name the file, the field and the fix; warnings say what MMRec would run on wrongly."""

from __future__ import annotations

import numpy as np

from . import core, mmrec
from .errors import MdeMmrecError


def describe(checkout, dataset: str) -> str:
    """A Markdown table of the data set as MMRec will see it: users and items (the largest id + 1), the
    interactions of each split, the training density, and each feature file's shape."""
    cfg = core.merged_config(checkout, "", dataset)
    inter = core.interaction_file(checkout, dataset, cfg=cfg)
    summary = mmrec.plugin_module("data_checks").interaction_summary(inter, cfg)  # read once, with the checks
    if summary is None:
        raise MdeMmrecError(
            f"the configuration of data set {dataset!r} lacks USER_ID_FIELD, ITEM_ID_FIELD or "
            f"inter_splitting_label (MMRec's overall.yaml and the data set's yaml set them)"
        )
    label = cfg["inter_splitting_label"]
    rows = [
        ("users (largest id + 1)", f"{summary.n_users:,}"),
        ("items (largest id + 1)", f"{summary.n_items:,}"),
        *[
            (f"{name} interactions ({label} {code})", f"{count:,}")
            for code, (name, count) in enumerate(zip(("training", "validation", "test"), summary.split_rows))
        ],
        ("training density", f"{summary.split_rows[0] / (summary.n_users * summary.n_items):.2e}"),
        ("training interactions per user (min / median / max)", " / ".join(f"{v:g}" for v in summary.per_user)),
    ]
    for key in ("vision_feature_file", "text_feature_file"):
        path = inter.parent / str(cfg.get(key))
        if cfg.get(key):
            array = np.load(path, mmap_mode="r") if path.is_file() else None
            shape = "missing" if array is None else f"{array.shape[0]:,} x {array.shape[1]:,} {array.dtype}"
            rows.append((f"{key} ({cfg[key]})", shape))
    return "\n".join([f"| data set {dataset} | |", "| --- | --- |"] + [f"| {name} | {value} |" for name, value in rows])


def _cmd_check_data(args) -> int:
    checkout = mmrec.mmrec_root(args.mmrec)
    core.check_model_exists(checkout, args.model)  # a misspelt -m would check for a model that does not exist
    warnings = core.check_dataset(checkout, args.dataset, args.model)  # raises on errors, logs warnings
    print(describe(checkout, args.dataset))
    print(
        f"\n{args.dataset}: no errors, MMRec can run {args.model} on it"
        + (f"; {len(warnings)} warning(s) above" if warnings else "; no warnings")
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check-data",
        help="check a data set as main.py will, and describe it (no training)",
        description="Check DATASET's interaction and feature files as main.py (patched) and the other commands "
        "check them before training: errors name the file, the field and the fix; warnings say what "
        "MMRec would run on without complaint but wrongly. Then print users, items, interactions "
        "per split, density and the feature files' shapes.",
    )
    p.add_argument("--mmrec", required=True, help="path to the MMRec checkout (patched or not)")
    p.add_argument("-d", "--dataset", required=True, help="data set name (src/configs/dataset/NAME.yaml)")
    p.add_argument(
        "-m",
        "--model",
        default="MDE",
        help="the model it is for (default MDE, which runs on one modality too); multimodal models "
        "need both feature files",
    )
    p.set_defaults(func=_cmd_check_data)
