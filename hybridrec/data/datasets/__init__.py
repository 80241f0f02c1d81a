"""Dataset loaders; each returns a ``Dataset`` and has a card in ``data_cards/``."""

from hybridrec.data.datasets._cache import DataFormatError, DataUnavailableError, data_home
from hybridrec.data.datasets.amazon import load_amazon_products
from hybridrec.data.datasets.base import Dataset
from hybridrec.data.datasets.beer import load_beer_reviews
from hybridrec.data.datasets.movielens import load_movielens_100k

__all__ = [
    "Dataset",
    "DataFormatError",
    "DataUnavailableError",
    "data_home",
    "load_amazon_products",
    "load_beer_reviews",
    "load_movielens_100k",
]
