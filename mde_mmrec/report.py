"""Tables and charts from results records (the JSON lines MMRec writes through the plugin's patches).

Pure functions of the records, so they are tested without MMRec. A record is one finished grid point:
``{"model", "dataset", "params", "seed", "best_epoch", "best_valid": {"recall@20": ...}, "test": {...},
"s_per_epoch", ...}``; the workflow commands add ``"label"`` (the configuration's name, e.g. "MDE w/o MDA").
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where it is used, so `mde-mmrec --help` stays fast
    import pandas as pd

from .errors import MdeMmrecError

log = logging.getLogger(__name__)

METRIC_NAMES = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "map": "MAP"}
KS = (5, 10, 20)
METRIC_KEYS = [f"{m}@{k}" for m in METRIC_NAMES for k in KS]  # in the order tables show them


def metric_label(key: str) -> str:
    """``recall@20`` -> ``Recall@20`` (as the tables write it)."""
    name, _, k = key.partition("@")
    return f"{METRIC_NAMES.get(name, name)}@{k}"


def label_of(record: dict) -> str:
    return record.get("label") or record["model"]


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record: label, model, dataset, seed, epochs_to_best, s_per_epoch, every param as ``p.<key>``,
    the test metrics and the validation ones as ``valid.<metric>``."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "label": label_of(r),
                "model": r.get("model"),
                "dataset": r.get("dataset"),
                "seed": r.get("seed"),
                # the epochs trained when the best validation score was reached (MMRec's best epoch counts from 0)
                "epochs_to_best": None if r.get("best_epoch") is None else r["best_epoch"] + 1,
                "s_per_epoch": r.get("s_per_epoch"),
                **{f"p.{k}": tuple(v) if isinstance(v, list) else v for k, v in (r.get("params") or {}).items()},
                **(r.get("test") or {}),
                **{f"valid.{k}": v for k, v in (r.get("best_valid") or {}).items()},
            }
            for r in records
        ]
    )


def summarize(records: list[dict], order: list[str] | None = None) -> pd.DataFrame:
    """Mean and sample standard deviation (0 with one seed) over seeds, one row per label (in ``order``)."""
    if not records:
        raise MdeMmrecError("no results to summarise (the results file is empty or missing)")
    frame = records_frame(records)
    missing = [k for k in METRIC_KEYS if k not in frame.columns]
    if missing:
        raise MdeMmrecError(
            f"results lack the metrics {', '.join(missing)} (set topk/metrics in configs/overall.yaml to include them)"
        )
    groups = frame.groupby("label", sort=False)
    summary = groups.agg(model=("model", "first"), n_seeds=("seed", "nunique"))
    for k in METRIC_KEYS:
        summary[f"{k} mean"] = groups[k].mean()
        summary[f"{k} std"] = groups[k].std(ddof=1).fillna(0.0)  # 0, not NaN, for one seed
    summary[["epochs_to_best", "s_per_epoch"]] = groups[["epochs_to_best", "s_per_epoch"]].mean()
    first = [label for label in order or () if label in summary.index]  # those in ``order``, then the others
    return summary.reindex(first + [label for label in summary.index if label not in first]).reset_index()


def fmt(value, digits=4) -> str:
    """A number for a table: ``digits`` decimals for a float, as is for an int, "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmt_seconds(value) -> str:
    """Seconds with 3 significant digits, so a 0.035 s epoch on ``tiny`` and a 66.5 s one read alike."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}" if value < 999.5 else f"{value:.0f}"  # not 1e+03


def spread(mean, std, n: int) -> str:
    """``mean ± std`` over ``n`` seeds: the mean alone for one seed, "-" for none."""
    if not n:
        return "-"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table (cells formatted with 4 decimals for floats)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def method_note(records: list[dict], bold: bool = False) -> str:
    """How the numbers of a comparison table were obtained, in one sentence."""
    seeds = sorted({r.get("seed") for r in records} - {None})
    settings = [r.get("settings") or {} for r in records]
    epochs = {(r.get("overrides") or {}).get("epochs") or s.get("epochs") for r, s in zip(records, settings)}
    metric = next((str(s["valid_metric"]) for s in settings if s.get("valid_metric")), "Recall@20")
    spread = "mean ± sample standard deviation over seeds" if len(seeds) > 1 else "one seed (no spread):"
    return (
        f"test-split metrics at the epoch with the best validation {metric}; {spread} "
        f"{', '.join(map(str, seeds))}"
        + (f"; at most {'/'.join(map(str, sorted(epochs - {None})))} epochs" if epochs - {None} else "")
        + ("; bold: the best mean in its column" if bold else "")
    )


def settings_notes(records: list[dict]) -> list[str]:
    """One line per configuration: the settings mde-mmrec gave it (pinned grid keys, --set values)."""
    chosen = {}
    for r in records:  # the records of one configuration share its settings
        chosen.setdefault(label_of(r), {k: v for k, v in (r.get("overrides") or {}).items() if k != "epochs"})
    return [f"{label}: " + ", ".join(f"{k}={v}" for k, v in sets.items()) for label, sets in chosen.items() if sets]


def summary_markdown(summary: pd.DataFrame) -> str:
    """The comparison table: one row per configuration, ``mean ± std`` cells; the best mean per column in bold."""
    header = ["model", "seeds"] + [metric_label(k) for k in METRIC_KEYS] + ["epochs to best", "s/epoch"]
    best = {k: summary[f"{k} mean"].max() for k in METRIC_KEYS} if len(summary) > 1 else {}  # no bold for one

    def metric(r, k: str) -> str:
        cell = spread(r[f"{k} mean"], r[f"{k} std"], r["n_seeds"])
        return f"**{cell}**" if r[f"{k} mean"] == best.get(k) else cell

    rows = [
        [
            r["label"],
            str(r["n_seeds"]),
            *(metric(r, k) for k in METRIC_KEYS),
            fmt(r["epochs_to_best"], 1),
            fmt_seconds(r["s_per_epoch"]),
        ]
        for _, r in summary.iterrows()
    ]
    return markdown_table(header, rows)


def write_markdown(path: Path, title: str, body: str, notes=()) -> Path:
    """``# title``, the body and the notes as a list."""
    path.write_text(f"# {title}\n\n{body}\n" + "".join(f"- {n}\n" for n in notes), encoding="utf-8")
    return path


def write_summary(summary: pd.DataFrame, out_dir: Path, title: str, notes=()) -> tuple[Path, Path]:
    """``summary.md`` (title, table, notes) and ``summary.csv`` (all columns, full precision)."""
    summary.to_csv(out_dir / "summary.csv", index=False)
    return write_markdown(out_dir / "summary.md", title, summary_markdown(summary), notes), out_dir / "summary.csv"


# ------------------------------------------------------------------------------------------------ charts
@functools.cache
def charts_available() -> bool:
    """Whether charts can be drawn; sets matplotlib's file-only Agg backend, so import matplotlib.pyplot after it
    (the commands ask before any training: a missing matplotlib is said once)."""
    try:
        import matplotlib
    except ImportError as exc:
        log.warning(
            "matplotlib cannot be imported (%s): the tables will be written, the charts skipped "
            "(pip install matplotlib, or pip install 'mde-mmrec[plots]')",
            exc,
        )
        return False
    matplotlib.use("Agg")
    return True


def save_chart(fig, path) -> Path:
    """Lay out, write (120 dpi) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def bar_chart(summary: pd.DataFrame, path: Path, title: str = "") -> Path | None:
    """Grouped bars (one group per metric, one bar per configuration) with std error bars (None: no matplotlib)."""
    if not charts_available():
        return None
    import matplotlib.pyplot as plt

    keys = [f"{m}@{k}" for m in ("recall", "ndcg") for k in KS]
    n = len(summary)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(keys) + 0.4 * n), 4))
    for i, (_, row) in enumerate(summary.iterrows()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(keys))]
        spread = [row[f"{k} std"] for k in keys] if row["n_seeds"] > 1 else None  # no bars for one seed
        ax.bar(xs, [row[f"{k} mean"] for k in keys], width, yerr=spread, capsize=3, label=row["label"])
    ax.set(
        xticks=range(len(keys)),
        xticklabels=[metric_label(k) for k in keys],
        ylabel="test score (mean ± std over seeds)",
        title=title,
    )
    ax.legend(fontsize="small")
    return save_chart(fig, path)


def grid_table(records: list[dict], keys: list[str]) -> pd.DataFrame:
    """One row per grid point (seeds averaged), sorted by the mean validation Recall@20, best first."""
    columns = {
        "valid recall@20": ("valid.recall@20", "mean"),
        "test recall@20": ("recall@20", "mean"),
        "test ndcg@20": ("ndcg@20", "mean"),
        "n_seeds": ("seed", "nunique"),
        "epochs_to_best": ("epochs_to_best", "mean"),
    }
    return (
        records_frame(records)
        .groupby([f"p.{k}" for k in keys], dropna=False)
        .agg(**columns)
        .reset_index()
        .rename(columns={f"p.{k}": k for k in keys})
        .sort_values("valid recall@20", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def grid_markdown(table: pd.DataFrame, keys: list[str] = ()) -> str:
    """Grid values written exactly (1e-05, not 0.0000); metrics with 4 decimals, epochs with 1."""
    formats = {**dict.fromkeys(keys, _exact), "epochs_to_best": lambda value: fmt(value, 1)}
    rows = [[formats.get(c, fmt)(v) for c, v in zip(table.columns, row)] for row in table.itertuples(index=False)]
    return markdown_table([c if c in keys else c.replace("_", " ") for c in table.columns], rows)


def _exact(value) -> str:
    """A grid value as written (1e-05, 0.1), not rounded."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def heatmap_data(table: pd.DataFrame, x: str, y: str, value: str) -> pd.DataFrame:
    """``value`` over (y rows, x columns), taking the best (max) over the other grid keys."""
    return table.pivot_table(index=y, columns=x, values=value, aggfunc="max").sort_index().sort_index(axis=1)


def heatmaps(table: pd.DataFrame, keys: list[str], out_dir: Path, value: str) -> list[Path]:
    """One PNG per pair of grid keys with more than one value: ``heatmap_<x>_<y>.png`` (none without matplotlib)."""
    varying = [k for k in keys if table[k].nunique() > 1]
    if len(varying) < 2 or not charts_available():
        return []
    import matplotlib.pyplot as plt
    import pandas as pd

    paths = []
    for x, y in itertools.combinations(varying, 2):
        data = heatmap_data(table, x, y, value)
        fig, ax = plt.subplots(figsize=(1.2 * data.shape[1] + 2.5, 0.8 * data.shape[0] + 2))
        im = ax.imshow(data.values, cmap="viridis", aspect="auto", origin="lower")
        ax.set(
            xticks=range(data.shape[1]),
            xticklabels=[_exact(v) for v in data.columns],
            yticks=range(data.shape[0]),
            yticklabels=[_exact(v) for v in data.index],
            xlabel=x,
            ylabel=y,
        )
        middle = (im.norm.vmin + im.norm.vmax) / 2
        for (i, j), v in pd.DataFrame(data.values).stack().items():  # dark text on viridis' light (high) end
            ax.text(j, i, f"{v:.4f}", ha="center", va="center", color="k" if v > middle else "w", fontsize="small")
        others = [k for k in keys if k not in (x, y)]
        ax.set_title(f"{value}" + (f" (best over {', '.join(others)})" if others else ""), fontsize="small")
        fig.colorbar(im, ax=ax)
        paths.append(save_chart(fig, Path(out_dir) / f"heatmap_{x}_{y}.png"))
    return paths
