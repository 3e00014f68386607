"""Tier 1: tables and charts from stored results records (no MMRec)."""

import csv
import math
import sys

import pandas as pd
import pytest

from mde_mmrec import compare, core, report
from mde_mmrec.errors import MdeMmrecError


def _metrics(base):
    return {f"{m}@{k}": base * k / 20 for m in ("recall", "ndcg", "precision", "map") for k in (5, 10, 20, 50)}


def _record(model, seed, base, label=None, epoch=3, spe=1.5):
    r = {
        "model": model,
        "dataset": "tiny",
        "params": {"seed": seed},
        "seed": seed,
        "best_epoch": epoch,
        "epochs_run": epoch + 1,
        "best_valid": _metrics(base * 0.9),
        "test": _metrics(base),
        "s_per_epoch": spe,
    }
    if label:
        r["label"] = label
    return r


RECORDS = [
    _record("MDE", 1, 0.10),
    _record("MDE", 2, 0.12, epoch=5),
    _record("BPR", 1, 0.05, spe=0.5),
    _record("BPR", 2, 0.07, spe=0.7),
]


def test_summary_mean_std_over_seeds():
    s = report.summarize(RECORDS)
    assert list(s["label"]) == ["MDE", "BPR"]
    mde = s.iloc[0]
    assert mde["n_seeds"] == 2
    assert mde["recall@20 mean"] == pytest.approx(0.11)
    assert mde["recall@20 std"] == pytest.approx(pd.Series([0.10, 0.12]).std())
    assert mde["recall@5 mean"] == pytest.approx(0.11 * 5 / 20)
    assert mde["epochs_to_best"] == 5 and s.iloc[1]["s_per_epoch"] == pytest.approx(0.6)
    assert "recall@50 mean" not in s.columns  # tables show 5, 10, 20


def test_labels_keep_variants_of_one_model_apart_and_order():
    recs = [_record("MDE", 1, 0.1, label="MDE"), _record("MDE", 1, 0.08, label="MDE w/o MDA")]
    s = report.summarize(recs, order=["MDE w/o MDA", "MDE"])
    assert list(s["label"]) == ["MDE w/o MDA", "MDE"]
    assert s.iloc[0]["recall@20 std"] == 0.0  # one seed


def test_markdown_and_csv(tmp_path):
    s = report.summarize(RECORDS)
    md, csv_path = report.write_summary(s, tmp_path, title="tiny", notes=["DRAGON: failed"])
    text = md.read_text()
    lines = text.splitlines()
    assert lines[0] == "# tiny"
    header = lines[2]
    assert header.startswith("| model | seeds | Recall@5 | Recall@10 | Recall@20 | NDCG@5")
    assert "MAP@20 | epochs to best | s/epoch |" in header
    mde_row = next(l for l in lines if l.startswith("| MDE "))
    assert "**0.1100 ± 0.0141**" in mde_row  # best recall@20, bold, mean ± std
    assert "- DRAGON: failed" in text
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert rows[1]["label"] == "BPR" and math.isclose(float(rows[1]["recall@20 mean"]), 0.06)


def test_missing_metric_is_a_clear_error():
    bad = [dict(_record("MDE", 1, 0.1), test={"recall@20": 0.1})]
    with pytest.raises(MdeMmrecError, match="lack the metrics"):
        report.summarize(bad)
    with pytest.raises(MdeMmrecError, match="no results"):
        report.summarize([])


def test_bar_chart_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = report.bar_chart(report.summarize(RECORDS), tmp_path / "chart.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _grid_records():
    recs = []
    for cl in (0.01, 0.1):
        for diff in (0.01, 0.1):
            for reg in (1e-4, 1e-3):
                for seed in (1, 2):
                    valid = cl + 2 * diff + reg * 10 + seed * 0.001
                    recs.append(
                        {
                            "model": "MDE",
                            "dataset": "tiny",
                            "seed": seed,
                            "best_epoch": 1,
                            "params": {"seed": seed, "cl_weight": cl, "diff_weight": diff, "reg_weight": reg},
                            "best_valid": {"recall@20": valid},
                            "test": {"recall@20": valid / 2, "ndcg@20": valid / 3},
                        }
                    )
    return recs


def test_grid_table_best_first_and_seeds_averaged():
    recs = _grid_records()
    table = report.grid_table(recs, ["cl_weight", "diff_weight", "reg_weight"])
    assert len(table) == 8 and set(table["n_seeds"]) == {2}
    top = table.iloc[0]
    assert (top["cl_weight"], top["diff_weight"], top["reg_weight"]) == (0.1, 0.1, 1e-3)
    assert top["valid recall@20"] == pytest.approx(0.1 + 0.2 + 0.01 + 0.0015)
    assert table["valid recall@20"].is_monotonic_decreasing


def test_heatmap_marginalises_the_other_key_by_best(tmp_path):
    table = report.grid_table(_grid_records(), ["cl_weight", "diff_weight", "reg_weight"])
    data = report.heatmap_data(table, "cl_weight", "diff_weight", "valid recall@20")
    assert data.shape == (2, 2)
    assert data.loc[0.01, 0.01] == pytest.approx(0.01 + 0.02 + 0.01 + 0.0015)  # best reg_weight taken
    pytest.importorskip("matplotlib")
    paths = report.heatmaps(table, ["cl_weight", "diff_weight", "reg_weight"], tmp_path, "valid recall@20")
    assert sorted(p.name for p in paths) == [
        "heatmap_cl_weight_diff_weight.png",
        "heatmap_cl_weight_reg_weight.png",
        "heatmap_diff_weight_reg_weight.png",
    ]


def test_compare_pins_grid_keys_and_parses_sets():
    file_config = {
        "model": "FREEDOM",
        "hyper_parameters": ["seed", "lambda_coeff", "reg_weight", "n_layers"],
        "lambda_coeff": [0.9],
        "reg_weight": [0.0, 1e-5, 1e-4],
        "n_layers": 1,
    }
    overrides, warnings = core.pin_grid(file_config, {"n_layers": 2})
    assert overrides == {"n_layers": 2, "lambda_coeff": 0.9, "reg_weight": 0.0}
    assert len(warnings) == 1 and "reg_weight=0.0" in warnings[0]
    sets = core.parse_sets(["MDE:cl_weight=0.1", "epochs=3", "FREEDOM:reg_weight=1e-4"])
    assert sets == {"MDE": {"cl_weight": 0.1}, None: {"epochs": 3}, "FREEDOM": {"reg_weight": 1e-4}}
    with pytest.raises(MdeMmrecError):
        core.parse_sets(["noequals"])
    with pytest.raises(MdeMmrecError, match=r"MDE:cl_weight is set twice"):
        core.parse_sets(["MDE:cl_weight=0.1", "FREEDOM:cl_weight=1", "MDE:cl_weight=0.2"])
    assert core.parse_sets(["cl_weight=0.1", "MDE:cl_weight=0.2"]) == {
        None: {"cl_weight": 0.1},
        "MDE": {"cl_weight": 0.2},
    }


def test_unknown_set_keys_come_with_the_closest_known_ones():
    with pytest.raises(
        MdeMmrecError,
        match=r"configuration 'MDE': unknown config key\(s\) cl_wieght, zzz .*"
        r"; for cl_wieght, did you mean cl_weight\?$",
    ):
        core.check_keys({"cl_weight": 0.1, "epochs": 3}, {"cl_wieght": 0.2, "zzz": 1}, "configuration 'MDE'")

    with pytest.raises(MdeMmrecError, match=r"unknown config key\(s\) cl_weigth .*; did you mean cl_weight\?$"):
        core.check_keys({"cl_weight": 0.1, "epochs": 3}, {"cl_weigth": 0.2}, "configuration 'MDE'")


def test_without_matplotlib_the_tables_are_written_and_the_charts_skipped_with_one_warning(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    report.charts_available.cache_clear()
    try:
        assert not report.charts_available() and not report.charts_available()
        (tmp_path / "chart.png").write_bytes(b"an earlier run's chart")
        records = [_record("MDE", 999, 0.1), _record("BPR", 999, 0.05)]
        md = compare.write_comparison(records, {"MDE": "ok", "BPR": "ok"}, tmp_path, "t")
        assert "| MDE |" in md.read_text() and (tmp_path / "summary.csv").is_file()
        assert not (tmp_path / "chart.png").exists()  # would not match the table
        table = report.grid_table(
            [
                dict(_record("MDE", 1, v), params={"a": a, "b": b})
                for a, b, v in ((1, 1, 0.1), (1, 2, 0.2), (2, 1, 0.3))
            ],
            ["a", "b"],
        )
        assert report.heatmaps(table, ["a", "b"], tmp_path, "valid recall@20") == []
    finally:
        report.charts_available.cache_clear()
    warnings = [r.getMessage() for r in caplog.records if "matplotlib cannot be imported" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("matplotlib cannot be imported (")
    assert warnings[0].endswith(
        "the tables will be written, the charts skipped (pip install matplotlib, or pip install 'mde-mmrec[plots]')"
    )


def test_a_comparison_says_how_its_numbers_were_made_and_with_which_settings(tmp_path):
    records = [
        dict(
            _record("MDE", seed, 0.1 + seed / 1e4),
            overrides={"cl_weight": 0.001, "epochs": 5},
            settings={"valid_metric": "Recall@20", "epochs": 5},
        )
        for seed in (999, 1000)
    ]
    records.append(dict(_record("BPR", 999, 0.05), overrides={"reg_weight": 0.01, "epochs": 5}))
    note = report.method_note(records, bold=True)
    assert note == (
        "test-split metrics at the epoch with the best validation Recall@20; mean ± sample standard "
        "deviation over seeds 999, 1000; at most 5 epochs; bold: the best mean in its column"
    )
    assert "one seed (no spread): 999;" in report.method_note(records[2:])
    assert report.settings_notes(records) == ["MDE: cl_weight=0.001", "BPR: reg_weight=0.01"]
    md = compare.write_comparison(records, {"MDE": "ok", "BPR": "ok"}, tmp_path, "t", chart=False)
    text = md.read_text()
    assert note in text and "- MDE: cl_weight=0.001" in text and "- BPR: reg_weight=0.01" in text


def test_a_table_of_one_configuration_has_nothing_in_bold():
    assert "**" not in report.summary_markdown(report.summarize([_record("MDE", 1, 0.10)]))


def test_grid_points_are_ranked_by_validation_never_by_test():
    point = lambda cl, valid, test: {
        "model": "MDE",
        "dataset": "tiny",
        "seed": 1,
        "best_epoch": 0,
        "params": {"seed": 1, "cl_weight": cl},
        "best_valid": {"recall@20": valid},
        "test": {"recall@20": test, "ndcg@20": test},
    }
    table = report.grid_table([point(0.01, valid=0.30, test=0.50), point(0.1, valid=0.40, test=0.20)], ["cl_weight"])
    assert table["cl_weight"].tolist() == [0.1, 0.01]
    assert table["valid recall@20"].tolist() == [0.40, 0.30] and table["test recall@20"].tolist() == [0.20, 0.50]


def test_seconds_per_epoch_keep_three_significant_digits_in_every_table():
    assert [report.fmt_seconds(v) for v in (0.0353, 0.6, 66.49, 999.7, 1234.5, None, math.nan)] == [
        "0.0353",
        "0.6",
        "66.5",
        "1000",
        "1234",
        "-",
        "-",
    ]
    row = report.summary_markdown(report.summarize([_record("MDE", 1, 0.10, spe=0.0353)])).splitlines()[-1]
    assert row.endswith("| 0.0353 |")
