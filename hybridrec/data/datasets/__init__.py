"""Dataset loaders; each returns a ``Dataset`` and has a card in ``data_cards/``."""

from hybridrec.data.datasets.base import Dataset

__all__ = ["Dataset"]
