"""Dataset loaders; each returns a ``Dataset`` and has a card in ``data_cards/``.

``load_dataset(config.data)`` picks the loader by ``name``: ``movielens-100k`` (the default),
``beer-advocate`` (a ``beer_reviews.csv`` at ``path``), ``amazon-products`` (a McAuley metadata
file at ``path``), ``synthetic`` (options in ``synthetic``) or ``files`` (options in ``files``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hybridrec.data.datasets._base import DataError, Dataset, DataWarning, MissingDataFileError
from hybridrec.data.datasets._cache import DataFormatError, DataUnavailableError, data_home
from hybridrec.data.datasets.amazon import load_amazon_products
from hybridrec.data.datasets.beer import load_beer_reviews
from hybridrec.data.datasets.files import FilesError, load_files
from hybridrec.data.datasets.movielens import load_movielens_100k
from hybridrec.data.datasets.synthetic import make_synthetic

DATASETS = ("movielens-100k", "beer-advocate", "amazon-products", "synthetic", "files")

__all__ = [
    "DATASETS",
    "DataError",
    "DataWarning",
    "Dataset",
    "MissingDataFileError",
    "DataFormatError",
    "DataUnavailableError",
    "FilesError",
    "data_home",
    "load_amazon_products",
    "load_beer_reviews",
    "load_dataset",
    "load_files",
    "load_movielens_100k",
    "make_synthetic",
]


def load_dataset(spec: Mapping[str, Any]) -> Dataset:
    """Loads the dataset a config's ``data`` section names.

    Args:
      spec: ``{"name": ..., "path": ..., "synthetic": {...}, "files": {...}, ...}``; other keys
        (e.g. ``implicit_threshold``) are for the trainer and ignored here.

    Raises:
      ValueError: unknown name (listing the known ones) or a loader that needs a path without one.
    """
    name = spec.get("name", "movielens-100k")
    path = spec.get("path")
    if name in ("movielens-100k", "ml-100k", "movielens"):
        return load_movielens_100k(path, download=spec.get("download"))
    if name in ("beer-advocate", "beer"):
        if not path:
            raise ValueError(
                "data.name='beer-advocate' needs data.path=<beer_reviews.csv>; it cannot be "
                "downloaded here (use data.name='synthetic' with flavour='beer' to try the config)"
            )
        return load_beer_reviews(path)
    if name in ("amazon-products", "amazon"):
        if not path:
            raise ValueError("data.name='amazon-products' needs data.path=<meta_Category.json.gz>")
        return load_amazon_products(path, max_lines=spec.get("max_lines"))
    if name == "synthetic":
        return make_synthetic(**dict(spec.get("synthetic") or {}))
    if name == "files":
        files = dict(spec.get("files") or {})
        if not files.get("interactions"):
            raise ValueError("data.name='files' needs data.files.interactions=<path>")
        return load_files(files.pop("interactions"), **files)
    # A researcher's own loader by dotted path, called with ``data.options``; it returns a
    # Dataset (hybridrec.plugins).
    from hybridrec.plugins import resolve

    loader = resolve(
        name, {}, what="dataset", error=ValueError, extra_names=(*DATASETS, "ml-100k", "beer")
    )
    dataset = loader(**dict(spec.get("options") or {}))
    if not isinstance(dataset, Dataset):
        raise ValueError(
            f"dataset loader {name!r} returned {type(dataset).__name__}, not a "
            "hybridrec.data.datasets.Dataset"
        )
    return dataset
