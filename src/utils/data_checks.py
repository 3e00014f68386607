"""Checks of a data set's files before MMRec loads them (mde-mmrec; main.py through utils/cli_overrides.py,
and the mde-mmrec commands before their first run).

MMRec reads the interaction file in utils/dataset.py (the columns USER_ID_FIELD, ITEM_ID_FIELD and
inter_splitting_label; 0/1/2 = train/valid/test), counts users and items as the largest id + 1, and loads
the feature files in common/abstract_recommender.py. What it cannot train or evaluate on used to end late, in
a Python error far from the cause (``ZeroDivisionError`` for an empty validation split, ``selected index k
out of range`` for a topk larger than the item count, ``negative axis 1 index`` for an id of -1, a
``TypeError`` for a pickled object array) or in a silent hang (a user who has every training item: negative
sampling never ends); here it is a ``DataError`` naming the file, the field and the fix. What MMRec runs on
without complaint but wrongly is returned as warnings: evaluation interactions that are training
interactions too (masked when ranking: never a hit), repeated training rows (weighed twice), and ids without
any interaction (MMRec sizes its models by the largest id, so each gap is an untrained user or an item ranked
in every evaluation).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

FEATURE_KEYS = ("vision_feature_file", "text_feature_file")
RAW_ID_FACTOR, RAW_ID_SLACK = 10, 1000  # more ids than this many times the distinct ones, plus this: raw ids


class DataError(ValueError):
    """A data set MMRec cannot run on; the message names the file, the field and the fix."""


class InteractionSummary(NamedTuple):
    """The interaction file as MMRec will see it."""

    n_users: int  # the largest user id + 1
    n_items: int  # the largest item id + 1
    split_rows: tuple  # rows with label 0, 1, 2
    per_user: tuple  # training rows per user: min, median, max


def check_interaction_file(path, config) -> tuple:
    """Check the interaction file ``path`` as MMRec will read it with ``config`` (the merged configuration);
    returns (number of items as MMRec counts them, warnings), raises DataError. Skipped ((None, [])) where
    the config lacks the column names."""
    summary, warnings = _checked(path, config)
    return (summary.n_items if summary else None), list(warnings)


def interaction_summary(path, config) -> InteractionSummary | None:
    """``check_interaction_file``'s reading of the file, described (None where the config lacks the column
    names); the file is read once per process for both."""
    return _checked(path, config)[0]


def _checked(path, config) -> tuple:
    keys = ("USER_ID_FIELD", "ITEM_ID_FIELD", "inter_splitting_label")
    if not all(config.get(k) for k in keys):
        return None, ()
    topk = config.get("topk")
    topk = tuple(topk) if isinstance(topk, list) and topk and all(isinstance(k, int) for k in topk) else ()
    return _check_interactions(
        str(path),
        _version(path),
        *(str(config[k]) for k in keys),
        str(config.get("field_separator") or "\t"),
        bool(config.get("filter_out_cod_start_users")),
        topk,
        str(config.get("valid_metric")),
        bool(config.get("use_neg_sampling", True)) and not config.get("use_full_sampling"),
    )


@functools.lru_cache(maxsize=8)  # several jobs on one data set are checked in one process (mde-mmrec)
def _check_interactions(
    path: str,
    version: tuple,
    uid: str,
    iid: str,
    label: str,
    sep: str,
    cold_start_filter: bool,
    topk: tuple,
    valid_metric: str,
    samples_negatives: bool,
) -> tuple:
    columns = f"the columns {uid}, {iid} and {label} (USER_ID_FIELD, ITEM_ID_FIELD, inter_splitting_label)"
    try:
        df = pd.read_csv(path, usecols=[uid, iid, label], sep=sep)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' errors (missing columns ...) are ValueErrors
        raise DataError(
            f"{path} cannot be read as MMRec reads it ({type(exc).__name__}: {exc}); it needs "
            f"{columns}, separated by {sep!r} (field_separator)"
        ) from None
    for column in (uid, iid, label):
        values = df[column]
        if values.isna().any():
            raise DataError(
                f"{path}: {int(values.isna().sum())} rows have no {column} (empty cells); fill or remove them"
            )
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.isna().any() or not np.array_equal(numeric, np.floor(numeric)) or (numeric < 0).any():
            bad = values[numeric.isna() | (numeric != np.floor(numeric)) | (numeric < 0)].iloc[0]
            shown = repr(bad) if isinstance(bad, str) else bad
            raise DataError(
                f"{path}: {column} must hold integers >= 0 (ids 0..n-1, splits 0/1/2), found {shown}; "
                f"renumber the column"
            )
        df[column] = numeric.astype(np.int64)
    split = {name: df[df[label] == code] for code, name in enumerate(("training", "validation", "test"))}
    if split["training"].empty:
        raise DataError(f"{path}: no training rows ({label} 0); MMRec trains on them")
    train_users = set(split["training"][uid])
    for code, name in ((1, "validation"), (2, "test")):
        rows = split[name]
        if cold_start_filter:  # MMRec drops evaluation rows of users without training rows
            rows = rows[rows[uid].isin(train_users)]
        if rows.empty:
            raise DataError(
                f"{path}: no {name} rows ({label} {code}) of users who have training rows; MMRec "
                f"evaluates on them (it fails with ZeroDivisionError): split each user's interactions "
                f"into training, validation and test rows"
            )
    n_users, n_items = int(df[uid].max()) + 1, int(df[iid].max()) + 1
    for column, count, what in ((uid, n_users, "users"), (iid, n_items, "items")):
        distinct = int(df[column].nunique())
        if count > RAW_ID_FACTOR * distinct + RAW_ID_SLACK:
            raise DataError(
                f"{path}: {column} holds {distinct} distinct ids, the largest {count - 1}: MMRec takes the "
                f"largest id + 1 as the number of {what} and would build {count} embeddings; these look "
                f"like raw ids: renumber the {column}s 0..n-1"
                + (" (and the feature files' rows with them)" if what == "items" else "")
            )
    if topk and max(topk) > n_items:
        raise DataError(
            f"{path}: {n_items} items (the largest {iid} + 1), fewer than the largest topk {max(topk)}: "
            f"MMRec ranks the top {max(topk)} items of every user; give a smaller topk, e.g. "
            f"{_smaller_topk(topk, n_items, valid_metric)}"
        )
    train_pairs = np.sort(_pairs(split["training"], uid, iid, n_items))
    if samples_negatives:
        _check_negative_items_exist(path, train_pairs, n_items, uid, label)
    warnings = []
    other = int((~df[label].isin([0, 1, 2])).sum())
    if other:
        warnings.append(f"{path}: {other} rows have a {label} other than 0, 1, 2; MMRec ignores them")
    repeated = int((np.diff(train_pairs) == 0).sum())
    if repeated:
        warnings.append(
            f"{path}: {repeated} training rows repeat an earlier one (same {uid} and {iid}); MMRec "
            f"samples training rows, so each repeat weighs that interaction once more: remove them "
            f"unless that is meant"
        )
    for name in ("validation", "test"):
        rows = split[name]
        codes = _pairs(rows, uid, iid, n_items)  # in the sorted training codes? (np.isin hashes: slower)
        found = train_pairs[np.minimum(np.searchsorted(train_pairs, codes), len(train_pairs) - 1)] == codes
        repeated = int(found.sum())
        if repeated:
            warnings.append(
                f"{path}: {repeated} of {len(rows)} {name} rows are training rows too (same {uid} and "
                f"{iid}); MMRec hides training items when ranking, so they can never be hit: remove "
                f"them from the {name} split"
            )
    for column, count, what in ((uid, n_users, "users"), (iid, n_items, "items")):
        unused = count - df[column].nunique()
        if unused:
            warnings.append(
                f"{path}: {unused} of the {column}s 0..{count - 1} have no interaction (ids offset, or "
                f"gaps); MMRec sizes its models by the largest id + 1, so these {what} are "
                + ("untrained embeddings" if what == "users" else "untrained and ranked in every evaluation")
                + f": renumber the {column}s 0..n-1"
            )
    per_user = split["training"].groupby(uid).size()
    summary = InteractionSummary(
        n_users,
        n_items,
        tuple(len(split[n]) for n in ("training", "validation", "test")),
        (int(per_user.min()), float(per_user.median()), int(per_user.max())),
    )
    return summary, tuple(warnings)


def _smaller_topk(topk: tuple, n_items: int, valid_metric: str) -> str:
    """main.py's overrides for the ``topk`` values that fit ``n_items`` (and a valid_metric among them)."""
    fits = [k for k in topk if k <= n_items] or [n_items]
    metric, _, k = valid_metric.partition("@")
    fix = f"--topk='[{','.join(map(str, fits))}]'"
    if not (k.isdigit() and int(k) in fits):
        fix += f" --valid_metric={metric if k else 'Recall'}@{max(fits)}"
    return fix


def _check_negative_items_exist(path: str, train_pairs: np.ndarray, n_items: int, uid: str, label: str) -> None:
    """MMRec's sampler draws training items until one is not the user's (a negative item); for a user who has
    every item of the training split it never ends (patch 0019 stops it there; this says so before loading)."""
    distinct = train_pairs[np.r_[True, train_pairs[1:] != train_pairs[:-1]]]  # sorted: np.unique would sort again
    items_in_training = int(np.bincount(distinct % n_items, minlength=n_items).astype(bool).sum())
    items_per_user = np.bincount(distinct // n_items)
    full = np.flatnonzero(items_per_user >= items_in_training)
    if len(full):
        shown = ", ".join(map(str, full[:5])) + (", ..." if len(full) > 5 else "")
        raise DataError(
            f"{path}: {len(full)} user(s) interacted with every item of the training split "
            f"({items_in_training} items), {uid} {shown}: negative sampling needs an item the user has "
            f"not interacted with, and would never end; remove these users, or some of their training "
            f"rows ({label} 0), from the file"
        )


def _pairs(rows: pd.DataFrame, uid: str, iid: str, n_items: int) -> np.ndarray:
    """Each (user, item) row as one int64 code."""
    return rows[uid].to_numpy(np.int64) * n_items + rows[iid].to_numpy(np.int64)


def feature_files(folder, config, model: str | None, where: str) -> tuple[dict, list[str]]:
    """The feature files a multimodal model will load from ``folder`` ({key: path}) and warnings; the same rule
    for main.py and the mde-mmrec commands. A key left out of the config (``where``) means that modality is not
    used (a warning: the model trains on the other alone; MMRec with patch 0016). A file the config names that
    is missing is an error, except for MDE, which runs on one modality. No feature file at all is an error
    (MMRec stops with 'Features all NONE')."""
    named = {key: Path(folder) / str(config[key]) for key in FEATURE_KEYS if config.get(key)}
    present = {key: path for key, path in named.items() if path.is_file()}
    state = {
        key: (
            "not set"
            if key not in named
            else ""
            if key in present
            else f"{named[key]} {'is not a file' if named[key].exists() else 'is missing'}"
        )
        for key in FEATURE_KEYS
    }
    if not present:
        raise DataError(
            f"no feature file for {model or 'a multimodal model'}: "
            + "; ".join(f"{key} {state[key]}" for key in FEATURE_KEYS)
            + f" ({where}); multimodal models need image or text features (MMRec stops with 'Features "
            f"all NONE'): name the .npy files there, or choose a model without features"
        )
    warnings = []
    for key in FEATURE_KEYS:
        other = "image" if key == "text_feature_file" else "text"
        if key in present:
            continue
        if key in named and model != "MDE":
            raise DataError(
                f"feature file {state[key]} ({key} in {where}): {model or 'a multimodal model'} would "
                f"train on {other} features alone; restore the file, or remove {key} from {where} to "
                f"run on {other} features on purpose"
            )
        warnings.append(
            f"{key} {state[key]} ({where}): {model or 'the model'} trains on {other} features alone"
            + (", with MDA and MSA off" if model == "MDE" else "")
        )
    return present, warnings


LARGEST_FEATURE = 1e6  # larger feature values are warned about (check_feature_file)


def check_feature_file(path, where: str, n_items: int | None = None, inter_file=None) -> list[str]:
    """A feature file MMRec can load: a 2-D .npy array of finite numbers of a type PyTorch converts (read in
    blocks through a memory map, under a second for Elec's 1 GB of image features), one row per item where
    ``n_items`` (as MMRec counts them in ``inter_file``) is given. Returns warnings: values so large that
    models' scores overflow."""
    fix = "regenerate it (`mde-mmrec make-data ... --force` for a synthetic data set)"
    try:
        array = np.load(path, mmap_mode="r")
    except Exception as exc:  # empty, cut off, pickled objects, not .npy: EOFError, ValueError, OSError, ...
        raise DataError(
            f"feature file {path} ({where}) cannot be read as a .npy array of numbers ({_load_error(path, exc)}); {fix}"
        ) from None
    shape = array.shape
    if len(shape) != 2 or 0 in shape or array.dtype.kind not in "biuf":
        raise DataError(
            f"feature file {path} ({where}) holds a {array.dtype} array of shape {shape}, expected numbers "
            f"of shape (number of items, feature dimension); {fix}"
        )
    if not _torch_converts(array.dtype):  # torch.from_numpy refuses some types, and any non-native byte order
        what = (
            f"numbers in non-native byte order ({array.dtype.str})"
            if not array.dtype.isnative
            else f"{array.dtype} numbers"
        )
        raise DataError(
            f"feature file {path} ({where}) holds {what}, which PyTorch cannot convert (MMRec loads "
            f"features with torch.from_numpy): save them as native float32, e.g. "
            f"np.save(path, np.load(path).astype(np.float32))"
        )
    if n_items is not None and shape[0] != n_items:
        raise DataError(
            f"feature file {path} ({where}) has {shape[0]} rows, but MMRec counts {n_items} items (the "
            f"largest item id in {inter_file} + 1) and reads one row per item id: if the ids there are "
            f"offset, or the last items have no interaction, renumber them 0..n-1 like the feature "
            f"rows; else {fix}"
        )
    bad_rows, largest = _scanned(str(path), _version(path))
    if len(bad_rows):
        raise DataError(
            f"feature file {path} ({where}) has NaN or inf in {len(bad_rows)} of its {shape[0]} rows "
            f"(the first: row {bad_rows[0]}, item id {bad_rows[0]}); every model would train on a NaN "
            f"loss: replace them (e.g. with zeros) or {fix}"
        )
    scale = "scale them (e.g. divide each row by its L2 norm)"
    if largest > float(np.finfo(np.float32).max):
        raise DataError(
            f"feature file {path} ({where}) holds values up to {largest:.8g} in magnitude, beyond "
            f"float32's range: MMRec converts features to float32, where they become inf, and every "
            f"model would train on a NaN loss; {scale}"
        )
    if largest > LARGEST_FEATURE:
        return [
            f"feature file {path} ({where}) holds values up to {largest:.8g} in magnitude (pre-trained image and "
            f"text features are within about +-100): projected into scores they can overflow to inf, and the "
            f"run then stops on a NaN loss; {scale}"
        ]
    return []


def check_feature_tensors(features: dict, files: dict, n_items: int, inter_file: str, log) -> None:
    """The item feature tensors a model got from MMRec ({modality: tensor}, ``files`` their paths), checked
    against the item count: a clear ValueError for a wrong shape or NaN/inf, a warning for a modality whose
    rows are all the same vector."""
    for m, feat in features.items():
        if feat.dim() != 2 or feat.shape[0] != n_items or feat.shape[1] == 0:
            raise ValueError(
                f"MDE: {files[m]} has shape {tuple(feat.shape)}, expected ({n_items}, dim >= 1): one row per item "
                f"id 0..{n_items - 1}, since MMRec counts items as the largest itemID in {inter_file} + 1. If the "
                f"ids there are offset, or the last items have no interaction, renumber them 0..n-1 like the "
                f"feature rows; else regenerate this file"
            )
        if not feat.isfinite().all():
            bad = int((~feat.isfinite()).any(dim=1).sum())
            raise ValueError(f"MDE: {files[m]} contains NaN or inf in {bad} item rows; replace them (e.g. with zeros)")
        if n_items > 1 and feat.amin(dim=0).equal(feat.amax(dim=0)):  # every row the same vector
            what = "all zero" if not feat[0].any() else "identical"
            log.warning(
                "MDE: every row of %s is %s: this modality tells no two items apart, and its item-item graph "
                "(eq. 4) %s; check the file, or leave the modality out (remove its key from the data set's yaml: "
                "MDE then runs on the other one)",
                files[m],
                what,
                "has no edges" if what == "all zero" else "links arbitrary items",
            )


def _torch_converts(dtype: np.dtype) -> bool:
    """Whether torch.from_numpy, as MMRec loads features, takes this dtype (which ones depends on the torch
    version: unsigned 16-64 bit from 2.3 on)."""
    import torch

    try:
        torch.from_numpy(np.empty((0,), dtype=dtype))
    except (TypeError, ValueError):
        return False
    return True


def _load_error(path, exc: Exception) -> str:
    """np.load's complaint, or plainly that the file is not a .npy file (numpy then talks about pickles)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError:
        magic = None
    if magic == b"":
        return "the file is empty"
    if magic is not None and magic != b"\x93NUMPY":
        return "it is not a .npy file: no NumPy header"
    return f"{type(exc).__name__}: {exc}"


def _version(path) -> tuple:
    """What changes when a file is rewritten, replaced or touched: the key of the caches below."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns


@functools.lru_cache(maxsize=8)  # mde-mmrec checks each job's command line in one process: read the file once
def _scanned(path: str, version: tuple) -> tuple[np.ndarray, float]:
    return _scan_values(np.load(path, mmap_mode="r"))


def _scan_values(array: np.ndarray, block_bytes: int = 1 << 26) -> tuple[np.ndarray, float]:
    """(indices of the rows holding NaN or inf, the largest finite magnitude), read block by block. A row's
    float64 sum is finite exactly when the row is (float32 rows cannot overflow it); only rows whose sum is
    not are looked at element-wise."""
    rows = max(1, block_bytes // max(1, array.shape[1] * array.itemsize))
    bad, largest = [], 0.0
    for start in range(0, array.shape[0], rows):
        block = np.asarray(array[start : start + rows])
        with np.errstate(over="ignore", invalid="ignore"):
            suspects = np.flatnonzero(~np.isfinite(block.sum(axis=1, dtype=np.float64)))
        not_finite = [i for i in suspects if not np.isfinite(block[i]).all()]
        bad += [start + i for i in not_finite]
        finite = np.delete(block, not_finite, axis=0) if not_finite else block
        if finite.size:
            largest = max(largest, float(finite.max()), -float(finite.min()))
    return np.asarray(bad, dtype=np.int64), largest
