"""One scoring pass for MMRec's valid and test evaluation (installed by mde-mmrec; used by the patched
common/trainer.py).

After each training epoch MMRec's trainer evaluates the valid users, then the test users, with the same
model. Both of its EvalDataLoaders mask the same history (``additional_dataset=train_dataset`` in
utils/quick_start.py), so a user's top-k list is the same in both passes: only the ground truth differs.
Unpatched, the trainer still scores every user twice. ``SharedTopk`` keeps each user's top-k list for one
evaluation round and scores only the users it has not ranked yet, so valid and test together cost one
``full_sort_predict`` per user. The first pass makes exactly MMRec's calls; metrics are unchanged
(tests/test_shared_topk.py, tests/integration/test_mmrec_equivalence.py).

A ``SharedTopk`` is valid for one model state: the trainer makes a new one for every evaluation round.
"""

from __future__ import annotations

import torch

MASKED_SCORE = -1e10  # MMRec's score for a user's training items (common/trainer.py)


def mask_and_rank(scores: torch.Tensor, history: torch.Tensor, k: int) -> torch.Tensor:
    """MMRec's ranking step: training items (``history`` = [batch rows; item ids]) get -1e10, then the
    indices of the ``k`` best scores per row. Modifies ``scores`` in place, as MMRec does."""
    scores[history[0], history[1]] = MASKED_SCORE
    return torch.topk(scores, k, dim=-1)[1]


def select_rows(batched_data, rows: torch.Tensor) -> list:
    """The sub-batch of an EvalDataLoader batch ``[users, history]`` made of batch rows ``rows``, with its
    history rows renumbered 0..len(rows)-1."""
    users, history = batched_data[0], batched_data[1]
    new_row = torch.full((len(users),), -1, dtype=torch.long, device=history.device)
    new_row[rows.to(history.device)] = torch.arange(len(rows), device=history.device)
    renumbered = new_row[history[0]]
    keep = renumbered >= 0
    return [users[rows.to(users.device)], torch.stack([renumbered[keep], history[1][keep]])]


class SharedTopk:
    """Top-k lists of the users ranked so far in one evaluation round, reused by the next loader when it
    masks the same history (the same ``additional_dataset``) and asks for the same ``k``."""

    def __init__(self) -> None:
        self._history, self._k = None, None  # the history dataset and k the stored lists were made with
        self._lists = None  # [n_users, k] item ids, row = user id
        self._ranked = None  # [n_users] bool, whether that row holds a list

    def topk(self, model, batched_data, history_source, k: int) -> torch.Tensor:
        """The ``k`` best items (training items masked) of each user of ``batched_data``: stored lists for
        users already ranked with the same history, ``model.full_sort_predict`` for the others."""
        users = batched_data[0]
        if len(users) == 0:
            return mask_and_rank(model.full_sort_predict(batched_data), batched_data[1], k)
        if self._history is not history_source or self._k != k:
            self._history, self._k, self._lists, self._ranked = history_source, k, None, None
        if self._ranked is None:
            fresh = torch.ones(len(users), dtype=torch.bool, device=users.device)
        else:
            self._grow(int(users.max()) + 1)
            fresh = ~self._ranked[users]
        if not bool(fresh.any()):
            return self._lists[users]
        everyone = bool(fresh.all())  # nothing stored for these users: exactly MMRec's call
        sub = batched_data if everyone else select_rows(batched_data, fresh.nonzero().squeeze(1))
        new = mask_and_rank(model.full_sort_predict(sub), sub[1], k)
        self._store(sub[0], new)
        return new if everyone else self._lists[users]

    def _store(self, users: torch.Tensor, lists: torch.Tensor) -> None:
        if self._lists is None:
            self._lists = torch.empty((0, lists.shape[1]), dtype=lists.dtype, device=lists.device)
            self._ranked = torch.zeros(0, dtype=torch.bool, device=users.device)
        self._grow(int(users.max()) + 1)
        self._lists[users] = lists
        self._ranked[users] = True

    def _grow(self, n: int) -> None:
        """Make room for user ids < n (amortised doubling; MMRec's user ids are 0..n_users-1)."""
        if n <= len(self._ranked):
            return
        size = max(n, 2 * len(self._ranked))
        lists = torch.empty((size, self._lists.shape[1]), dtype=self._lists.dtype, device=self._lists.device)
        lists[: len(self._lists)] = self._lists
        ranked = torch.zeros(size, dtype=torch.bool, device=self._ranked.device)
        ranked[: len(self._ranked)] = self._ranked
        self._lists, self._ranked = lists, ranked
