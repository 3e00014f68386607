"""`mde-mmrec demo --mmrec PATH`: the first thing to run after cloning MMRec.

Installs the plugin into the checkout if it is not there yet, writes the embedded synthetic data set
``tiny`` if it is missing, trains MDE and a quick baseline for a few epochs through MMRec's own training
loop, and prints their test metrics side by side. About 20 seconds on two CPU cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import compare, core, installer, mmrec, report
from .errors import MdeMmrecError, positive_int
from .synthetic import dataset_files, make_dataset

DEMO_DATASET = "tiny"
DEMO_OUT = "results/demo"


def ensure_installed(path) -> Path:
    """The checkout's root, with this mde-mmrec's plugin installed (installs or updates it when needed)."""
    root = mmrec.checkout_root(path)  # the clear "not an MMRec checkout" error
    installed = (root / mmrec.PLUGIN_INFO).is_file()
    if (root / mmrec.SWITCH_MARKER).exists() or not installed or not mmrec.is_up_to_date(root):
        print(f"{'updating' if installed else 'installing'} the mde-mmrec plugin in {root} ...")
        installer.install(root)
    return mmrec.find_checkout(root)


def run_demo(
    path, epochs: int = 5, baseline: str = "LightGCN", out=None, seed: int = core.DEFAULT_SEED, echo=print
) -> list[dict]:
    root = ensure_installed(path)
    if not all(f.is_file() for f in dataset_files(root, DEMO_DATASET).values()):
        make_dataset(root, DEMO_DATASET, preset="tiny", seed=0)
    out = Path(out or DEMO_OUT)
    configs = [core.RunConfig("MDE", "MDE"), core.RunConfig(baseline, baseline)]
    try:
        records, status = core.run_configs(root, DEMO_DATASET, configs, [seed], out, epochs=epochs, echo=echo)
    except core.OtherSettingsError:  # an earlier demo with other settings (or plugin): run anew
        echo(
            f"earlier demo results in {(out / 'runs').resolve()} were made with other settings or record none; "
            "running again"
        )
        for runs in out.glob("runs/*.jsonl"):
            for path in (runs, core.settings_file(runs)):
                path.unlink(missing_ok=True)
        records, status = core.run_configs(root, DEMO_DATASET, configs, [seed], out, epochs=epochs, echo=echo)
    failed = {k: v for k, v in status.items() if v != "ok"}
    if failed:
        raise MdeMmrecError("demo run failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return records


def _cmd_demo(args: argparse.Namespace) -> int:
    records = run_demo(args.mmrec, args.epochs, args.baseline, args.out)
    out = Path(args.out or DEMO_OUT)
    status = dict.fromkeys((report.label_of(r) for r in records), "ok")
    title = f"mde-mmrec demo on the synthetic data set '{DEMO_DATASET}'"
    md = compare.write_comparison(records, status, out, title, core.command_line(), chart=False)
    print(f"\n{md.read_text(encoding='utf-8')}")
    print(f"results in {out}/ (summary.md, summary.csv, results.jsonl, runs/, logs/)")
    dragon = core.why_not_runnable("DRAGON", cuda=False, checkout=Path(args.mmrec))
    first = f"; first: {dragon}" if dragon else ""
    print(
        f"Next: mde-mmrec compare --mmrec {args.mmrec} -d {DEMO_DATASET} -m MDE FREEDOM DRAGON --seeds 3 "
        f"(about 45 s on 2 idle CPU cores: each seed trains until early stopping{first}), or a data set of "
        f"Amazon Baby's shape: mde-mmrec make-data synthetic_baby --mmrec {args.mmrec}"
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="install if needed, make 'tiny', train MDE and a baseline briefly",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--mmrec", required=True, help="path to your MMRec clone")
    p.add_argument("--epochs", type=positive_int, default=5, help="epochs per model (default 5)")
    p.add_argument("--baseline", default="LightGCN", help="baseline model (default LightGCN)")
    p.add_argument("--out", default=None, help=f"results folder (default {DEMO_OUT})")
    p.set_defaults(func=_cmd_demo)
