"""Tier 1: src/utils/data_checks.py, the checks main.py (and the mde-mmrec commands) run on a data set's
interaction and feature files before MMRec loads them."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mde_mmrec.mmrec import plugin_module

dc = plugin_module("data_checks")
co = plugin_module("cli_overrides")

CONFIG = {
    "USER_ID_FIELD": "userID",
    "ITEM_ID_FIELD": "itemID",
    "inter_splitting_label": "x_label",
    "field_separator": "\t",
    "filter_out_cod_start_users": True,
    "topk": [1, 2],
}


def _inter(n_users: int = 4, n_items: int = 5) -> pd.DataFrame:
    """Every user: two training items, one validation, one test item, all different."""
    rows = []
    for u in range(n_users):
        items = [(u + j) % n_items for j in range(4)]
        rows += [(u, items[0], 0), (u, items[1], 0), (u, items[2], 1), (u, items[3], 2)]
    return pd.DataFrame(rows, columns=["userID", "itemID", "x_label"])


def _write(tmp_path, df: pd.DataFrame, name: str = "d.inter"):
    path = tmp_path / name
    df.to_csv(path, sep="\t", index=False)
    return path


def test_a_clean_file_passes_and_counts_items_as_mmrec_does(tmp_path):
    assert dc.check_interaction_file(_write(tmp_path, _inter()), CONFIG) == (5, [])
    assert dc.check_interaction_file(_write(tmp_path, _inter()), {}) == (None, [])  # no column names: skipped


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda df: df.drop(columns="x_label"),
            r"cannot be read as MMRec reads it .*x_label.*needs the columns userID, "
            r"itemID and x_label",
        ),
        (
            lambda df: df.assign(itemID=df.itemID.astype(object).where(df.index != 3, None)),
            r"1 rows have no itemID \(empty cells\)",
        ),
        (lambda df: df.assign(itemID=df.itemID.where(df.index != 3, -1)), r"itemID must hold integers >= 0 .*found -1"),
        (
            lambda df: df.assign(userID=df.userID.astype(float).where(df.index != 0, 0.5)),
            r"userID must hold integers >= 0 .*found 0.5",
        ),
        (lambda df: df[df.x_label != 0], r"no training rows \(x_label 0\)"),
        (
            lambda df: df[df.x_label != 1],
            r"no validation rows \(x_label 1\) of users who have training rows.*"
            r"ZeroDivisionError",
        ),
        (lambda df: df[df.x_label != 2], r"no test rows \(x_label 2\) of users who have training rows"),
        (
            lambda df: pd.concat([df, pd.DataFrame({"userID": 1, "itemID": range(5), "x_label": 0})]),
            r"1 user\(s\) interacted with every item of the training split \(5 items\), userID 1: negative sampling "
            r"needs an item the user has not interacted with.*remove these users, or some of their training rows",
        ),
        (
            lambda df: df[((df.x_label != 2) | (df.userID == 3)) & ~((df.userID == 3) & (df.x_label == 0))],  # MMRec
            r"no test rows \(x_label 2\) of users who have training rows",
        ),  # drops user 3's: no training rows
    ],
)
def test_what_mmrec_cannot_run_on_is_an_error_naming_file_field_and_fix(tmp_path, change, message):
    path = _write(tmp_path, change(_inter()))
    with pytest.raises(dc.DataError, match=message) as error:
        dc.check_interaction_file(path, CONFIG)
    assert str(path) in str(error.value)


def test_a_user_with_every_training_item_is_no_error_where_the_model_samples_no_negatives(tmp_path):
    full = pd.concat([_inter(), pd.DataFrame({"userID": 1, "itemID": range(5), "x_label": 0})])
    for config in ({**CONFIG, "use_neg_sampling": False}, {**CONFIG, "use_full_sampling": True}):
        assert dc.check_interaction_file(_write(tmp_path, full), config)[0] == 5
    items_3_4_unused_in_training = _inter()[lambda df: (df.x_label != 0) | (df.itemID < 3)]
    rows = pd.concat([items_3_4_unused_in_training, pd.DataFrame({"userID": 0, "itemID": range(3), "x_label": 0})])
    with pytest.raises(dc.DataError, match=r"every item of the training split \(3 items\), userID 0"):
        dc.check_interaction_file(_write(tmp_path, rows), CONFIG)  # every *training* item: MMRec's count


def test_a_topk_larger_than_the_item_count_is_an_error(tmp_path):
    with pytest.raises(
        dc.DataError,
        match=r"5 items \(the largest itemID \+ 1\), fewer than the largest topk 50.*"
        r"e.g. --topk='\[5\]' --valid_metric=Recall@5$",
    ):
        dc.check_interaction_file(_write(tmp_path, _inter()), dict(CONFIG, topk=[5, 50], valid_metric="Recall@50"))
    with pytest.raises(dc.DataError, match=r"e.g. --topk='\[2,5\]'$"):  # Recall@5 still fits
        dc.check_interaction_file(_write(tmp_path, _inter()), dict(CONFIG, topk=[2, 5, 20], valid_metric="Recall@5"))
    with pytest.raises(dc.DataError, match=r"e.g. --topk='\[5\]' --valid_metric=NDCG@5$"):
        dc.check_interaction_file(_write(tmp_path, _inter()), dict(CONFIG, topk=[10, 20], valid_metric="NDCG@20"))


def test_what_mmrec_runs_on_silently_but_wrongly_is_warned_about(tmp_path):
    df = _inter()
    leaked = df[df.x_label == 0].iloc[:1].assign(x_label=2)  # a training pair in the test split too
    offset = df.assign(userID=df.userID + 10, itemID=df.itemID + 3)  # ids 0..9 and 0..2 without interactions
    warnings = dc.check_interaction_file(
        _write(tmp_path, pd.concat([offset, leaked.assign(userID=leaked.userID + 10, itemID=leaked.itemID + 3)])),
        CONFIG,
    )[1]
    assert any("1 of 5 test rows are training rows too" in w for w in warnings)
    assert any("10 of the userIDs 0..13 have no interaction" in w and "untrained embeddings" in w for w in warnings)
    assert any("3 of the itemIDs 0..7 have no interaction" in w and "ranked in every evaluation" in w for w in warnings)
    assert not any("validation rows are training" in w for w in warnings)
    assert not any("repeat" in w for w in warnings)


def test_repeated_training_rows_are_counted(tmp_path):
    df = _inter()
    train = df[df.x_label == 0]
    warnings = dc.check_interaction_file(_write(tmp_path, pd.concat([df, train.iloc[:2], train.iloc[:1]])), CONFIG)[1]
    assert warnings == [
        f"{tmp_path / 'd.inter'}: 3 training rows repeat an earlier one (same userID and itemID); "
        "MMRec samples training rows, so each repeat weighs that interaction once more: remove them "
        "unless that is meant"
    ]


def test_the_check_reads_the_file_again_when_it_changes(tmp_path):
    path = _write(tmp_path, _inter())
    assert dc.check_interaction_file(path, CONFIG) == (5, [])
    _write(tmp_path, _inter().assign(itemID=lambda d: d.itemID.where(d.index != 3, -1)))
    with pytest.raises(dc.DataError, match="found -1"):
        dc.check_interaction_file(path, CONFIG)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_feature_rows_with_nan_or_inf_are_counted_and_the_first_named(tmp_path, dtype):
    features = np.ones((50, 3), dtype=dtype)
    features[[7, 30], 1], features[41, 2] = np.nan, -np.inf
    if dtype is np.float64:
        features[3] = [1e308, 1e308, -1.0]  # finite, although its sum overflows: not a bad row
    np.save(tmp_path / "f.npy", features)
    for block_bytes in (1, 100, 1 << 26):  # rows split across blocks, or all in one
        bad, largest = dc._scan_values(np.load(tmp_path / "f.npy", mmap_mode="r"), block_bytes)
        assert bad.tolist() == [7, 30, 41] and largest == (1e308 if dtype is np.float64 else 1.0)
    with pytest.raises(
        dc.DataError,
        match=r"f.npy \(image\) has NaN or inf in 3 of its 50 rows \(the first: row 7, "
        r"item id 7\)",
    ):
        dc.check_feature_file(tmp_path / "f.npy", "image", 50)


def test_feature_values_large_enough_to_overflow_scores_are_warned_about(tmp_path):
    features = np.ones((20, 4), dtype=np.float32)
    np.save(tmp_path / "f.npy", features)
    assert dc.check_feature_file(tmp_path / "f.npy", "image", 20) == []
    features[13, 2] = -3e7
    np.save(tmp_path / "g.npy", features)  # another file: a rewrite within the clock's tick keeps its mtime
    assert dc.check_feature_file(tmp_path / "g.npy", "image", 20) == [
        f"feature file {tmp_path / 'g.npy'} (image) holds values up to 30000000 in magnitude (pre-trained image and text "
        "features are within about +-100): projected into scores they can overflow to inf, and the run then stops "
        "on a NaN loss; scale them (e.g. divide each row by its L2 norm)"
    ]


def test_feature_rows_must_match_the_item_count(tmp_path):
    np.save(tmp_path / "f.npy", np.ones((4, 3), dtype=np.float32))
    dc.check_feature_file(tmp_path / "f.npy", "vision_feature_file", 4, "d.inter")
    with pytest.raises(
        dc.DataError,
        match=r"f.npy \(vision_feature_file\) has 4 rows, but MMRec counts 5 items "
        r"\(the largest item id in d.inter \+ 1\).*renumber",
    ):
        dc.check_feature_file(tmp_path / "f.npy", "vision_feature_file", 5, "d.inter")


def test_main_py_refuses_bad_data_before_loading_it_and_prints_warnings(tmp_path, capsys):
    """Through check_interactions, as main.py (patch 0009) calls it: an error is one OverrideError naming -d."""
    src = tmp_path / "src"
    src.mkdir()
    data = tmp_path / "data" / "d"
    data.mkdir(parents=True)
    df = _inter()
    _write(data, pd.concat([df, df[df.x_label == 0].iloc[:1].assign(x_label=1)]))
    np.save(data / "image_feat.npy", np.ones((5, 3), dtype=np.float32))
    np.save(data / "text_feat.npy", np.ones((5, 2), dtype=np.float32))
    values = dict(
        CONFIG,
        data_path="../data/",
        inter_file_name="d.inter",
        is_multimodal_model=True,
        end2end=False,
        vision_feature_file="image_feat.npy",
        text_feature_file="text_feat.npy",
    )
    co.check_interactions("d", values, src)
    assert "main.py: warning: -d d: " in capsys.readouterr().err
    np.save(data / "image_feat.npy", np.ones((6, 3), dtype=np.float32))
    with pytest.raises(
        co.OverrideError,
        match=r"-d d: feature file .*image_feat.npy \(vision_feature_file in "
        r"src/configs/dataset/d.yaml or the command line\) has 6 rows, but MMRec counts 5 items",
    ):
        co.check_interactions("d", values, src)
    np.save(data / "image_feat.npy", np.ones((5, 3), dtype=np.float32))
    (data / "text_feat.npy").unlink()  # a file the config names is missing: MDE only warns
    co.check_interactions("d", values, src, "MDE")
    assert (
        "text_feat.npy is missing (src/configs/dataset/d.yaml or the command line): MDE trains on image features alone"
        in capsys.readouterr().err
    )
    with pytest.raises(
        co.OverrideError,
        match=r"-d d: feature file .*text_feat.npy is missing \(text_feature_file "
        r"in src/configs/dataset/d.yaml or the command line\): FREEDOM would train on image "
        r"features alone; restore the file, or remove text_feature_file",
    ):
        co.check_interactions("d", values, src, "FREEDOM")


def _checkout_with_tiny(tmp_path):
    """A stand-in checkout (MMRec's marker files, empty; an overall.yaml with MMRec's data keys) holding the
    synthetic ``tiny`` data set."""
    from mde_mmrec.mmrec import MMREC_MARKERS
    from mde_mmrec.synthetic import make_dataset

    root = tmp_path / "MMRec"
    for marker in MMREC_MARKERS:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    (root / "src/configs/overall.yaml").write_text(
        'USER_ID_FIELD: user_id:token\nITEM_ID_FIELD: item_id:token\nfield_separator: "\\t"\n'
        "inter_splitting_label: x_label\nfilter_out_cod_start_users: True\nis_multimodal_model: True\n"
        "topk: [5, 10, 20, 50]\n"
    )
    for folder in ("model", "dataset"):
        (root / "src/configs" / folder).mkdir()
    for model in ("MDE", "FREEDOM"):  # what check-data looks for to know a model
        (root / "src/models").mkdir(exist_ok=True)
        (root / f"src/configs/model/{model}.yaml").write_text("")
        (root / f"src/models/{model.lower()}.py").write_text("")
    make_dataset(root, "tiny", preset="tiny", seed=0)
    return root


def test_check_data_describes_a_good_data_set_and_refuses_a_bad_one(tmp_path, capsys):
    from mde_mmrec.cli import main

    root = _checkout_with_tiny(tmp_path)
    assert main(["check-data", "--mmrec", str(root), "-d", "tiny"]) == 0
    out = capsys.readouterr().out
    inter = pd.read_csv(root / "data/tiny/tiny.inter", sep="\t")
    assert f"| users (largest id + 1) | {inter.userID.max() + 1:,} |" in out
    assert f"| test interactions (x_label 2) | {(inter.x_label == 2).sum():,} |" in out
    assert "| vision_feature_file (image_feat.npy) | 200 x 4,096 float32 |" in out
    assert out.rstrip().endswith("tiny: no errors, MMRec can run MDE on it; no warnings")
    inter[inter.x_label != 1].to_csv(root / "data/tiny/tiny.inter", sep="\t", index=False)
    assert main(["check-data", "--mmrec", str(root), "-d", "tiny"]) == 2
    assert "no validation rows (x_label 1)" in capsys.readouterr().err


def test_check_data_refuses_an_unknown_model(tmp_path, capsys):
    from mde_mmrec.cli import main

    root = _checkout_with_tiny(tmp_path)
    assert main(["check-data", "--mmrec", str(root), "-d", "tiny", "-m", "FREEDUM"]) == 2
    assert "unknown model 'FREEDUM'" in capsys.readouterr().err
    assert main(["check-data", "--mmrec", str(root), "-d", "tiny", "-m", "FREEDOM"]) == 0


def test_the_commands_check_the_data_with_the_runs_overrides(tmp_path):
    """A topk the data set is too small for is refused, unless the run itself sets a smaller one."""
    from mde_mmrec import core
    from mde_mmrec.errors import MdeMmrecError

    root = _checkout_with_tiny(tmp_path)
    overall = root / "src/configs/overall.yaml"
    overall.write_text(overall.read_text().replace("topk: [5, 10, 20, 50]", "topk: [5, 500]"))
    with pytest.raises(MdeMmrecError, match=r"200 items .*fewer than the largest topk 500"):
        core.check_dataset(root, "tiny", "MDE")
    assert core.check_dataset(root, "tiny", "MDE", {"topk": [5, 20]}) == []


@pytest.mark.parametrize(
    "dtype, refused",
    [
        ("float16", None),
        ("float64", None),
        ("int64", None),
        ("bool", None),
        (">f4", "numbers in non-native byte order (>f4)"),
        (">i4", "numbers in non-native byte order (>i4)"),
        ("longdouble", "float128 numbers"),
    ],
)
def test_feature_dtypes_are_those_pytorch_converts(tmp_path, dtype, refused):
    """MMRec loads features with torch.from_numpy: a byte order or a type it refuses is an error, not a traceback
    in training."""
    path = tmp_path / "f.npy"
    np.save(path, np.ones((4, 3), dtype=dtype))
    if refused is None:
        assert dc.check_feature_file(path, "text_feature_file", 4) == []
        torch = pytest.importorskip("torch")
        torch.from_numpy(np.load(path))  # what MMRec does: it works
        return
    with pytest.raises(
        dc.DataError,
        match=r"f.npy \(text_feature_file\) holds .*which PyTorch cannot convert .*"
        r"np.save\(path, np.load\(path\).astype\(np.float32\)\)",
    ) as error:
        dc.check_feature_file(path, "text_feature_file", 4)
    assert f"holds {refused}, which PyTorch cannot convert" in str(error.value)


def test_values_beyond_float32_are_an_error_and_large_ones_a_warning(tmp_path):
    path = tmp_path / "f.npy"
    features = np.ones((4, 3))
    features[2, 1] = 1e39  # float64: becomes inf in MMRec's float32 cast
    np.save(path, features)
    with pytest.raises(dc.DataError, match=r"values up to 1e\+39 in magnitude, beyond float32's range.*NaN loss"):
        dc.check_feature_file(path, "text_feature_file", 4)
    features[2, 1] = -1000000.06
    np.save(path, features)
    [warning] = dc.check_feature_file(path, "text_feature_file", 4)
    assert "values up to 1000000.1 in magnitude" in warning  # not printed as the 1e6 limit itself


def test_a_replaced_feature_file_is_scanned_again_even_with_the_same_size_and_time(tmp_path):
    path, other = tmp_path / "f.npy", tmp_path / "g.npy"
    np.save(path, np.ones((4, 3), dtype=np.float32))
    assert dc.check_feature_file(path, "text_feature_file", 4) == []
    bad = np.ones((4, 3), dtype=np.float32)
    bad[3, 0] = np.nan
    np.save(other, bad)  # same size
    stat = path.stat()
    os.replace(other, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    with pytest.raises(dc.DataError, match="NaN or inf in 1 of its 4 rows"):
        dc.check_feature_file(path, "text_feature_file", 4)


def test_a_file_that_is_not_npy_says_so(tmp_path):
    path = tmp_path / "f.npy"
    path.write_text("0.1,0.2\n0.3,0.4\n")
    with pytest.raises(
        dc.DataError,
        match=r"cannot be read as a .npy array of numbers \(it is not a .npy file: no "
        r"NumPy header\)",
    ):
        dc.check_feature_file(path, "text_feature_file", 2)


def test_raw_ids_are_an_error_before_anything_sized_by_them(tmp_path):
    """Raw (not renumbered) ids: MMRec would size its embeddings by the largest id; the check itself must not
    allocate by it either (a bincount over 3e9 users)."""
    df = _inter()
    df.loc[0, "userID"] = 3_000_000_000
    path = _write(tmp_path, df)
    with pytest.raises(
        dc.DataError,
        match=r"userID holds \d+ distinct ids, the largest 3000000000: .*would "
        r"build 3000000001 embeddings; these look like raw ids: renumber",
    ):
        dc.check_interaction_file(path, CONFIG)


@pytest.mark.parametrize("model", [None, "MDE", "FREEDOM"])
def test_no_feature_file_at_all_is_an_error_for_every_model(tmp_path, model):
    config = {"vision_feature_file": "image_feat.npy"}  # text_feature_file not set; image file missing
    with pytest.raises(
        dc.DataError,
        match=r"no feature file for .*: vision_feature_file .*image_feat.npy is missing; "
        r"text_feature_file not set \(d.yaml\).*Features all NONE",
    ):
        dc.feature_files(tmp_path, config, model, "d.yaml")
    (tmp_path / "image_feat.npy").mkdir()
    with pytest.raises(dc.DataError, match=r"image_feat.npy is not a file"):
        dc.feature_files(tmp_path, config, model, "d.yaml")


def test_a_modality_left_out_of_the_config_is_a_warning_for_every_model(tmp_path):
    np.save(tmp_path / "image_feat.npy", np.ones((4, 3), dtype=np.float32))
    files, [warning] = dc.feature_files(tmp_path, {"vision_feature_file": "image_feat.npy"}, "FREEDOM", "d.yaml")
    assert files == {"vision_feature_file": tmp_path / "image_feat.npy"}
    assert warning == "text_feature_file not set (d.yaml): FREEDOM trains on image features alone"
