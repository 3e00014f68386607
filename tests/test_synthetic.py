"""Tier 1: the synthetic data generator (no MMRec needed)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mde_mmrec import synthetic
from mde_mmrec.errors import MdeMmrecError
from mde_mmrec.synthetic import PRESETS, generate, make_dataset, split_labels


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny", seed=0, return_latents=True)


def test_deterministic_by_seed():
    a = generate("tiny", seed=3)
    b = generate("tiny", seed=3)
    c = generate("tiny", seed=4)
    pd.testing.assert_frame_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert not a[0].equals(c[0])
    assert not np.array_equal(a[1], c[1])


def test_shapes_dtypes_and_dense_ids(tiny):
    inter, image, text, _ = tiny
    p = PRESETS["tiny"]
    assert list(inter.columns) == ["userID", "itemID", "rating", "timestamp", "x_label"]
    assert image.shape == (p.n_items, 4096) and image.dtype == np.float32
    assert text.shape == (p.n_items, 384) and text.dtype == np.float32
    # MMRec takes n = max id + 1: every id from 0 must occur
    assert sorted(inter.userID.unique()) == list(range(p.n_users))
    assert sorted(inter.itemID.unique()) == list(range(p.n_items))
    assert not inter.duplicated(["userID", "itemID"]).any()
    assert abs(len(inter) - p.n_interactions) < 0.1 * p.n_interactions
    assert np.isfinite(image).all() and np.isfinite(text).all()
    assert (image >= 0).all() and 0.05 < (image > 0).mean() < 0.9  # CNN-like: non-negative, sparse-ish
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize(
    "n, expected",
    [
        (5, [0, 0, 0, 1, 2]),
        (9, [0] * 7 + [1, 2]),
        (10, [0] * 8 + [1, 2]),
        (15, [0] * 12 + [1, 2, 2]),  # int(0.2*15)=3 held out: 1 valid, 2 test
        (24, [0] * 20 + [1, 1, 2, 2]),
    ],
)
def test_split_rule_matches_mmrec_notebook(n, expected):
    users = np.array([7] * n)
    assert split_labels(users).tolist() == expected


def test_split_is_chronological_per_user(tiny):
    inter = tiny[0]
    for _, g in inter.groupby("userID"):
        assert g.x_label.is_monotonic_increasing
        assert g.timestamp.is_monotonic_increasing
        assert (g.x_label == 0).sum() >= 3 and (g.x_label == 1).sum() >= 1 and (g.x_label == 2).sum() >= 1
        assert g.x_label.tolist() == split_labels(g.userID.to_numpy()).tolist()


def test_five_core_like_activity(tiny):
    inter = tiny[0]
    assert inter.groupby("userID").size().min() >= 5
    assert inter.groupby("itemID").size().min() >= 5
    per_user = inter.groupby("userID").size()
    assert per_user.max() > 2 * per_user.median()  # a tail of heavy users


def test_popularity_skew():
    inter = generate(synthetic.Preset(3000, 1500, 27000, 20), 0)[0]  # baby-like density, smaller
    counts = np.sort(inter.groupby("itemID").size().to_numpy())[::-1]
    top10 = counts[: len(counts) // 10].sum() / counts.sum()
    assert top10 > 0.25  # uniform would give 0.10


def _pair_corr(feat, lat_a, lat_b, rng, n_pairs=4000):
    i, j = rng.integers(0, len(feat), size=(2, n_pairs))
    f = feat - feat.mean(0)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    fsim = (f[i] * f[j]).sum(1)
    return [np.corrcoef(fsim, (lat[i] * lat[j]).sum(1))[0, 1] for lat in (lat_a, lat_b)]


def test_each_feature_sees_its_own_private_part(tiny):
    _, image, text, lat = tiny
    rng = np.random.default_rng(0)
    img_visual, img_text = _pair_corr(image, lat["item_visual"], lat["item_text"], rng)
    txt_text, txt_visual = _pair_corr(text, lat["item_text"], lat["item_visual"], rng)
    img_shared, _ = _pair_corr(image, lat["item_shared"], lat["item_text"], rng)
    txt_shared, _ = _pair_corr(text, lat["item_shared"], lat["item_visual"], rng)
    assert img_visual > 0.3 and abs(img_text) < 0.1
    assert txt_text > 0.3 and abs(txt_visual) < 0.1
    assert img_shared > 0.3 and txt_shared > 0.3


def test_users_weigh_modalities_differently(tiny):
    w = tiny[3]["user_text_weight"]
    assert w.std() > 0.15 and 0.5 < w.mean() < 0.7


def test_interactions_follow_the_planted_taste(tiny):
    """Chosen items score higher under the generating affinity than random items do."""
    inter, _, _, lat = tiny
    chosen = synthetic.affinity(lat, inter.userID.to_numpy(), inter.itemID.to_numpy()).mean()
    rng = np.random.default_rng(1)
    rand = synthetic.affinity(lat, inter.userID.to_numpy(), rng.integers(0, 200, len(inter))).mean()
    assert chosen > rand + 0.3


def test_feature_knn_beats_random_on_held_out_items(tiny):
    """A feature-only item-kNN recommender finds held-out test items far more often than chance."""
    inter, image, text, _ = tiny
    n_items = image.shape[0]
    feats = []
    for f in (image, text):
        f = f - f.mean(0)
        feats.append(f / np.linalg.norm(f, axis=1, keepdims=True))
    sim = feats[0] @ feats[0].T + feats[1] @ feats[1].T  # tiny: 200 x 200 is fine
    train = inter[inter.x_label == 0]
    test = inter[inter.x_label == 2]
    hits, total = 0, 0
    for u, g in test.groupby("userID"):
        seen = train.itemID[train.userID == u].to_numpy()
        score = sim[seen].sum(0)
        score[seen] = -np.inf
        top = np.argsort(-score)[:20]
        hits += np.isin(g.itemID.to_numpy(), top).sum()
        total += len(g)
    recall = hits / total
    assert recall > 2.5 * 20 / n_items  # chance is about 20 / n_items


def test_unknown_preset():
    with pytest.raises(MdeMmrecError, match="unknown preset"):
        generate("huge")


def _fake_checkout(tmp_path: Path) -> Path:
    from mde_mmrec.mmrec import MMREC_MARKERS

    for marker in MMREC_MARKERS:  # a fake checkout: MMRec's marker files, empty
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).write_text("")
    (tmp_path / "src" / "configs" / "dataset").mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_make_dataset_writes_mmrec_layout(tmp_path):
    root = _fake_checkout(tmp_path)
    data_dir = make_dataset(root, "tinyx", preset="tiny", seed=0)
    assert data_dir == root / "data" / "tinyx"
    inter = pd.read_csv(data_dir / "tinyx.inter", sep="\t")
    assert list(inter.columns) == ["userID", "itemID", "rating", "timestamp", "x_label"]
    assert np.load(data_dir / "image_feat.npy").shape == (200, 4096)
    assert np.load(data_dir / "text_feat.npy").shape == (200, 384)
    import yaml

    cfg = yaml.safe_load((root / "src" / "configs" / "dataset" / "tinyx.yaml").read_text())
    assert cfg["inter_file_name"] == "tinyx.inter"
    assert cfg["user_graph_dict_file"] == "user_graph_dict.npy"
    assert cfg["field_separator"] == "\t"
    assert not any(isinstance(v, list) for v in cfg.values())  # no grid dimensions from a data set


def test_make_dataset_reuses_and_force_regenerates(tmp_path):
    root = _fake_checkout(tmp_path)
    d = make_dataset(root, "t", seed=0)
    caches = [
        d / name
        for name in (
            "mm_adj_freedomdsp_10_1.pt",
            "image_adj_10_True.pt",
            "text_adj_10.pt",
            "user_graph_dict.npy",
            "item_graph_dict.npy",
        )
    ]
    for cache in caches:
        cache.write_text("a graph of the old features")
    before = (d / "t.inter").read_text()
    make_dataset(root, "t", seed=0)  # exists, made with the same preset and seed: kept
    assert (d / "t.inter").read_text() == before and all(c.exists() for c in caches)
    for preset, seed in (("tiny", 1), ("baby", 0)):
        with pytest.raises(
            MdeMmrecError, match=f"made with preset tiny, seed 0 .*not preset {preset}, seed {seed}: pass --force"
        ):
            make_dataset(root, "t", preset=preset, seed=seed)  # never silently the other data
    make_dataset(root, "t", seed=1, force=True)
    assert (d / "t.inter").read_text() != before
    assert not any(c.exists() for c in caches)  # every model's cached graphs of the old data removed
    make_dataset(root, "t", seed=1)  # now made with seed 1: kept


def test_a_make_data_cut_short_is_redone_by_the_next_one(tmp_path, monkeypatch):
    """The large feature files are written first: killed while writing them, make-data leaves no interaction
    file, so the next run regenerates the set instead of refusing an 'incomplete data set'."""
    root = _fake_checkout(tmp_path)
    real_save = np.save

    def killed_while_writing_text(path, array):
        if Path(path).name == "text_feat.npy":
            raise KeyboardInterrupt
        real_save(path, array)

    monkeypatch.setattr(synthetic.np, "save", killed_while_writing_text)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(root, "t", seed=0)
    assert not (root / "data" / "t" / "t.inter").exists()
    monkeypatch.setattr(synthetic.np, "save", real_save)
    d = make_dataset(root, "t", seed=0)
    assert (d / "t.inter").is_file() and (d / "text_feat.npy").is_file()


def test_make_dataset_rejects_non_checkout(tmp_path):
    with pytest.raises(MdeMmrecError, match="not an MMRec checkout"):
        make_dataset(tmp_path, "t")


def test_cli_make_data(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    synthetic.register(parser.add_subparsers())
    root = _fake_checkout(tmp_path)
    args = parser.parse_args(["make-data", "tiny", "--mmrec", str(root)])
    assert args.func(args) == 0
    assert (root / "data" / "tiny" / "tiny.inter").is_file()
    assert capsys.readouterr().out.strip() == str(root / "data" / "tiny")


def test_make_dataset_never_overwrites_a_real_dataset_config(tmp_path):
    from mde_mmrec.errors import MdeMmrecError
    from mde_mmrec.mmrec import MMREC_MARKERS
    from mde_mmrec.synthetic import make_dataset

    for marker in MMREC_MARKERS:  # a fake checkout: MMRec's marker files, empty
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).write_text("")
    (tmp_path / "src" / "configs" / "dataset").mkdir(parents=True, exist_ok=True)
    real = tmp_path / "src" / "configs" / "dataset" / "baby.yaml"
    real.write_text("USER_ID_FIELD: userID\n")
    with pytest.raises(MdeMmrecError, match="never overwritten.*synthetic_baby"):
        make_dataset(tmp_path, "baby", preset="tiny", force=True)
    assert real.read_text() == "USER_ID_FIELD: userID\n"


def test_default_preset_follows_the_name():
    from mde_mmrec.synthetic import default_preset

    assert default_preset("baby") == "baby" and default_preset("synthetic_elec") == "elec"
    assert default_preset("mine") == "tiny"


def test_missing_data_hint_downloads_mmrecs_own_data_and_makes_synthetic_data(tmp_path):
    root = _fake_checkout(tmp_path)
    (root / "src" / "configs" / "dataset" / "sports.yaml").write_text("inter_file_name: sports.inter\n")
    hint = synthetic.missing_data_hint(root, "sports")  # MMRec's own config, data not downloaded
    assert "one of MMRec's own data sets" in hint and "data/README.md" in hint
    assert "make-data synthetic_sports" in hint and "-d synthetic_sports" in hint
    make_dataset(root, "t")
    assert synthetic.missing_data_hint(root, "t").endswith(f"make-data t --mmrec {root} --force`")
    assert synthetic.missing_data_hint(root, "new").endswith(f"make-data new --mmrec {root}`")


def test_text_leaning_users_choose_by_text_and_image_leaning_users_by_image():
    inter, _, _, lat = synthetic.generate("tiny", seed=0, return_latents=True)
    u, i = inter.userID.to_numpy(), inter.itemID.to_numpy()
    text = np.einsum("nd,nd->n", lat["user_text"][u], lat["item_text"][i])
    visual = np.einsum("nd,nd->n", lat["user_visual"][u], lat["item_visual"][i])
    w = lat["user_text_weight"][u]
    high, low = w > 0.8, w < 0.2
    assert text[high].mean() > visual[high].mean() + 0.5
    assert visual[low].mean() > text[low].mean() + 0.5


def test_an_incomplete_data_set_is_not_overwritten_without_force(tmp_path):
    root = _fake_checkout(tmp_path)
    inter = root / "data" / "t" / "t.inter"
    inter.parent.mkdir(parents=True)
    inter.write_text("my own interactions\n")
    with pytest.raises(MdeMmrecError, match="incomplete data set 't': pass --force"):
        make_dataset(root, "t")
    assert inter.read_text() == "my own interactions\n"
