"""Stand-in for MMRec's ``common.abstract_recommender`` (written by us to MMRec's documented interface).

Only what a model sees: ``GeneralRecommender.__init__(config, dataloader)`` sets ``n_users``, ``n_items``,
``batch_size``, ``device`` and, for multimodal models, ``v_feat`` / ``t_feat`` loaded from
``data_path + dataset`` / ``vision_feature_file`` and ``text_feature_file`` (None when a file is absent).
"""

import os

import numpy as np
import torch
import torch.nn as nn


class AbstractRecommender(nn.Module):
    def pre_epoch_processing(self):
        pass

    def post_epoch_processing(self):
        pass

    def calculate_loss(self, interaction):
        raise NotImplementedError

    def full_sort_predict(self, interaction):
        raise NotImplementedError


class GeneralRecommender(AbstractRecommender):
    def __init__(self, config, dataloader):
        super().__init__()
        self.n_users = dataloader.dataset.get_user_num()
        self.n_items = dataloader.dataset.get_item_num()
        self.batch_size = config["train_batch_size"]
        self.device = config["device"]
        self.v_feat, self.t_feat = None, None
        if not config["end2end"] and config["is_multimodal_model"]:
            dataset_path = os.path.abspath(config["data_path"] + config["dataset"])
            v_path = os.path.join(dataset_path, config["vision_feature_file"])
            t_path = os.path.join(dataset_path, config["text_feature_file"])
            if os.path.isfile(v_path):
                self.v_feat = torch.from_numpy(np.load(v_path)).float().to(self.device)
            if os.path.isfile(t_path):
                self.t_feat = torch.from_numpy(np.load(t_path)).float().to(self.device)
            assert self.v_feat is not None or self.t_feat is not None, "Features all NONE"
