"""`mde-mmrec grid`: MDE's sigma grid (or any model's grid) through MMRec's own grid loop; resumable,
shardable, summarised.

One MMRec process runs the whole grid; ``grid_points`` / ``plan`` select its points as the patched grid loop
does, to say beforehand what will be skipped and what will run. ``mde-mmrec grid-merge`` merges shards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
from pathlib import Path

from . import core, mmrec, report
from .errors import MdeMmrecError
from .runner import events_file, out_dir_lock

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- pure grid logic
def grid_points(keys: list[str], values: dict[str, list]) -> list[dict]:
    """Every grid point as {key: value}, in MMRec's order: itertools.product over ``keys`` (seed first)."""
    if not keys or keys[0] != "seed":
        raise ValueError("MMRec puts the seed first in every grid: keys must start with 'seed'")
    missing = [k for k in keys if not isinstance(values.get(k), list) or not values[k]]
    if missing:
        raise MdeMmrecError(f"grid key(s) {', '.join(missing)} need a non-empty list of values")
    params_of = core.results_log().params_of  # points in the form the results file holds
    return [params_of(keys, combo) for combo in itertools.product(*(values[k] for k in keys))]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """ "i/n" -> (i, n), 1 <= i <= n."""
    try:
        return core.results_log().parse_shard(text)
    except ValueError:
        raise MdeMmrecError(
            f"--shard {text}: write i/n with 1 <= i <= n, e.g. --shard 1/4 (the first of four shards)"
        ) from None


def slurm_shard(env=os.environ) -> tuple[int, int] | None:
    """The shard of a Slurm job array task (``sbatch --array``); None outside an array."""
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    try:
        task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
        index = task - int(env.get("SLURM_ARRAY_TASK_MIN", 0)) + 1
    except ValueError:
        raise MdeMmrecError(
            "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MIN must be whole "
            "numbers; give the shard with --shard i/n"
        ) from None
    if not 1 <= index <= count:
        raise MdeMmrecError(
            f"Slurm array task {task} is not one of {count} tasks from "
            f"{env.get('SLURM_ARRAY_TASK_MIN', 0)}: a job array for shards needs consecutive ids "
            "(sbatch --array=0-N); or give the shard with --shard i/n"
        )
    return index, count


def plan(
    points: list[dict], done: list[dict], shard: tuple[int, int] | None = None
) -> tuple[list[tuple[int, dict]], list[tuple[int, dict]]]:
    """(to_run, skipped): this shard's (index, point) pairs not in ``done`` and those in it, as MMRec selects."""
    mine = [(index, point) for index, point in enumerate(points) if not shard or index % shard[1] == shard[0] - 1]
    return [pair for pair in mine if pair[1] not in done], [pair for pair in mine if pair[1] in done]


def done_params(records: list[dict], model: str, dataset: str) -> list[dict]:
    return [r.get("params") for r in records if r.get("model") == model and r.get("dataset") == dataset]


# --------------------------------------------------------------------------------------------- running
def grid_spec(
    checkout: Path, model: str, dataset: str, sets: dict, seeds: list[int] | None
) -> tuple[list[str], dict[str, list], dict]:
    """(keys, values, plain overrides) of the grid to run: the model yaml's hyper_parameters, changed or
    extended by list values in ``sets`` (one value pins a grid key); other ``sets`` are plain overrides."""
    model_yaml = Path(checkout) / "src" / "configs" / "model" / f"{model}.yaml"
    model_cfg = mmrec.load_yaml(model_yaml)
    merged = core.merged_config(checkout, model, dataset)
    keys = ["seed"] + [k for k in model_cfg.get("hyper_parameters") or [] if k != "seed"]
    values = {k: merged.get(k) for k in keys}
    plain = {}
    for key, value in sets.items():
        if key == "seed":
            raise MdeMmrecError("choose seeds with --seeds N, not --set seed=...")
        if isinstance(value, list) and key not in model_cfg:  # a grid key must be one of the model's keys
            if key in merged:
                raise MdeMmrecError(
                    f"--set {key}={value}: {key} is set in configs/overall.yaml or the data set's "
                    f"yaml, not in {model_yaml}, and a grid key must be one of {model}'s keys: "
                    f"give one value" + (" (the number of epochs: --epochs N)" if key == "epochs" else "")
                )
            why = f"a grid key must be one of {model}'s keys in {model_yaml}"
            raise core.unknown_keys_error(f"--set {key}", [key], [k for k in model_cfg if k != "hyper_parameters"], why)
        if key not in merged:
            raise core.unknown_keys_error(f"--set {key}", [key], merged)
        if isinstance(value, list) and key not in keys:
            keys.append(key)
        (values if key in keys else plain)[key] = value
    values["seed"] = list(seeds) if seeds else merged.get("seed", core.DEFAULT_SEED)
    return keys, {key: value if isinstance(value, list) else [value] for key, value in values.items()}, plain


def run_grid(
    checkout,
    model: str,
    dataset: str,
    keys: list[str],
    values: dict,
    out_dir,
    plain: dict | None = None,
    epochs: int | None = None,
    shard=None,
    runner=None,
    echo=print,
) -> int:
    """Run the grid (or this shard of it) through MMRec's grid loop, skipping finished points; main.py's exit code."""
    with out_dir_lock(out_dir):  # one mde-mmrec run per results folder
        checkout, out_dir = Path(checkout), Path(out_dir)
        if any((out_dir / "runs").glob("*.jsonl")):
            raise MdeMmrecError(
                f"{out_dir} holds a comparison (runs/*.jsonl), whose results.jsonl a grid would "
                "mix with its own; choose another --out"
            )
        results_file = (out_dir / "results.jsonl").resolve()  # out_dir_lock has created the folder
        overrides = {**(plain or {}), **{k: values[k] for k in keys}}
        overrides.update(hyper_parameters=list(keys), results_file=str(results_file), resume=True)
        if shard:
            overrides["grid_shard"] = f"{shard[0]}/{shard[1]}"
        if epochs:
            overrides["epochs"] = int(epochs)
        settings = core.run_settings(checkout, model, dataset, overrides)
        core.check_settings(results_file, settings)  # more values per grid key may join a finished grid
        if runner is None:  # MMRec itself runs it: main.py's own checks (every grid point's values) first
            mmrec.check_commands(checkout, [(f"{model} grid", model, dataset, overrides)])
        points = grid_points(keys, values)
        done = done_params(core.finished_with_recorded_settings(results_file), model, dataset)
        to_run, skipped = plan(points, done, shard)
        where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        echo(
            f"grid of {len(points)} point(s) over {', '.join(keys)}{where}: {len(skipped)} already done, "
            f"{len(to_run)} to run"
        )
        for index, point in skipped:
            echo(f"  skip {index + 1}/{len(points)}: {core.show_params(point)} (in {results_file})")
        for index, point in to_run:
            echo(f"  run  {index + 1}/{len(points)}: {core.show_params(point)}")
        sidecar = core.settings_file(results_file)
        unvouched = 0 if sidecar.is_file() else len(core.results_log().read_results(results_file))
        if unvouched:
            echo(
                f"  {unvouched} finished run(s) in {results_file} without recorded settings ({sidecar.name}): "
                "main.py reuses those made with the same settings"
            )
        if not to_run:
            return 0
        log_path = out_dir / "grid.log"
        progress = core.Progress(1, core.n_epochs(checkout, model, dataset, epochs), echo)
        progress.begin(0, f"{model} grid", len(to_run), events_file(log_path))
        code, why = core.run_one(checkout, model, dataset, overrides, settings, log_path, progress, runner)
        if why:
            echo(
                f"MMRec {why}; finished points are kept in {results_file} (rerun to resume). Last lines of "
                f"{log_path}:\n{progress.last_lines()}"
            )
        return code


def summarize(records: list[dict], keys: list[str], out_dir: Path, title: str, charts: bool = True) -> Path:
    """summary.md / summary.csv (all points, best first) and heatmap_<a>_<b>.png per pair of grid keys, written
    into the existing folder ``out_dir``."""
    failed = [r for r in records if r.get("failed")]  # no result (NaN loss): listed, not ranked
    records = [r for r in records if not r.get("failed")]
    if not records:
        raise MdeMmrecError(f"no finished grid points to summarise in {out_dir}")
    sigma_keys = [k for k in keys if k != "seed"]
    table = report.grid_table(records, sigma_keys)
    best = table.iloc[0]  # the table's first row: best by the mean over the point's seeds
    table.to_csv(out_dir / "summary.csv", index=False)
    heat = report.heatmaps(table, sigma_keys, out_dir, "valid recall@20") if charts else []
    ties = int((table["valid recall@20"] == best["valid recall@20"]).sum()) - 1
    one_seed = "; one seed per point: rerun with --seeds N to see how much of the ranking is seed noise"
    text = (
        f"Best point by validation recall@20 (mean over its {int(best['n_seeds'])} seed(s)): "
        f"**{core.show_params({k: best[k] for k in sigma_keys})}** (valid {best['valid recall@20']:.4f}, "
        f"test recall@20 {best['test recall@20']:.4f}, ndcg@20 {best['test ndcg@20']:.4f}, "
        f"best validation after {best['epochs_to_best']:.1f} epochs)"
        + (f"; tied on validation with the next {ties} row(s) of the table" if ties else "")
        + (one_seed if int(table["n_seeds"].max()) == 1 else "")
        + "\n\n"
        f"{len(records)} finished run(s); rows: grid points (seeds averaged), sorted by validation "
        "recall@20.\n\n" + report.grid_markdown(table, sigma_keys)
    )
    if failed:
        text += "\nWithout a result (not ranked):\n" + "".join(
            f"- {core.show_params(r.get('params', {}))}: {r['failed']}\n" for r in failed
        )
    if heat:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in heat) + "\n"
    return report.write_markdown(out_dir / "summary.md", title, text)


def grid_keys_of(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r.get("params", {})))


# ------------------------------------------------------------------------------------------------ CLI
def _cmd_grid(args: argparse.Namespace) -> int:
    checkout = mmrec.find_checkout(args.mmrec)
    core.check_model(checkout, args.model)
    report.charts_available()
    sets = core.parse_sets(args.set)
    core.check_set_models(sets, [args.model], "this grid")
    merged_sets = dict(sets.get(None, {}), **sets.get(args.model, {}))
    core.check_dataset(checkout, args.dataset, args.model, merged_sets)
    keys, values, plain = grid_spec(
        checkout, args.model, args.dataset, merged_sets, core.seed_list(args.seeds, args.seed_values)
    )
    shard = parse_shard(args.shard) if args.shard else slurm_shard()
    if shard and not args.shard:
        print(f"Slurm job array task: shard {shard[0]}/{shard[1]}")
    out = Path(args.out or f"results/grid-{args.model}-{args.dataset}")
    code = run_grid(checkout, args.model, args.dataset, keys, values, out, plain, args.epochs, shard)
    results = core.results_log().read_results(out / "results.jsonl")
    records = [r for r in results if r.get("model") == args.model and r.get("dataset") == args.dataset]
    if any(not r.get("failed") for r in records):
        md = summarize(records, keys, out, f"{args.model} grid on {args.dataset}")
        print(md.read_text(encoding="utf-8"))
        heatmaps = ", heatmaps" if any(out.glob("heatmap_*.png")) else ""
        print(f"results in {out}/ (summary.md, summary.csv{heatmaps}, results.jsonl, grid.log)")
    return code


def _same_settings(results_files: list[Path]) -> dict | None:
    """The shards' common settings (None where one has no sidecar); an error where they differ."""
    sidecars = [core.settings_file(path) for path in results_files]
    missing = [sidecar for sidecar in sidecars if not sidecar.is_file()]
    if missing:
        log.warning(
            "%s has no %s: cannot check that it ran with the other shards' settings", missing[0].parent, missing[0].name
        )
        return None
    first, *rest = [json.loads(sidecar.read_text(encoding="utf-8")) for sidecar in sidecars]
    for path, other in zip(results_files[1:], rest):
        if other != first:
            raise MdeMmrecError(
                f"{path.parent} ran with other settings than {results_files[0].parent} ("
                f"{core.settings_difference(first, other)}): merging would rank points "
                "of different runs in one table; rerun the shard with the same settings"
            )
    return first


def _cmd_merge(args: argparse.Namespace) -> int:
    results_log = core.results_log()
    files = [Path(folder) / "results.jsonl" for folder in args.dirs]
    for path in files:
        if not path.is_file():
            raise MdeMmrecError(f"{path}: no results file (give the --out folders of the grid shards)")
    # a point run by two shards counts once
    records, repeated = results_log.unique_points([r for path in files for r in results_log.read_results(path)])
    if repeated:
        log.warning("%d point(s) are in more than one shard's results; each is counted once", repeated)
    models = sorted({(r.get("model"), r.get("dataset")) for r in records})
    if len(models) > 1:
        raise MdeMmrecError(f"the folders hold grids of different models / data sets: {models}")
    settings = _same_settings(files)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        core.record_settings(out / "results.jsonl", settings)
    results_log.write_records(out / "results.jsonl", records)
    model, dataset = models[0] if models else ("?", "?")
    md = summarize(records, grid_keys_of(records), out, f"{model} grid on {dataset} (merged)")
    print(md.read_text(encoding="utf-8"))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "grid", help="resumable, shardable grid search through MMRec's grid loop", description=__doc__.split("\n\n")[0]
    )
    core.add_run_args(p, "results/grid-MODEL-DATASET")
    p.add_argument("-m", "--model", default="MDE", help="model (default MDE)")
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run every N-th point, starting at the I-th (default: in a Slurm job array, the array task's "
        "shard: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1 of SLURM_ARRAY_TASK_COUNT)",
    )
    p.epilog = "grid values: --set cl_weight=[0.01,0.1] (a list is a grid dimension; a single value pins it)"
    p.set_defaults(func=_cmd_grid)

    m = subparsers.add_parser("grid-merge", help="merge the results folders of grid shards and summarise")
    m.add_argument("dirs", nargs="+", help="the --out folders of the shards")
    m.add_argument("--out", required=True, help="folder for the merged results and summary")
    m.set_defaults(func=_cmd_merge)
