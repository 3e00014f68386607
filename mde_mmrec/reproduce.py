"""`mde-mmrec reproduce table1|table2|fig2`: the MDE paper's experiments on your data, in the paper's
layout, beside the paper's own numbers (``mde_mmrec/data/paper_results.csv``, copied from the paper).

* table1: MDE and the baselines of Table I, top-5 Recall / Precision / MAP / NDCG.
* table2: MDE and its ablations w/o MDA, w/o MSA, w/o NLT (``use_mda`` / ``use_msa`` / ``use_nlt`` =
  False), Recall@5.
* fig2: the trade-off analysis: variant A, one fixed text preference w_t = 0.1 ... 0.9 for all nodes
  (``fixed_text_weight``), variant B, node-level independent trade-off weights (``tradeoff=independent``),
  and full MDE. The paper gives Fig. 2 only as a chart, so only measured values are reported.

Every configuration runs through ``core.run_configs`` (MMRec's own training loop, same seeds, resumable).
"""

from __future__ import annotations

import argparse
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
FIG2_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FIG2_METRICS = ("recall@20", "ndcg@20")


def paper_results() -> pd.DataFrame:
    """The paper's numbers (table, dataset, row, metric, value, source)."""
    import pandas as pd

    return pd.read_csv(Path(__file__).with_name("data") / PAPER_CSV)


def experiment_configs(name: str, models: list[str] | None = None) -> list[core.RunConfig]:
    """The configurations an experiment runs."""
    if name == "table1":
        return [core.RunConfig(m, m) for m in (models or TABLE1_MODELS)]
    if name == "table2":
        return [
            core.RunConfig("w/o MDA", "MDE", {"use_mda": False}),
            core.RunConfig("w/o MSA", "MDE", {"use_msa": False}),
            core.RunConfig("w/o NLT", "MDE", {"use_nlt": False}),
            core.RunConfig("MDE", "MDE"),
        ]
    if name == "fig2":
        return [core.RunConfig(f"A: w_t={w}", "MDE", {"fixed_text_weight": w}) for w in FIG2_WEIGHTS] + [
            core.RunConfig("B: independent", "MDE", {"tradeoff": "independent"}),
            core.RunConfig("MDE", "MDE"),
        ]
    raise MdeMmrecError(f"unknown experiment {name!r}: choose table1, table2 or fig2")


def _cell(summary: pd.DataFrame, label: str, key: str):
    row = summary[summary["label"] == label]
    if row.empty:
        return None, None
    return row.iloc[0][f"{key} mean"], row.iloc[0][f"{key} std"]


def _ours(summary, label, key, n_seeds) -> str:
    """``mean ± std`` over the label's finished seeds, saying so where fewer than the ``n_seeds`` asked for."""
    mean, std = _cell(summary, label, key)
    if mean is None:
        return "-"
    done = int(summary[summary["label"] == label].iloc[0]["n_seeds"])
    text = f"{mean:.4f} ± {std:.4f}" if done > 1 else f"{mean:.4f}"
    return text if done >= n_seeds else f"{text} ({done} of {n_seeds} seeds)"


def table1_markdown(
    summary: pd.DataFrame, status: dict, paper: pd.DataFrame, dataset: str, paper_dataset: str, n_seeds: int
) -> str:
    """Rows: Table I's models; columns: ours (REC PREC MAP NDCG @5) then the paper's on paper_dataset."""
    p = paper[(paper["table"] == "table1") & (paper["dataset"] == paper_dataset)]
    header = (
        ["model"]
        + [f"{h} (ours, {dataset})" for h in TABLE1_HEAD]
        + [f"{h} (paper, {paper_dataset})" for h in TABLE1_HEAD]
    )
    rows = []
    for label in status:
        ours = [_ours(summary, label, k, n_seeds) for k in TABLE1_METRICS]
        if status[label] != "ok" and ours[0] == "-":
            ours = [status[label]] + ["-"] * 3
        theirs = [p[(p["row"] == label) & (p["metric"] == k)]["value"] for k in TABLE1_METRICS]
        rows.append([label] + ours + [f"{v.iloc[0]:.4f}" if len(v) else "-" for v in theirs])
    return report.markdown_table(header, rows)


def table2_markdown(summary: pd.DataFrame, status: dict, paper: pd.DataFrame, dataset: str, n_seeds: int) -> str:
    p = paper[paper["table"] == "table2"]
    header = ["components", f"R@5 (ours, {dataset})"] + [f"R@5 (paper, {d})" for d in PAPER_DATASETS]
    rows = []
    for label in status:
        ours = _ours(summary, label, "recall@5", n_seeds)
        if ours == "-" and status[label] != "ok":
            ours = status[label]
        theirs = [p[(p["row"] == label) & (p["dataset"] == d)]["value"] for d in PAPER_DATASETS]
        rows.append([label, ours] + [f"{v.iloc[0]:.4f}" if len(v) else "-" for v in theirs])
    return report.markdown_table(header, rows)


def fig2_markdown(summary: pd.DataFrame, status: dict, n_seeds: int) -> str:
    header = ["variant"] + [f"{k} (ours)" for k in FIG2_METRICS]
    rows = [
        [label] + [_ours(summary, label, k, n_seeds) if status[label] == "ok" else status[label] for k in FIG2_METRICS]
        for label in status
    ]
    return report.markdown_table(header, rows)


def fig2_chart(summary: pd.DataFrame, path: Path, dataset: str) -> Path | None:
    """Points with std bars: variant A over w_t; dotted line: variant B; wide solid line: MDE (one panel per
    metric; the lines' values are in the legend, so equal lines stay readable)."""
    plt = report.pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(FIG2_METRICS), figsize=(5 * len(FIG2_METRICS), 3.6))
    a_labels = [f"A: w_t={w}" for w in FIG2_WEIGHTS]
    for ax, key in zip(axes, FIG2_METRICS):
        xs, ys, es = [], [], []
        for w, label in zip(FIG2_WEIGHTS, a_labels):
            mean, std = _cell(summary, label, key)
            if mean is not None:
                xs.append(w), ys.append(mean), es.append(std)
        ax.errorbar(xs, ys, yerr=es, fmt="o-", capsize=3, color="#555555", label="A: fixed w_t", zorder=3)
        ax.set_xticks(FIG2_WEIGHTS)
        values = [y + e for y, e in zip(ys, es)] + [y - e for y, e in zip(ys, es)]
        for label, style, color, width in (("MDE", "-", "tab:red", 4), ("B: independent", ":", "tab:blue", 2)):
            mean, _ = _cell(summary, label, key)
            if mean is not None:
                values.append(mean)
                ax.axhline(
                    mean,
                    linestyle=style,
                    color=color,
                    linewidth=width,
                    alpha=0.7,
                    zorder=2,
                    label=f"{label} ({mean:.4f})",
                )
        if values:  # every point and line inside the frame, with room around them
            pad = 0.1 * (max(values) - min(values)) or 0.01
            ax.set_ylim(min(values) - pad, max(values) + pad)
        ax.set_xlabel("w_t (text preference, variant A)")
        ax.set_ylabel(f"test {key} (mean ± std over seeds)")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"Trade-off mechanisms on {dataset} (cf. the paper's Fig. 2, Baby)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def reproduce(
    experiment: str,
    checkout,
    dataset: str,
    seeds: list[int],
    out_dir,
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
    configurations that failed (label: why; configurations skipped by design, e.g. needing CUDA, are not).
    ``common``: overrides for every configuration; ``model_sets``: {model: overrides} for that model's
    configurations (an experiment's own variant settings, e.g. use_mda=False, take precedence);
    ``from_grid``: the grid folder whose best point ``model_sets`` carries for MDE (said so in the notes)."""
    configs = [
        core.RunConfig(c.label, c.model, {**(model_sets or {}).get(c.model, {}), **c.overrides})
        for c in experiment_configs(experiment, models)
    ]
    configs, skipped = core.runnable(configs, core.cuda_available() if cuda is None else cuda, checkout)
    for label, why in skipped.items():
        echo(f"{label}: {why}")
    out_dir = Path(out_dir)
    records, status = core.run_configs(
        checkout, dataset, configs, seeds, out_dir, epochs, common=common, runner=runner, echo=echo
    )
    order = [c.label for c in experiment_configs(experiment, models)]
    status = {label: status.get(label) or skipped[label] for label in order}  # "ok", a failure, "not run: ..."
    import pandas as pd

    summary = report.summarize(records, order=order) if records else pd.DataFrame(columns=["label"])
    if records:
        summary.to_csv(out_dir / "summary.csv", index=False)
    n_seeds = len(seeds)
    paper = paper_results()
    runs = f"{n_seeds} seed(s) ({', '.join(map(str, seeds))})" + (f", at most {epochs} epochs" if epochs else "")
    if experiment == "table1":
        pd_name = paper_dataset or (dataset if dataset in PAPER_DATASETS else "baby")
        body = table1_markdown(summary, status, paper, dataset, pd_name, n_seeds)
        title = f"Table I (top-5) on {dataset}: ours beside the paper's {pd_name}"
    elif experiment == "table2":
        body = table2_markdown(summary, status, paper, dataset, n_seeds)
        title = f"Table II (ablations, R@5) on {dataset}: ours beside the paper's"
    else:
        body = fig2_markdown(summary, status, n_seeds)
        title = f"Fig. 2 (trade-off mechanisms) on {dataset}"
        if any(s == "ok" for s in status.values()) and fig2_chart(summary, out_dir / "fig2.png", dataset):
            body += "\n![Fig. 2](fig2.png)\n"
    notes = [
        f"ours: {report.method_note(records)}" if records else f"ours: {runs}",
        *report.settings_notes(records),
        sigma_note(from_grid),
        f"paper: {PAPER_CSV} (source column: {paper['source'].iloc[0] if experiment == 'table1' else paper['source'].iloc[-1]})"
        if experiment != "fig2"
        else "the paper gives Fig. 2 only as a chart (Baby); no numbers to set beside ours",
        f"command: `{core.command_line()}`",
    ]
    text = f"# {title}\n\n{body}\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    path = out_dir / f"{experiment}.md"
    path.write_text(text, encoding="utf-8")
    failed = {label: s for label, s in status.items() if s != "ok" and not s.startswith("not run")}
    return path, failed


def sigma_note(from_grid: str | None) -> str:
    """Where MDE's three loss weights in a reproduced table come from."""
    if from_grid:
        return (
            f"MDE's sigma_cl, sigma_diff, sigma_reg (cl_weight, diff_weight, reg_weight) are the best point by "
            f"validation Recall@20 of the grid in {from_grid} (listed above), as the paper chose them by grid "
            "search on the validation set"
        )
    return (
        "MDE's sigma_cl, sigma_diff, sigma_reg (cl_weight, diff_weight, reg_weight) are MDE.yaml's first grid "
        "values unless set (listed above); the paper chose them by grid search on the validation set: "
        "`mde-mmrec grid --out G` finds them, `reproduce ... --from-grid G` uses them (at small sigma_diff "
        "MDA barely acts: see README, Paper to code)"
    )


def best_grid_point(grid_dir: Path, dataset: str) -> dict:
    """The grid keys (seed aside) of the best point by mean validation Recall@20 of an MDE grid run with
    ``mde-mmrec grid --out GRID_DIR`` on ``dataset`` (the paper: sigmas chosen on the validation set)."""
    records = [
        r
        for r in core.results_log().read_results(grid_dir / "results.jsonl")
        if r.get("model") == "MDE" and not r.get("failed")
    ]
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
    best = report.grid_table(records, keys).iloc[0]
    return {k: best[k].item() if hasattr(best[k], "item") else best[k] for k in keys}


def _cmd_reproduce(args: argparse.Namespace) -> int:
    if args.models and args.experiment != "table1":
        raise MdeMmrecError(f"--models chooses table1's models; {args.experiment} runs MDE variants only")
    checkout = mmrec.find_checkout(args.mmrec)
    if args.experiment == "fig2":
        report.charts_available()
    sets = core.parse_sets(args.set)
    core.check_set_models(sets, {c.model for c in experiment_configs(args.experiment, args.models)}, args.experiment)
    if args.from_grid:
        best = best_grid_point(Path(args.from_grid), args.dataset)
        clash = sorted(set(best) & (set(sets.get("MDE", {})) | set(sets.get(None, {}))))
        if clash:
            raise MdeMmrecError(f"--from-grid sets {', '.join(clash)}; do not also give them with --set")
        print(f"MDE at the best point of {args.from_grid}: {', '.join(f'{k}={v}' for k, v in best.items())}")
        sets["MDE"] = {**sets.get("MDE", {}), **best}
    seeds = core.seed_list(args.seeds, args.seed_values)
    out = Path(args.out or f"results/{args.experiment}-{args.dataset}")
    md, failed = reproduce(
        args.experiment,
        checkout,
        args.dataset,
        seeds,
        out,
        args.epochs,
        args.models,
        args.paper_dataset,
        common=sets.get(None),
        model_sets={m: v for m, v in sets.items() if m is not None},
        from_grid=args.from_grid,
    )
    print(md.read_text(encoding="utf-8"))
    print(f"results in {out}/")
    for label, why in failed.items():
        print(f"FAILED {label}: {why}")
    return 1 if failed else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="the paper's Table I, Table II or Fig. 2 on your data", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("experiment", choices=["table1", "table2", "fig2"])
    core.add_run_args(p, "results/EXPERIMENT-DATASET")
    p.add_argument("--models", nargs="+", default=None, help=f"table1 only: a subset of {' '.join(TABLE1_MODELS)}")
    p.add_argument(
        "--from-grid",
        metavar="GRID_DIR",
        default=None,
        help="run MDE at the best point (by validation) of `mde-mmrec grid --out GRID_DIR` on the same "
        "data set, as the paper does",
    )
    p.add_argument(
        "--paper-dataset",
        choices=PAPER_DATASETS,
        default=None,
        help="which of the paper's data sets to set beside ours (default: -d if it is one, else baby)",
    )
    p.set_defaults(func=_cmd_reproduce)
