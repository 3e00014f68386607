"""`mde-mmrec reproduce table1|table2|fig2|readings`: the MDE paper's experiments on your data, in the paper's
layout, beside the paper's own numbers (``mde_mmrec/data/paper_results.csv``, copied from the paper); and a study of
the readings of the paper that ``src/models/mde.py`` makes switchable (docs/workflow.md).
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where it is used, so `mde-mmrec --help` stays fast
    import pandas as pd

from . import core, grid, mmrec, report
from .errors import MdeMmrecError

PAPER_CSV = "paper_results.csv"
PAPER_DATASETS = ("baby", "sports", "clothing")
TABLE1_MODELS = ("VBPR", "MMGCN", "GRCN", "DualGNN", "SLMRec", "BM3", "FREEDOM", "DRAGON", "MDE")
TABLE1_METRICS = ("recall@5", "precision@5", "map@5", "ndcg@5")  # the paper's column order
TABLE1_HEAD = ("REC", "PREC", "MAP", "NDCG")
SEEDS = 3  # the default number of seeds of every experiment
FIG2_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FIG2_METRICS = ("recall@20", "ndcg@20")
# The readings of the paper that src/models/mde.py makes switchable (docs/paper-to-code.md): default first
READINGS = {
    "align_users": (True, False),
    "tradeoff_grad": (True, False),
    "feature_projection": ("mlp", "linear"),
    "diff_form": ("bounded", "literal"),
    "cl_similarity": ("cosine", "dot"),
    "cl_negatives": ("batch", "all"),
    "homogeneous_residual": (True, False),
}
READINGS_DIFF_WEIGHTS = (1.0, 10.0, 100.0)  # sigma_diff
READINGS_CL_WEIGHTS = (0.01, 0.1)  # sigma_cl
SIGMAS = {"diff_weight": None, "cl_weight": None}  # the study's grid keys (each configuration sets them)


def paper_results() -> pd.DataFrame:
    """The paper's numbers (table, dataset, row, metric, value, source)."""
    import pandas as pd

    return pd.read_csv(Path(__file__).with_name("data") / PAPER_CSV)


def experiment_configs(name: str, models: list[str] | None = None) -> list[core.RunConfig]:
    """The configurations an experiment (table1, table2 or fig2: the command's choices) runs."""
    if name == "table1":
        return [core.RunConfig(m, m) for m in (models or TABLE1_MODELS)]
    if name == "table2":
        return [
            core.RunConfig("w/o MDA", "MDE", {"use_mda": False}),
            core.RunConfig("w/o MSA", "MDE", {"use_msa": False}),
            core.RunConfig("w/o NLT", "MDE", {"use_nlt": False}),
            core.RunConfig("MDE", "MDE"),
        ]
    return [core.RunConfig(f"A: w_t={w}", "MDE", {"fixed_text_weight": w}) for w in FIG2_WEIGHTS] + [  # fig2
        core.RunConfig("B: independent", "MDE", {"tradeoff": "independent"}),
        core.RunConfig("MDE", "MDE"),
    ]


def _ours(row: dict, key: str, n_seeds: int) -> str:
    """``mean ± std`` over a summary row's finished seeds, saying so where fewer than the ``n_seeds`` asked for."""
    text = report.spread(row[f"{key} mean"], row[f"{key} std"], row["n_seeds"])
    return text if row["n_seeds"] >= n_seeds else f"{text} ({row['n_seeds']} of {n_seeds} seeds)"


def experiment_table(first: str, columns: list[tuple], summary, status: dict, paper, n_seeds: int) -> str:
    """One row per configuration; ``columns``: (header, metric, None) for ours, (header, metric, data set) for
    the paper's on that data set. A configuration without a finished seed shows its status instead."""
    ours = {} if summary is None else summary.set_index("label").to_dict("index")
    theirs = {(p.row, p.metric, p.dataset): f"{p.value:.4f}" for p in paper.itertuples()}
    rows = []
    for label, state in status.items():
        cells = [_ours(ours[label], k, n_seeds) if label in ours else "-" for _, k, d in columns if d is None]
        if label not in ours:  # no finished seed: why
            cells[0] = state
        rows.append([label] + cells + [theirs.get((label, k, d), "-") for _, k, d in columns if d is not None])
    return report.markdown_table([first] + [h for h, _, _ in columns], rows)


def fig2_chart(summary: pd.DataFrame, path: Path, dataset: str) -> Path | None:
    """Variant A over w_t with std bars, variant B and MDE as lines (their values in the legend)."""
    if not report.charts_available():
        return None
    import matplotlib.pyplot as plt

    weights = {f"A: w_t={w}": w for w in FIG2_WEIGHTS}
    variant_a = summary[summary["label"].isin(weights)]  # the finished ones, in w_t order
    fig, axes = plt.subplots(1, len(FIG2_METRICS), figsize=(5 * len(FIG2_METRICS), 3.6))
    for ax, key in zip(axes, FIG2_METRICS):
        ax.errorbar(
            variant_a["label"].map(weights),
            variant_a[f"{key} mean"],
            yerr=variant_a[f"{key} std"],
            fmt="o-",
            capsize=3,
            color="#555555",
            label="A: fixed w_t",
            zorder=3,
        )
        means = summary.set_index("label")[f"{key} mean"]
        for label, style, color, width in (("MDE", "-", "tab:red", 4), ("B: independent", ":", "tab:blue", 2)):
            if label in means:
                ax.axhline(
                    means[label],
                    ls=style,
                    color=color,
                    lw=width,
                    alpha=0.7,
                    zorder=2,
                    label=f"{label} ({means[label]:.4f})",
                )
        ax.margins(y=0.1)  # every point, bar and line inside the frame, with room around them
        ax.set(
            xticks=FIG2_WEIGHTS,
            xlabel="w_t (text preference, variant A)",
            ylabel=f"test {key} (mean ± std over seeds)",
        )
    axes[0].legend(fontsize="small")
    fig.suptitle(f"Trade-off mechanisms on {dataset} (cf. the paper's Fig. 2, Baby)")
    return report.save_chart(fig, path)


def reproduce(
    experiment: str,
    checkout,
    dataset: str,
    seeds: list[int],
    out_dir: Path,
    epochs=None,
    models=None,
    paper_dataset: str | None = None,
    common: dict | None = None,
    runner=None,
    cuda: bool | None = None,
    echo=print,
    model_sets: dict | None = None,
    from_grid: str | None = None,
) -> tuple[Path, dict[str, str]]:
    """Run one experiment and write OUT/<experiment>.md (+ summary.csv, chart); returns the Markdown and the
    configurations that failed (not those that cannot run here). ``common``: overrides for every configuration;
    ``model_sets``: {model: overrides} (an experiment's own variant settings take precedence)."""
    planned = experiment_configs(experiment, models)
    configs = [
        core.RunConfig(c.label, c.model, {**(model_sets or {}).get(c.model, {}), **c.overrides}) for c in planned
    ]
    configs, skipped = core.runnable(configs, cuda, checkout)
    for label, why in skipped.items():
        echo(f"{label}: {why}")
    records, status = core.run_configs(
        checkout, dataset, configs, seeds, out_dir, epochs, common=common, runner=runner, echo=echo
    )
    order = [c.label for c in planned]
    status = {label: status.get(label) or skipped[label] for label in order}  # "ok", a failure, "not run: ..."
    summary = report.summarize(records, order=order) if records else None
    if records:
        summary.to_csv(out_dir / "summary.csv", index=False)
    paper = paper_results()
    paper = paper[paper["table"] == experiment]
    pd_name = paper_dataset or (dataset if dataset in PAPER_DATASETS else "baby")
    first, title, heads, metrics, paper_sets = {  # the first column, title, our metrics, the paper's data sets
        "table1": (
            "model",
            f"Table I (top-5) on {dataset}: ours beside the paper's {pd_name}",
            TABLE1_HEAD,
            TABLE1_METRICS,
            [pd_name],
        ),
        "table2": (
            "components",
            f"Table II (ablations, R@5) on {dataset}: ours beside the paper's",
            ["R@5"],
            ["recall@5"],
            PAPER_DATASETS,
        ),
        "fig2": ("variant", f"Fig. 2 (trade-off mechanisms) on {dataset}", FIG2_METRICS, FIG2_METRICS, []),
    }[experiment]
    ours = "ours" if experiment == "fig2" else f"ours, {dataset}"  # Fig. 2: no paper columns to tell apart
    columns = [(f"{h} ({ours})", k, None) for h, k in zip(heads, metrics)]
    columns += [(f"{h} (paper, {d})", k, d) for d in paper_sets for h, k in zip(heads, metrics)]
    body = experiment_table(first, columns, summary, status, paper, len(seeds))
    if experiment == "fig2" and "ok" in status.values() and fig2_chart(summary, out_dir / "fig2.png", dataset):
        body += "\n![Fig. 2](fig2.png)\n"
    runs = f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))})" + (f", at most {epochs} epochs" if epochs else "")
    notes = [
        f"ours: {report.method_note(records) if records else runs}",
        *report.settings_notes(records),
        sigma_note(from_grid),
        f"paper: {PAPER_CSV} (source column: {paper['source'].iloc[0]})"
        if experiment != "fig2"
        else "the paper gives Fig. 2 only as a chart (Baby); no numbers to set beside ours",
        f"command: `{core.command_line()}`",
    ]
    failed = {label: s for label, s in status.items() if s != "ok" and not s.startswith("not run")}
    return report.write_markdown(out_dir / f"{experiment}.md", title, body, notes), failed


def sigma_note(from_grid: str | None) -> str:
    """Where MDE's three loss weights in a reproduced table come from."""
    where = (
        f"the best point by validation Recall@20 of the grid in {from_grid} (listed above), as the paper chose them "
        "by grid search on the validation set"
        if from_grid
        else "MDE.yaml's first grid values unless set (listed above); the paper chose them by grid search on the "
        "validation set: `mde-mmrec grid --out G` finds them, `reproduce ... --from-grid G` uses them (at small "
        "sigma_diff MDA barely acts: see README, Paper to code)"
    )
    return f"MDE's sigma_cl, sigma_diff, sigma_reg (cl_weight, diff_weight, reg_weight) are {where}"


def best_grid_point(grid_dir: Path, dataset: str) -> dict:
    """The grid keys (seed aside) of the best point by mean validation Recall@20 of an MDE grid on ``dataset``."""
    results = core.results_log().read_results(grid_dir / "results.jsonl")
    records = [r for r in results if r.get("model") == "MDE" and not r.get("failed")]
    if not records:
        raise MdeMmrecError(
            f"--from-grid {grid_dir}: no finished MDE grid points in {grid_dir / 'results.jsonl'} "
            "(run `mde-mmrec grid --out` there first)"
        )
    datasets = sorted({r.get("dataset") for r in records})
    if datasets != [dataset]:
        raise MdeMmrecError(
            f"--from-grid {grid_dir}: its grid ran on {', '.join(map(str, datasets))}, not on "
            f"{dataset}; the paper tunes the sigmas per data set"
        )
    keys = [k for k in grid.grid_keys_of(records) if k != "seed"]
    return report.grid_table(records, keys).iloc[0][keys].to_dict()  # Python numbers, not numpy's


# ------------------------------------------------------------------------------------------ readings
def readings_arms(
    readings=tuple(READINGS), diff_weights=READINGS_DIFF_WEIGHTS, cl_weights=READINGS_CL_WEIGHTS
) -> dict[tuple[str, object], list[core.RunConfig]]:
    """{(reading, value): one configuration per grid point}, ("default", None) with every switch at its default."""
    defaults = {name: values[0] for name, values in READINGS.items()}
    arms = {("default", None): defaults}
    for name in readings:
        arms[(name, READINGS[name][1])] = {**defaults, name: READINGS[name][1]}
    return {
        arm: [
            core.RunConfig(
                f"{arm_name(*arm)} diff={d:g} cl={c:g}", "MDE", {**switches, "diff_weight": d, "cl_weight": c}
            )
            for d in diff_weights
            for c in cl_weights
        ]
        for arm, switches in arms.items()
    }


def arm_name(reading: str, value) -> str:
    return "default" if reading == "default" else f"{reading}={value}"


def best_by_validation(records: list[dict], labels: list[str], metric: str = "recall@20") -> str | None:
    """The label with the best mean validation ``metric`` over its seeds (the first on ties; None if none ran)."""
    values = {label: [r["best_valid"][metric] for r in records if r["label"] == label] for label in labels}
    means = {label: statistics.mean(v) for label, v in values.items() if v}  # the labels that ran
    return max(means, key=means.get) if means else None


def mean_std(values: list[float]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation (0 for one value), n); (None, None, 0) for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None, 0
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def verdict(default: tuple, other: tuple) -> str:
    """The other value against the default on (mean, std, n) over seeds."""
    (m0, s0, n0), (m1, s1, n1) = default, other
    if not n0 or not n1:
        return "not run"
    if min(n0, n1) < 2:
        return "fewer than 2 seeds: no verdict"
    if abs(m1 - m0) <= s0 + s1:
        return "within noise"
    return "other value better beyond seed noise" if m1 > m0 else "default better beyond seed noise"


_RUN_START = re.compile(r"Parameters:\['seed'\]=\((-?\d+),\)")  # quick_start's line before each seed's run
_EPOCH = re.compile(r"\bepoch (\d+) training\b")
_W_DIFF = re.compile(r"MDE: mean W_diff = \|P_v - P_t\| \(eq\. 8\): items (\S+?),")


def w_diff_trajectories(log_text: str) -> dict[int, dict[int, float]]:
    """{seed: {epoch (from 0): items' mean W_diff}} from one configuration's MMRec log (a seed's last run)."""
    runs, seed, epoch = {}, None, None
    for line in log_text.splitlines():
        if match := _RUN_START.search(line):
            seed, epoch = int(match[1]), None
            runs[seed] = {}
        elif match := _EPOCH.search(line):
            epoch = int(match[1])
        elif (match := _W_DIFF.search(line)) and seed is not None and epoch is not None:
            runs[seed][epoch] = float(match[1])
    return runs


def readings_rows(dataset: str, arms: dict, records: list[dict], logs: Path) -> list[dict]:
    """One row per arm (``readings_arms``) at its grid point chosen by validation, in readings.csv's columns."""
    recall = lambda row: (row["recall@20 mean"], row["recall@20 std"], row["n_seeds"])
    rows = []
    for (reading, value), configs in arms.items():
        best = best_by_validation(records, [c.label for c in configs])
        chosen = next((c for c in configs if c.label == best), None)
        ours = [r for r in records if r["label"] == best]
        trajectories = w_diff_trajectories(_read(logs / f"{chosen.slug}.log")) if chosen else {}
        row = {
            "dataset": dataset,
            "reading": reading,
            "value": "" if value is None else value,
            "diff_weight": chosen.overrides["diff_weight"] if chosen else None,
            "cl_weight": chosen.overrides["cl_weight"] if chosen else None,
            "n_seeds": len(ours),
            "valid recall@20": mean_std([r["best_valid"]["recall@20"] for r in ours])[0],
        }
        for key in ("recall@20", "ndcg@20"):
            row[f"{key} mean"], row[f"{key} std"], _ = mean_std([r["test"][key] for r in ours])
        row["best epoch"] = mean_std([r.get("best_epoch") for r in ours])[0]
        for name, epoch in (("epoch 0", 0), ("epoch 5", 5), ("best epoch", None)):
            at = [trajectories.get(r["seed"], {}).get(r.get("best_epoch") if epoch is None else epoch) for r in ours]
            row[f"W_diff {name}"] = mean_std(at)[0]
        row["verdict"] = "" if reading == "default" else verdict(recall(rows[0]), recall(row))  # the default first
        rows.append(row)
    return rows


def readings_markdown(rows: list[dict], n_seeds: int) -> str:
    """One table per data set: the default, then each reading's other value with its verdict."""
    columns = {
        "reading": lambda r: arm_name(r["reading"], r["value"]),
        "diff_weight": lambda r: "-" if r["diff_weight"] is None else f"{r['diff_weight']:g}",
        "cl_weight": lambda r: "-" if r["cl_weight"] is None else f"{r['cl_weight']:g}",
        "seeds": lambda r: str(r["n_seeds"]) + ("" if r["n_seeds"] >= n_seeds else f" of {n_seeds}"),
        "valid R@20": lambda r: report.fmt(r["valid recall@20"]),
        "test R@20": lambda r: report.spread(r["recall@20 mean"], r["recall@20 std"], r["n_seeds"]),
        "test NDCG@20": lambda r: report.spread(r["ndcg@20 mean"], r["ndcg@20 std"], r["n_seeds"]),
        "best epoch": lambda r: report.fmt(r["best epoch"], 1),
        "W_diff ep. 0": lambda r: report.fmt(r["W_diff epoch 0"]),
        "ep. 5": lambda r: report.fmt(r["W_diff epoch 5"]),
        "best ep.": lambda r: report.fmt(r["W_diff best epoch"]),
        "verdict (test R@20)": lambda r: r["verdict"] or "-",
    }
    tables = {r["dataset"]: [] for r in rows}
    for r in rows:
        tables[r["dataset"]].append([cell(r) for cell in columns.values()])
    return "\n".join(f"## {dataset}\n\n" + report.markdown_table(list(columns), t) for dataset, t in tables.items())


def readings_study(
    checkout,
    datasets: list[str],
    seeds: list[int],
    out_dir: Path,
    epochs=None,
    readings=tuple(READINGS),
    diff_weights=READINGS_DIFF_WEIGHTS,
    cl_weights=READINGS_CL_WEIGHTS,
    common: dict | None = None,
    runner=None,
    echo=print,
) -> tuple[Path, dict[str, str]]:
    """Run the readings study and write OUT/readings.md and .csv; (the Markdown, {"dataset: label": why failed})."""
    arms = readings_arms(readings, diff_weights, cl_weights)
    configs = [c for point in arms.values() for c in point]
    pinned = {}
    for dataset in datasets:  # every data set checked before any training
        # MDE.yaml's other grid keys (reg_weight) pinned once per data set, not once per configuration
        file_config = {**core.merged_config(checkout, "MDE", dataset), "model": "MDE"}
        pinned[dataset], notes = core.pin_grid(file_config, {**(common or {}), **SIGMAS})  # each config sets these
        for note in notes:
            echo(f"note: {dataset}: pinned {note}")
        core.prepare(checkout, dataset, configs, seeds, out_dir / dataset, epochs, pinned[dataset])
    rows, failed = [], {}
    for dataset in datasets:
        where = out_dir / dataset
        records, status = core.run_configs(
            checkout, dataset, configs, seeds, where, epochs, common=pinned[dataset], runner=runner, echo=echo
        )
        failed.update({f"{dataset}: {label}": why for label, why in status.items() if why != "ok"})
        rows += readings_rows(dataset, arms, records, where / "logs")
    import pandas as pd

    pd.DataFrame(rows).to_csv(out_dir / "readings.csv", index=False)  # out_dir: made by run_configs
    sigma_grid = " x ".join(
        f"{k} in {{{', '.join(f'{v:g}' for v in values)}}}" for k, values in zip(SIGMAS, (diff_weights, cl_weights))
    )
    notes = [
        "default: every switch at MDE.yaml's default ("
        + ", ".join(f"{k}={v[0]}" for k, v in READINGS.items())
        + "); each other row changes that one switch",
        f"each row's sigmas: the point of its own grid ({sigma_grid}) with the best mean validation Recall@20",
        f"test metrics at the epoch with the best validation Recall@20; mean ± sample std over seeds "
        f"{', '.join(map(str, seeds))}" + (f"; at most {epochs} epochs" if epochs else "; MMRec's early stopping"),
        "best epoch and W_diff: means over seeds; W_diff = items' mean |P_v - P_t| (eq. 8) after that epoch "
        "(MMRec's epoch index, from 0), from the runs' logs",
        "verdict: the other value's test Recall@20 against the default's; beyond seed noise when the means differ "
        "by more than the sum of the two standard deviations",
        *(f"FAILED {label}: {why}" for label, why in failed.items()),
        f"runs: {out_dir}/DATASET/runs/ (one results file per configuration), logs: {out_dir}/DATASET/logs/",
        f"command: `{core.command_line()}`",
    ]
    title = f"Readings of the paper on {', '.join(datasets)}"
    return report.write_markdown(out_dir / "readings.md", title, readings_markdown(rows, len(seeds)), notes), failed


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _run_readings(args: argparse.Namespace, checkout: Path, sets: dict, seeds: list[int]) -> tuple[Path, dict]:
    core.check_set_models(sets, {"MDE"}, "readings")
    common = {**sets.get(None, {}), **sets.get("MDE", {})}
    clash = sorted(set(common) & {*READINGS, *SIGMAS})
    if clash:
        raise MdeMmrecError(
            f"--set {', '.join(clash)}: the study sets these itself; choose readings with --readings and the "
            "sigma grid with --diff-weights / --cl-weights"
        )
    return readings_study(
        checkout,
        list(dict.fromkeys(args.dataset)),
        seeds,
        Path(args.out or f"results/readings-{'-'.join(args.dataset)}"),
        args.epochs,
        args.readings or tuple(READINGS),
        tuple(args.diff_weights or READINGS_DIFF_WEIGHTS),
        tuple(args.cl_weights or READINGS_CL_WEIGHTS),
        common=common,
    )


def _run_experiment(args: argparse.Namespace, checkout: Path, sets: dict, seeds: list[int]) -> tuple[Path, dict]:
    dataset = args.dataset[0]
    if args.experiment == "fig2":
        report.charts_available()
    core.check_set_models(sets, {c.model for c in experiment_configs(args.experiment, args.models)}, args.experiment)
    if args.from_grid:
        best = best_grid_point(Path(args.from_grid), dataset)
        clash = sorted(set(best) & (set(sets.get("MDE", {})) | set(sets.get(None, {}))))
        if clash:
            raise MdeMmrecError(f"--from-grid sets {', '.join(clash)}; do not also give them with --set")
        print(f"MDE at the best point of {args.from_grid}: {', '.join(f'{k}={v}' for k, v in best.items())}")
        sets["MDE"] = {**sets.get("MDE", {}), **best}
    return reproduce(
        args.experiment,
        checkout,
        dataset,
        seeds,
        Path(args.out or f"results/{args.experiment}-{dataset}"),
        args.epochs,
        args.models,
        args.paper_dataset,
        common=sets.get(None),
        model_sets={m: v for m, v in sets.items() if m is not None},
        from_grid=args.from_grid,
    )


def _cmd_reproduce(args: argparse.Namespace) -> int:
    readings = args.experiment == "readings"
    if args.models and args.experiment != "table1":
        raise MdeMmrecError(f"--models chooses table1's models; {args.experiment} runs MDE variants only")
    misplaced = (
        {"--from-grid": args.from_grid, "--paper-dataset": args.paper_dataset}
        if readings
        else {"--readings": args.readings, "--diff-weights": args.diff_weights, "--cl-weights": args.cl_weights}
    )
    given = [option for option, value in misplaced.items() if value]
    if given:
        why = "not for readings (each reading chooses its own sigmas)" if readings else "for readings only"
        raise MdeMmrecError(f"{', '.join(given)}: {why}")
    if not readings and len(args.dataset) > 1:
        raise MdeMmrecError(
            f"-d given {len(args.dataset)} times: {args.experiment} runs on one data set (readings takes several)"
        )
    checkout = mmrec.find_checkout(args.mmrec)
    seeds = core.seed_list(args.seeds or SEEDS, args.seed_values)
    md, failed = (_run_readings if readings else _run_experiment)(args, checkout, core.parse_sets(args.set), seeds)
    print(md.read_text(encoding="utf-8"))
    print(f"results in {md.parent}/" + (" (readings.md, readings.csv)" if readings else ""))
    for label, why in failed.items():
        print(f"FAILED {label}: {why}")
    return 1 if failed else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="the paper's Table I, Table II or Fig. 2 on your data; a study of its readings",
        description=__doc__.split("\n\n")[0],
        conflict_handler="resolve",  # -d below replaces add_run_args' own
    )
    p.add_argument("experiment", choices=["table1", "table2", "fig2", "readings"])
    core.add_run_args(p, "results/EXPERIMENT-DATASET (readings: results/readings-DATASET[-DATASET...])", SEEDS)
    p.add_argument(
        "-d",
        "--dataset",
        action="append",
        required=True,
        help="data set name (src/configs/dataset/NAME.yaml); readings: repeatable, one study per data set",
    )
    p.add_argument(
        "--readings",
        nargs="+",
        choices=list(READINGS),
        metavar="NAME",
        help=f"readings only: the switches to study (default: all: {' '.join(READINGS)})",
    )
    p.add_argument(
        "--diff-weights",
        type=float,
        nargs="+",
        help=f"readings only: sigma_diff grid (default: {' '.join(f'{v:g}' for v in READINGS_DIFF_WEIGHTS)})",
    )
    p.add_argument(
        "--cl-weights",
        type=float,
        nargs="+",
        help=f"readings only: sigma_cl grid (default: {' '.join(f'{v:g}' for v in READINGS_CL_WEIGHTS)})",
    )
    p.add_argument("--models", nargs="+", help=f"table1 only: a subset of {' '.join(TABLE1_MODELS)}")
    p.add_argument(
        "--from-grid",
        metavar="GRID_DIR",
        help="run MDE at the best point (by validation) of `mde-mmrec grid --out GRID_DIR` on the same "
        "data set, as the paper does",
    )
    p.add_argument(
        "--paper-dataset",
        choices=PAPER_DATASETS,
        help="which of the paper's data sets to set beside ours (default: -d if it is one, else baby)",
    )
    p.set_defaults(func=_cmd_reproduce)
