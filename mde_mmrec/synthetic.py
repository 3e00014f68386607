"""Synthetic multimodal recommendation data in MMRec's format (`mde-mmrec make-data`): try MDE, FREEDOM,
DRAGON ... without downloading the Amazon data sets, on data whose structure is known. ``generate(preset,
seed)`` is pure and vectorised (one ``numpy.random.Generator(seed)``); ``make_dataset(...)`` writes it into
an MMRec checkout.

Items.  Every item ``i`` has three latent parts of ``D`` = 16 dimensions, each drawn around one of ``K``
centres chosen independently: a *shared* part ``s_i`` (what image and text both show: the category), a
*visual-only* part ``v_i`` (style, colour) and a *text-only* part ``t_i`` (brand, material); and a log-normal
popularity ``pop_i`` (a few items are very popular). Features see them through noisy non-linear maps with
random weights fixed by the seed:

* ``image_feat`` (4096-d, like a CNN's fc7: non-negative, sparse-ish) ``= relu([s_i, v_i] @ W_img + b + noise)``
* ``text_feat`` (384-d, like a sentence embedding: unit length) ``= normalise(tanh([s_i, t_i] @ W_txt + noise))``

so neither feature carries the other modality's private part.

Users.  Every user ``u`` has a taste in each latent space (``a_u``, ``p_u``, ``q_u``, each drawn around a
centre) and a *modality preference* ``w_u ~ Beta(1.2, 0.8)``, the weight of text versus image (the node-level
preference MDE is built on; text weighs more on average, as the paper finds for Baby). The affinity is

    score(u, i) = a_u . s_i  +  (1 - w_u) * p_u . v_i  +  w_u * q_u . t_i  +  0.3 * log pop_i

Interactions.  User activity ``n_u`` is 5 plus a geometric tail whose mean matches the preset. User u picks
``n_u`` distinct items without replacement from ``prior_i * exp(score(u, i) / T)`` (``TEMPERATURE``), as a
Gumbel top-k; the prior mixes popularity and uniform (70/30). Catalogues up to ``FULL_SCORING_ITEMS`` items
score every item, larger ones (Elec) ``N_CANDIDATES`` candidates per user drawn from the prior. Items left
with fewer than 5 interactions get the missing ones from the best-matching users of a random sample (every
item id occurs: MMRec takes ``n_items`` as the largest id + 1), so the total is close to the preset's number.

Timestamps are random within 2014-2018, sorted per user; each user's interactions are split chronologically
by MMRec's rule (``preprocessing/1splitting.ipynb``): with ``n < 10``, ``n - 2`` train, 1 valid, 1 test;
otherwise ``int(0.2 n)`` held out, half valid (rounded down), the rest test (``x_label`` 0/1/2).

Why a multimodal model should beat plain CF here: the private parts reach the choices only through the
(modality-weighted) tastes and each is visible in one feature file only, so the features tell about
unpopular items what a few interactions cannot; a model that fuses both modalities per node uses both.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used, so `mde-mmrec --help` stays fast
    import pandas as pd

from . import mmrec
from .errors import MdeMmrecError, non_negative_int

log = logging.getLogger(__name__)

IMAGE_DIM = 4096
TEXT_DIM = 384
LATENT_DIM = 16  # D: size of each latent part (shared, visual-only, text-only)
MIN_PER_USER = 5  # 5-core-like activity
MIN_PER_ITEM = 5
TEMPERATURE = 0.75  # of the Gumbel top-k choice; lower = choices follow the taste more closely
POP_WEIGHT = 0.3  # weight of log-popularity in the score
FULL_SCORING_ITEMS = 30_000  # catalogues up to this size: every user scores every item
N_CANDIDATES = 512  # larger catalogues (Elec): candidates per user, drawn from the prior
T0, T1 = 1388534400, 1514764800  # timestamps within 2014-01-01 .. 2018-01-01 (UTC)


@dataclass(frozen=True)
class Preset:
    n_users: int
    n_items: int
    n_interactions: int  # target; the generated total is close to it (see the module docstring)
    n_clusters: int  # K: category / style / topic centres
    note: str = ""


PRESETS: dict[str, Preset] = {
    "tiny": Preset(300, 200, 3_000, 8, "trains in seconds; the default"),
    "small": Preset(1_500, 1_000, 12_000, 16, "converges in about a minute on 2 CPU cores"),
    "baby": Preset(19_445, 7_050, 160_792, 40, "shape of Amazon Baby"),
    "sports": Preset(35_598, 18_357, 296_337, 60, "shape of Amazon Sports"),
    "clothing": Preset(39_387, 23_033, 278_677, 60, "shape of Amazon Clothing"),
    "elec": Preset(192_403, 63_001, 1_689_188, 100, "shape of Amazon Elec"),
}


def get_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise MdeMmrecError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------------------------- latents
def _clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    """n points, each around a random centre (rows of ``centres``); unit-variance-ish per dimension."""
    which = rng.integers(0, len(centres), size=n)
    pts = centres[which] + spread * rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    return (pts / np.sqrt(1.0 + spread**2)).astype(np.float32)


def _latents(rng: np.random.Generator, p: Preset) -> dict[str, np.ndarray]:
    d, k = LATENT_DIM, p.n_clusters
    centres = {name: rng.standard_normal((k, d), dtype=np.float32) for name in ("shared", "visual", "text")}
    lat = {f"item_{name}": _clustered(rng, p.n_items, centre, 0.6) for name, centre in centres.items()}
    lat["item_log_pop"] = rng.normal(0.0, 1.0, size=p.n_items).astype(np.float32)
    lat.update({f"user_{name}": _clustered(rng, p.n_users, centre, 0.8) for name, centre in centres.items()})
    lat["user_text_weight"] = rng.beta(1.2, 0.8, size=p.n_users).astype(np.float32)
    return lat


# --------------------------------------------------------------------------------------- interactions
def _activity(rng: np.random.Generator, p: Preset) -> np.ndarray:
    """Interactions per user: MIN_PER_USER + geometric tail, mean close to n_interactions / n_users."""
    extra_mean = max(p.n_interactions / p.n_users - MIN_PER_USER, 0.1)
    n = MIN_PER_USER + rng.geometric(1.0 / (1.0 + extra_mean), size=p.n_users) - 1
    return np.minimum(n, max(MIN_PER_USER, p.n_items // 3)).astype(np.int64)


def _user_item_vectors(lat: dict) -> tuple[np.ndarray, np.ndarray]:
    """U [n_users, 3D], V [n_items, 3D] with U @ V.T + pop term = affinity (for block matrix products)."""
    w = lat["user_text_weight"][:, None]
    u = np.concatenate([lat["user_shared"], (1 - w) * lat["user_visual"], w * lat["user_text"]], axis=1)
    v = np.concatenate([lat["item_shared"], lat["item_visual"], lat["item_text"]], axis=1)
    return (u / np.sqrt(LATENT_DIM)).astype(np.float32), v.astype(np.float32)


def affinity(lat: dict[str, np.ndarray], users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """score(u, i) of the module docstring for aligned arrays ``users``, ``items`` (any equal shapes)."""
    u_vec, i_vec = _user_item_vectors(lat)
    return np.einsum("...d,...d->...", u_vec[users], i_vec[items]) + POP_WEIGHT * lat["item_log_pop"][items]


def _gumbel(rng: np.random.Generator, shape) -> np.ndarray:
    u = rng.random(shape, dtype=np.float32)
    np.clip(u, 1e-12, 1.0 - 1e-7, out=u)
    return -np.log(-np.log(u))


def _choose_items(
    rng: np.random.Generator, p: Preset, lat: dict, n_per_user: np.ndarray, max_cells: int = 16_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, n_u distinct items: Gumbel top-n_u of score / T + log prior (see the module docstring). The
    candidates drawn for a large catalogue weigh taste somewhat less against popularity than full scoring."""
    pop = np.exp(lat["item_log_pop"].astype(np.float64))
    prior = 0.7 * pop / pop.sum() + 0.3 / p.n_items
    log_prior = np.log(prior).astype(np.float32)
    u_vec, i_vec = _user_item_vectors(lat)
    pop_term = POP_WEIGHT * lat["item_log_pop"]
    full = p.n_items <= FULL_SCORING_ITEMS
    order = np.argsort(n_per_user, kind="stable")  # similar activity in one block
    n_cols = p.n_items if full else max(N_CANDIDATES, 4 * int(n_per_user.max()))
    block = max(1, (max_cells if full else max_cells // 16) // n_cols)  # gathers are 48 wide: smaller blocks
    users_out, items_out = [], []
    for start in range(0, p.n_users, block):
        users = order[start : start + block]
        n_u = n_per_user[users]
        if full:
            cand = np.broadcast_to(np.arange(p.n_items), (len(users), p.n_items))
            score = (u_vec[users] @ i_vec.T + pop_term) / TEMPERATURE + log_prior
        else:
            cand = np.sort(rng.choice(p.n_items, size=(len(users), n_cols), p=prior), axis=1)
            score = (np.einsum("bd,bcd->bc", u_vec[users], i_vec[cand]) + pop_term[cand]) / TEMPERATURE
            score[:, 1:][cand[:, 1:] == cand[:, :-1]] = -np.inf  # drop repeated candidates (cand is sorted)
        score += _gumbel(rng, score.shape)
        k = int(n_u.max())
        top = np.argpartition(-score, k - 1, axis=1)[:, :k]
        top_score = np.take_along_axis(score, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_score, axis=1, kind="stable"), axis=1)
        chosen = np.take_along_axis(cand, top, axis=1)
        keep = (np.arange(k)[None, :] < n_u[:, None]) & np.isfinite(np.take_along_axis(score, top, axis=1))
        users_out.append(np.broadcast_to(users[:, None], chosen.shape)[keep])
        items_out.append(chosen[keep])
    return np.concatenate(users_out), np.concatenate(items_out)


def _fill_rare_items(
    rng: np.random.Generator, p: Preset, lat: dict, users: np.ndarray, items: np.ndarray, n_probe: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Give every item at least MIN_PER_ITEM interactions: each missing one goes to the best-matching
    user among ``n_probe`` random users who do not have the item yet."""
    counts = np.bincount(items, minlength=p.n_items)
    need_items = np.repeat(np.arange(p.n_items), np.maximum(MIN_PER_ITEM - counts, 0))
    probe = rng.integers(0, p.n_users, size=(len(need_items), n_probe))
    score = affinity(lat, probe, np.broadcast_to(need_items[:, None], probe.shape))
    probe = np.take_along_axis(probe, np.argsort(-score, axis=1, kind="stable"), axis=1)  # best match first
    existing = set(zip(users.tolist(), items.tolist()))
    add_u, add_i = [], []
    for row, item in enumerate(need_items.tolist()):  # only the few rare items: a short loop
        for u in probe[row].tolist():
            if (u, item) not in existing:
                existing.add((u, item))
                add_u.append(u)
                add_i.append(item)
                break
    return (
        np.concatenate([users, np.asarray(add_u, dtype=users.dtype)]),
        np.concatenate([items, np.asarray(add_i, dtype=items.dtype)]),
    )


def split_labels(user_sorted: np.ndarray) -> np.ndarray:
    """x_label for rows already sorted by (user, time), with MMRec's per-user rule (1splitting.ipynb)."""
    starts = np.flatnonzero(np.r_[True, user_sorted[1:] != user_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(user_sorted)])
    pos = np.arange(len(user_sorted)) - np.repeat(starts, sizes)  # position within the user
    n = np.repeat(sizes, sizes)
    held = np.where(n < 10, 2, (n * 0.2).astype(np.int64))
    n_valid = np.where(n < 10, 1, held // 2)
    n_train = n - held
    return np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2)).astype(np.int64)


def _interactions(rng: np.random.Generator, p: Preset, lat: dict) -> pd.DataFrame:
    users, items = _choose_items(rng, p, lat, _activity(rng, p))
    users, items = _fill_rare_items(rng, p, lat, users, items)
    ts = rng.integers(T0, T1, size=len(users))
    order = np.lexsort((items, ts, users))  # by user, then time (items break ties)
    users, items, ts = users[order], items[order], ts[order]
    rating = rng.choice(np.array([3, 4, 5]), size=len(users), p=[0.15, 0.25, 0.6])
    import pandas as pd

    return pd.DataFrame(
        {
            "userID": users.astype(np.int64),
            "itemID": items.astype(np.int64),
            "rating": rating.astype(np.int64),
            "timestamp": ts.astype(np.int64),
            "x_label": split_labels(users),
        },
    )


# ------------------------------------------------------------------------------------------- features
def _features(rng: np.random.Generator, p: Preset, lat: dict, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """image_feat [n_items, 4096] and text_feat [n_items, 384], float32, built in row blocks."""
    d2 = 2 * LATENT_DIM
    w_img = rng.standard_normal((d2, IMAGE_DIM), dtype=np.float32) / np.sqrt(d2)
    b_img = rng.normal(-0.5, 0.3, size=IMAGE_DIM).astype(np.float32)  # negative bias: sparse after relu
    w_txt = rng.standard_normal((d2, TEXT_DIM), dtype=np.float32) / np.sqrt(d2)
    z_img = np.concatenate([lat["item_shared"], lat["item_visual"]], axis=1)
    z_txt = np.concatenate([lat["item_shared"], lat["item_text"]], axis=1)
    image = np.empty((p.n_items, IMAGE_DIM), dtype=np.float32)
    text = np.empty((p.n_items, TEXT_DIM), dtype=np.float32)
    for start in range(0, p.n_items, block):
        rows = slice(start, start + block)  # the last block may be shorter
        h = z_img[rows] @ w_img + b_img
        image[rows] = np.maximum(h + 0.5 * rng.standard_normal(h.shape, dtype=np.float32), 0.0)
        t = np.tanh(z_txt[rows] @ w_txt + 0.3 * rng.standard_normal((len(h), TEXT_DIM), dtype=np.float32))
        text[rows] = t / (np.linalg.norm(t, axis=1, keepdims=True) + 1e-12)
    return image, text


def generate(preset: str | Preset = "tiny", seed: int = 0, return_latents: bool = False):
    """The synthetic data set: ``(inter, image_feat, text_feat)`` (plus the latents if asked); ``inter`` has
    columns userID itemID rating timestamp x_label, sorted by user and time. The same (preset, seed), the same."""
    p = get_preset(preset)
    rng = np.random.default_rng(seed)
    lat = _latents(rng, p)
    inter = _interactions(rng, p, lat)
    image, text = _features(rng, p, lat)
    return (inter, image, text, lat) if return_latents else (inter, image, text)


# ------------------------------------------------------------------------------------- MMRec on disk
# caches that MMRec models write beside the data under names that do not depend on the data: FREEDOM, DRAGON,
# BM3... (mm_adj*), LATTICE, MGCN, SMORE... (image_adj_*, text_adj_*), DRAGON / DualGNN (user_graph_dict*,
# item_graph_dict*)
STALE_CACHES = ("mm_adj*.pt", "image_adj_*.pt", "text_adj_*.pt", "user_graph_dict*.npy", "item_graph_dict*.npy")


DATASET_YAML = """\
# Synthetic data set written by `mde-mmrec make-data {name} --preset {preset} --seed {seed}`
# (mde_mmrec/synthetic.py documents how it is generated). Modelled on MMRec's baby.yaml; no list values,
# so no model's grid search picks up a dimension from here.
USER_ID_FIELD: userID
ITEM_ID_FIELD: itemID
TIME_FIELD: timestamp

filter_out_cod_start_users: True

inter_file_name: '{name}.inter'

vision_feature_file: 'image_feat.npy'
text_feature_file: 'text_feat.npy'
user_graph_dict_file: 'user_graph_dict.npy'

field_separator: "\\t"
"""


def missing_data_hint(mmrec_root: str | Path, name: str) -> str:
    """What to do about data set ``name`` whose files are missing (the hint main.py gives too)."""
    return mmrec.plugin_module("cli_overrides").missing_data_fix(name, Path(mmrec_root) / "src")


def dataset_files(mmrec_root: str | Path, name: str) -> dict[str, Path]:
    """Where make_dataset writes (and MMRec reads) the files of data set ``name``."""
    root = Path(mmrec_root)
    data = root / "data" / name
    return {
        "inter": data / f"{name}.inter",
        "image": data / "image_feat.npy",
        "text": data / "text_feat.npy",
        "yaml": root / "src" / "configs" / "dataset" / f"{name}.yaml",
    }


def make_dataset(mmrec_root: str | Path, name: str, preset: str = "tiny", seed: int = 0, force: bool = False) -> Path:
    """Write data set ``name`` into the MMRec checkout (a complete one made with this preset and seed is reused;
    one made with others is an error, unless ``force``); returns its data folder."""
    if not name or "/" in name or name.startswith("."):
        raise MdeMmrecError(f"data set name {name!r} is not a plain folder name")
    get_preset(preset)
    mmrec_root = mmrec.mmrec_root(mmrec_root)
    files = dataset_files(mmrec_root, name)
    data_dir = files["inter"].parent
    yaml = files["yaml"].read_text(encoding="utf-8") if files["yaml"].is_file() else None
    if yaml is not None and not yaml.startswith(mmrec.plugin_module("cli_overrides").SYNTHETIC_MARKER):
        raise MdeMmrecError(
            f"{files['yaml']} is not a synthetic data set's config (MMRec's own '{name}'?); "
            f"it is never overwritten: choose another name, e.g. synthetic_{name}"
        )
    if all(f.is_file() for f in files.values()) and not force:
        m = re.search(r"--preset (\S+) --seed (\d+)`", yaml.split("\n", 1)[0])  # as DATASET_YAML writes it
        made_with = (m.group(1), int(m.group(2))) if m else (None, None)
        if made_with != (preset, seed):
            raise MdeMmrecError(
                f"data set {name!r} in {data_dir} was made with preset {made_with[0]}, seed "
                f"{made_with[1]} (first line of {files['yaml']}), not preset {preset}, seed "
                f"{seed}: pass --force to regenerate it, or choose another name"
            )
        log.info("data set %s already exists in %s (use --force to regenerate)", name, data_dir)
        return data_dir
    if files["inter"].is_file() and not force:
        raise MdeMmrecError(f"{data_dir} holds an incomplete data set {name!r}: pass --force to regenerate it")
    t = time.time()
    inter, image, text = generate(preset, seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    for pattern in STALE_CACHES:  # their names do not depend on the data: they would be read for the new data
        for stale in data_dir.glob(pattern):
            stale.unlink()
    np.save(files["image"], image)  # the large files first: a write cut short leaves no interaction file,
    np.save(files["text"], text)  # so the next make-data starts again rather than calling the set incomplete
    inter.to_csv(files["inter"], sep="\t", index=False)
    files["yaml"].write_text(DATASET_YAML.format(name=name, preset=preset, seed=seed))
    log.info(
        f"wrote data set {name} ({preset}, seed {seed}): {inter.userID.max() + 1} users, "
        f"{inter.itemID.max() + 1} items, {len(inter)} interactions in {time.time() - t:.1f}s -> {data_dir}"
    )
    return data_dir


def default_preset(name: str) -> str:
    """The preset a data set name implies: ``baby`` or ``synthetic_baby`` -> baby; anything else -> tiny."""
    stem = name.removeprefix("synthetic_")
    return stem if stem in PRESETS else "tiny"


def _cmd_make_data(args: argparse.Namespace) -> int:
    preset = args.preset or default_preset(args.name)
    print(make_dataset(args.mmrec, args.name, preset=preset, seed=args.seed, force=args.force))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "make-data",
        help="write a synthetic multimodal data set into an MMRec checkout",
        description="Write a synthetic data set in MMRec's format (data/NAME/NAME.inter, image_feat.npy "
        "4096-d, text_feat.npy 384-d, src/configs/dataset/NAME.yaml) with planted multimodal "
        "structure. Presets (users, items, target interactions; the generated count is within a "
        "few percent of the target, e.g. 164,585 for baby): "
        + "; ".join(
            f"{k}: {v.n_users:,} users, {v.n_items:,} items, {v.n_interactions:,} interactions ({v.note})"
            for k, v in PRESETS.items()
        ),
    )
    p.add_argument(
        "name", help="data set name (use with -d NAME); a preset name, or synthetic_<preset>, also picks that preset"
    )
    p.add_argument("--mmrec", required=True, help="path to the MMRec checkout")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="size preset (default: NAME if it is a preset name, else tiny)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--force", action="store_true", help="regenerate even if the files exist")
    p.set_defaults(func=_cmd_make_data)
