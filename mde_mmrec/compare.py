"""`mde-mmrec compare`: several models, several seeds, the same data, through MMRec; one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import core, mmrec, report
from .errors import MdeMmrecError


def write_comparison(
    records: list[dict], status: dict[str, str], out_dir: Path, title: str, command: str = "", chart: bool = True
) -> Path:
    """summary.md / summary.csv (mean ± std over seeds) and chart.png; returns the Markdown path."""
    notes = [f"{label}: {s}" for label, s in status.items() if s != "ok"]
    if not records:
        raise MdeMmrecError("no configuration finished a run: " + "; ".join(notes or ["no results"]))
    notes += [report.method_note(records, bold=len({report.label_of(r) for r in records}) > 1)]
    notes += report.settings_notes(records) + ([f"command: `{command}`"] if command else [])
    summary = report.summarize(records, order=list(status))
    md, _ = report.write_summary(summary, out_dir, title=title, notes=notes)
    stale = Path(out_dir) / "chart.png"
    if not (chart and report.bar_chart(summary, stale, title=title)) and stale.is_file():
        stale.unlink()  # an earlier run's chart would not match the table
    return md


def _cmd_compare(args: argparse.Namespace) -> int:
    checkout = mmrec.find_checkout(args.mmrec)
    report.charts_available()
    sets = core.parse_sets(args.set)
    core.check_set_models(sets, args.models, "this comparison")
    configs = [core.RunConfig(m, m, dict(sets.get(m, {}))) for m in args.models]
    seeds = core.seed_list(args.seeds, args.seed_values)
    out = Path(args.out or f"results/compare-{args.dataset}")
    records, status = core.run_configs(checkout, args.dataset, configs, seeds, out, args.epochs, common=sets.get(None))
    md = write_comparison(
        records, status, out, f"{args.dataset}: {', '.join(args.models)}, {len(seeds)} seed(s)", core.command_line()
    )
    print(md.read_text(encoding="utf-8"))
    chart = ", chart.png" if (out / "chart.png").is_file() else ""
    print(f"results in {out}/ (summary.md, summary.csv{chart}, results.jsonl, runs/, logs/)")
    return 0 if all(s == "ok" for s in status.values()) else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="run models side by side over seeds; table and chart", description=__doc__.split("\n\n")[0]
    )
    core.add_run_args(p, "results/compare-DATASET")
    p.add_argument("-m", "--models", nargs="+", required=True, help="models, e.g. MDE FREEDOM DRAGON")
    p.set_defaults(func=_cmd_compare)
