"""mde-mmrec: the MDE multimodal recommender as an MMRec plugin, and the tooling around it."""

__version__ = "0.1.0"
