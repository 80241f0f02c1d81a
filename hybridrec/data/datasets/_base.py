"""The ``Dataset`` container that every loader returns, and the data errors and warnings.

``DataError`` (a ``ValueError``) is the base of every error a loader raises for bad input, with a
message naming the file, the line or column, and the bad value; ``DataWarning`` is what a loader
emits when it drops, merges or coerces something, which it also records in
``Dataset.info["warnings"]`` (see ``report``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.data.datasets._cache import (
    DataError,
    DataFormatError,
    DataWarning,
    MissingDataFileError,
    report,
)
from hybridrec.data.interactions import Interactions

__all__ = [
    "DataError",
    "DataFormatError",
    "DataWarning",
    "Dataset",
    "MissingDataFileError",
    "report",
]


@dataclasses.dataclass(eq=False)
class Dataset:
    """Interactions plus the side metadata of their users and items.

    Attributes:
      name: short name, e.g. ``"movielens-100k"``.
      interactions: all interactions, in the dataset's full ID space. For the item-pair task
        (Amazon products) the "users" are query products and the "items" are related products;
        both maps then hold the same product IDs.
      item_metadata: one row per item, indexed by raw item ID, in ``interactions.item_map`` order
        (``item_metadata.index`` equals ``item_map.raw_ids``); None if the dataset has none.
      user_metadata: the same for users; None if the dataset has none.
      split: optional (N,) array of split labels (``"train"``, ``"val"``, ``"test"``) per
        interaction, from a column of the source (bring-your-own split).
      info: free-form facts about the source (checksums, where it came from, counts); under
        ``"warnings"`` a list of what the loader dropped, merged or coerced, one sentence each.
    """

    name: str
    interactions: Interactions
    item_metadata: pd.DataFrame | None = None
    user_metadata: pd.DataFrame | None = None
    split: np.ndarray | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def without_interactions(self) -> Dataset:
        """The same dataset with no interaction rows (the ID maps, metadata and info kept), for
        a holder of its splits that need not keep a second copy of every interaction."""
        empty = self.interactions.subset(np.zeros(0, np.int64))
        return dataclasses.replace(self, interactions=empty, split=None)

    def __repr__(self) -> str:
        parts = [f"Dataset({self.name!r}: {self.interactions!r}"]
        if self.item_metadata is not None:
            parts.append(f"item metadata {list(self.item_metadata.columns)}")
        if self.user_metadata is not None:
            parts.append(f"user metadata {list(self.user_metadata.columns)}")
        return ", ".join(parts) + ")"
