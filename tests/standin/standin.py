"""Stand-ins for MMRec's Config and TrainDataLoader (written by us to the documented interface)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class StandInConfig:
    """Dict-backed like MMRec's Config: ``config[missing]`` is None, ``key in config`` works."""

    def __init__(self, values: dict):
        self._values = dict(values)

    def __getitem__(self, key):
        return self._values.get(key)

    def __setitem__(self, key, value):
        self._values[key] = value

    def __contains__(self, key):
        return key in self._values


class _StandInDataset:
    def __init__(self, n_users: int, n_items: int):
        self._n_users, self._n_items = n_users, n_items

    def get_user_num(self) -> int:
        return self._n_users

    def get_item_num(self) -> int:
        return self._n_items


class StandInTrainLoader:
    """The training loader as a model sees it: ``dataset`` sizes and ``inter_matrix`` of TRAINING pairs."""

    def __init__(self, users, items, n_users: int, n_items: int):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.dataset = _StandInDataset(n_users, n_items)

    def inter_matrix(self, form: str = "coo"):
        n_users, n_items = self.dataset.get_user_num(), self.dataset.get_item_num()
        mat = sp.coo_matrix((np.ones(len(self.users)), (self.users, self.items)), shape=(n_users, n_items))
        if form == "coo":
            return mat
        if form == "csr":
            return mat.tocsr()
        raise NotImplementedError(f"sparse matrix format [{form}] has not been implemented.")

    def batches(self, batch_size: int, rng: np.random.Generator):
        """Yield MMRec-style [3, B] LongTensors (user, positive, uniformly sampled negative)."""
        seen = set(zip(self.users.tolist(), self.items.tolist()))
        n_items = self.dataset.get_item_num()
        order = rng.permutation(len(self.users))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            negs = []
            for u in self.users[idx]:
                j = int(rng.integers(n_items))
                while (int(u), j) in seen:
                    j = int(rng.integers(n_items))
                negs.append(j)
            yield torch.tensor(np.stack([self.users[idx], self.items[idx], np.array(negs)]), dtype=torch.long)
