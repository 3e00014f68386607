"""`mde-mmrec user-graph --mmrec PATH -d DATASET`: DRAGON's and DualGNN's user_graph_dict.npy, fast.

MMRec's preprocessing/dualgnn-gen-u-u-matrix.py counts the items every pair of users shares in training, in a
Python loop that fills a dense users x users matrix (about 1 minute and 2 GB at Amazon-Baby size, 150 GB at
Elec size), then keeps per user the ``min(neighbours, 200)`` users with the highest counts (``torch.topk`` on
that row). Here the counts come from a sparse product ``R @ R.T`` (R: users x items, binary), a block of users
at a time. For exactly the same file, ties included (their order decides who is kept at the cap), each row is
expanded to a dense float32 row and ranked by ``torch.topk`` with the script's k, rows sharing a k in one call
(torch ranks each row on its own: tests compare with the script). Written with ``np.save`` like the original:

    {user: [[neighbour ids, by count descending], [counts as floats]]}   for every user 0 .. num_user-1

where num_user is the number of distinct users in the whole .inter file (as in the original script).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from . import core, synthetic
from .errors import MdeMmrecError
from .mmrec import mmrec_root

log = logging.getLogger(__name__)

CAP = 200  # neighbours kept per user, as in the original script
BLOCK_BYTES = 256 << 20  # size of one dense block of rows
PROGRESS_EVERY_S = 10.0  # at most one progress line per this many seconds (Elec has 553 blocks of rows)


def co_interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int):
    """Binary users x items scipy matrix of the training pairs (duplicates count once, like the script's sets:
    the CSR conversion sums them, ``sign`` makes each sum 1)."""
    n_items = int(items.max()) + 1 if len(items) else 0
    import scipy.sparse as sp  # here, so that `mde-mmrec --help` stays fast

    return sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items)).sign()


def build_user_graph_dict(users, items, n_users: int, cap: int = CAP, progress=None) -> dict:
    """{user: [[neighbours], [counts]]} for users 0 .. n_users-1 from training pairs (users[k], items[k]):
    the same dict as MMRec's preprocessing/dualgnn-gen-u-u-matrix.py builds."""
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise MdeMmrecError(
            f"user ids must lie in 0..{n_users - 1} (the number of distinct users - 1), found "
            f"{users.min()}..{users.max()}: MMRec needs dense user ids from 0"
        )
    interactions = co_interaction_matrix(users, items, n_users)
    transposed = interactions.T.tocsr()
    block = max(1, min(n_users, BLOCK_BYTES // max(1, 4 * n_users)))
    buffer = np.zeros((block, n_users), dtype=np.float32)  # one dense block of rows, zeroed again after use
    import torch

    dense = torch.from_numpy(buffer)  # the same memory, for torch.topk
    graph = {}
    for start in range(0, n_users, block):
        stop = min(n_users, start + block)
        counts = interactions[start:stop] @ transposed  # shared items of each pair of users
        owner = np.repeat(np.arange(stop - start), np.diff(counts.indptr))
        other = counts.indices != start + owner  # a user is not its own neighbour
        owner, neighbour, shared = owner[other], counts.indices[other], counts.data[other]
        keep = np.minimum(np.bincount(owner, minlength=stop - start), cap)  # the script's k: min(nonzeros, cap)
        order = np.argsort(keep, kind="stable")  # the block's rows by k, so that rows sharing a k are
        slot = np.argsort(order)  # one contiguous slice of the buffer (slot: the inverse permutation)
        buffer[slot[owner], neighbour] = shared  # the script's dense float32 rows
        lists = [None] * (stop - start)
        ks, firsts = np.unique(keep[order], return_index=True)
        for k, first, end in zip(ks, firsts, [*firsts[1:], len(order)]):
            top = torch.topk(dense[first:end], int(k))  # torch.topk ranks each row alone, as the script's call
            for row, indices, values in zip(order[first:end], top.indices.tolist(), top.values.tolist()):
                lists[row] = [indices, values]
        buffer[slot[owner], neighbour] = 0
        graph.update(zip(range(start, stop), lists))
        if progress:
            progress(stop, n_users)
    return graph


def throttled(report, every_s: float, clock=time.monotonic):
    """``report`` called at most once per ``every_s`` seconds (the first call after each gap): long loops
    log readable progress however small their steps are."""
    last = None

    def call(*args):
        nonlocal last
        now = clock()
        if last is None or now - last >= every_s:
            last = now
            report(*args)

    return call


def write_user_graph(mmrec, dataset: str, output=None, cap: int = CAP) -> Path:
    """Build and save the user graph of ``dataset`` in checkout ``mmrec``; returns the file written
    (``output`` exactly as given, else data/DATASET/<user_graph_dict_file>)."""
    root = mmrec_root(mmrec)
    yaml_path = root / "src" / "configs" / "dataset" / f"{dataset}.yaml"
    if not yaml_path.is_file():
        raise MdeMmrecError(
            f"unknown data set {dataset!r}: no {yaml_path}; {synthetic.missing_data_hint(root, dataset)}"
        )
    config = core.merged_config(root, "", dataset)  # read as MMRec reads them
    needed = ("USER_ID_FIELD", "ITEM_ID_FIELD") + (() if output else ("user_graph_dict_file",))
    missing = [key for key in needed if not config.get(key)]
    if missing:
        raise MdeMmrecError(
            f"{yaml_path}: no {', '.join(missing)}: add it (MMRec's dataset configs set USER_ID_FIELD, ITEM_ID_FIELD "
            "and user_graph_dict_file, where DRAGON / DualGNN read the graph; --output writes it elsewhere)"
        )
    if output is not None and Path(output).is_dir():
        raise MdeMmrecError(
            f"--output {output} is a folder; give the file to write, e.g. {Path(output) / 'user_graph_dict.npy'}"
        )
    inter_file = core.interaction_file(root, dataset, cfg=config)
    if not inter_file.is_file():
        raise MdeMmrecError(f"{inter_file} does not exist; {synthetic.missing_data_hint(root, dataset)}")
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    label = config.get("inter_splitting_label", "x_label")
    import pandas as pd

    frame = pd.read_csv(inter_file, sep=config.get("field_separator", "\t"))
    missing = [c for c in (uid, iid, label) if c not in frame.columns]
    if missing:
        raise MdeMmrecError(f"{inter_file}: no column(s) {', '.join(missing)} (columns: {', '.join(frame.columns)})")
    n_users = int(frame[uid].nunique())
    train = frame[frame[label] == 0]
    started = time.time()
    progress = throttled(
        lambda done, total: log.info("user graph: %d / %d users (%.1fs)", done, total, time.time() - started),
        PROGRESS_EVERY_S,
    )
    graph = build_user_graph_dict(train[uid].to_numpy(), train[iid].to_numpy(), n_users, cap, progress)
    target = Path(output) if output else inter_file.parent / config["user_graph_dict_file"]
    try:
        with open(target, "wb") as handle:  # np.save on a path would append .npy to one without it
            np.save(handle, graph, allow_pickle=True)
    except OSError as exc:
        raise MdeMmrecError(
            f"cannot write the user graph to {target}: {exc.strerror or exc}; choose a writable --output path"
        ) from None
    log.info("wrote %s: %d users, %d training interactions, %.1fs", target, n_users, len(train), time.time() - started)
    return target


def _cmd_user_graph(args) -> None:
    print(write_user_graph(args.mmrec, args.dataset, args.output, args.cap))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "user-graph",
        help="write user_graph_dict.npy (DRAGON, DualGNN) in seconds",
        description="Build data/DATASET/<user_graph_dict_file> from the training interactions, identical to "
        "MMRec's preprocessing/dualgnn-gen-u-u-matrix.py (same neighbours, counts, order and "
        "cap), with a sparse product instead of a dense users x users matrix.",
    )
    p.add_argument("--mmrec", required=True, help="path to the MMRec checkout")
    p.add_argument("-d", "--dataset", required=True, help="data set name (as for main.py -d)")
    p.add_argument("--output", help="write here instead of data/DATASET/<user_graph_dict_file>")
    p.add_argument("--cap", type=int, default=CAP, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_user_graph)
