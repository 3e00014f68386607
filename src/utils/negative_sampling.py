"""Negative items for MMRec's training loader, drawn for a whole batch at once (installed by mde-mmrec; used
by the patched utils/dataloader.py, patch 0024).

MMRec's TrainDataLoader draws each user's negative item in a Python loop: a uniform draw from the training
split's items, repeated while the user has interacted with the item in training (``_sample_neg_ids``), about
4-7 ms of every 2048-row batch. ``NegativeSampler.sample`` draws the same distribution (uniform over the
training items the user has not interacted with in training) for all users of a batch with NumPy: one draw
per user, then again only for the draws that hit a training positive, until none does. It uses NumPy's
global random state, which MMRec's ``init_seed`` seeds, so a seed gives the same negatives on every run.
"""

import numpy as np


class NegativeSampler:
    """The training interactions ``users[k], items[k]`` as sorted (user, item) keys, and the ``candidates``
    (the training split's item ids) that negatives are drawn from."""

    def __init__(self, users, items, candidates):
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        self.candidates = np.unique(np.asarray(candidates, dtype=np.int64))
        if users.shape != items.shape or not self.candidates.size:
            raise ValueError(
                f"NegativeSampler: {users.shape[0]} users for {items.shape[0]} items and "
                f"{self.candidates.size} candidate items; expected one item per user and candidates"
            )
        self.n_keys = int(max(items.max(initial=0), self.candidates[-1])) + 1
        self.positives = np.unique(users * self.n_keys + items)  # sorted keys user * n_keys + item
        owners, counts = np.unique(self.positives // self.n_keys, return_counts=True)
        full = owners[counts >= self.candidates.size]
        if full.size:  # their loop would never end
            raise ValueError(
                f"NegativeSampler: user(s) {', '.join(map(str, full[:5]))} interacted with every one of "
                f"the {self.candidates.size} candidate items: no negative item is left to draw"
            )

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean per pair: whether user ``users[k]`` interacted with item ``items[k]`` in training."""
        keys = users * self.n_keys + items
        if not self.positives.size:
            return np.zeros(keys.shape, dtype=bool)
        found = np.minimum(np.searchsorted(self.positives, keys), self.positives.size - 1)
        return self.positives[found] == keys

    def sample(self, users, random_state=np.random) -> np.ndarray:
        """One negative item per entry of ``users`` (int64), drawn with ``random_state``'s ``randint`` (NumPy's
        global state by default; a ``np.random.RandomState`` for a private stream)."""
        users = np.asarray(users, dtype=np.int64)
        negatives = self.candidates[random_state.randint(self.candidates.size, size=users.size)]
        redraw = np.flatnonzero(self.is_positive(users, negatives))
        while redraw.size:
            negatives[redraw] = self.candidates[random_state.randint(self.candidates.size, size=redraw.size)]
            redraw = redraw[self.is_positive(users[redraw], negatives[redraw])]
        return negatives
