"""Data layer: interactions, splits, negative sampling, side features and datasets."""

from hybridrec.data.interactions import IdMap, Interactions, InteractionsError

__all__ = ["IdMap", "Interactions", "InteractionsError"]
