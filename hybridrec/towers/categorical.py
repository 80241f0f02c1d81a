"""Categorical tower: an embedding bag over a (multi-valued) categorical field.

Reads ``"{field}/ids"`` (B, W) and ``"{field}/weights"`` (B, W) (see ``hybridrec.towers`` for
the conventions: 0 = padding, contributes nothing; 1 = unknown/missing, a learned row like any
other category). The default ``pooling="mean"`` averages the entity's category vectors, so an
item with three genres is not three times as long as an item with one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from hybridrec.models.base import normal_table
from hybridrec.towers import POOLINGS, TowerError, as_field_info, embedding_bag, require
from hybridrec.variables import Embedding


class CategoricalTower(nnx.Module):
    """Pooled embeddings of an entity's categories.

    Args:
      field: name of the field (batch keys ``"{field}/ids"`` and ``"{field}/weights"``).
      features_info: the field's metadata; needs ``vocab_size`` (rows incl. padding and unknown).
      output_dim: embedding width D.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      pooling: ``"mean"``, ``"sum"`` or ``"sqrtn"`` (see ``hybridrec.towers.embedding_bag``).
      init_stddev: the table is initialised from N(0, init_stddev^2); row 0 (padding) is zero.
    """

    kind = "categorical"
    default_pooling = "mean"

    def __init__(
        self,
        *,
        field: str,
        features_info: Any,
        output_dim: int,
        rngs: nnx.Rngs,
        pooling: str | None = None,
        init_stddev: float = 0.1,
    ):
        info = as_field_info(features_info, field)
        vocab_size = require(info, "vocab_size", self.kind, "a vocabulary (vocab_size)")
        pooling = self.default_pooling if pooling is None else pooling
        if pooling not in POOLINGS:
            raise TowerError(
                f"{self.kind} tower on field {field!r}: unknown pooling {pooling!r}; "
                f"use one of {POOLINGS}"
            )
        table = normal_table(rngs, (vocab_size, output_dim), init_stddev)
        # Padding never receives a gradient (it is masked), so a zero row stays zero: exported
        # tables then show padding as the zero vector.
        self.table = Embedding(table.at[0].set(0.0))
        self.field = field
        self.pooling = pooling
        self.reads = (f"{field}/ids", f"{field}/weights")
        self.output_dim = output_dim

    def __call__(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """Returns (B, D) pooled embeddings (weights default to 1 when the batch has none)."""
        ids = batch[f"{self.field}/ids"]  # (B, W)
        weights = batch.get(f"{self.field}/weights")  # (B, W) or None
        return embedding_bag(self.table, ids, weights, self.pooling)


Tower = CategoricalTower


def example_bag(
    batch_size: int, rng: np.random.Generator, vocab_size: int, width: int, tfidf: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A random bag field: (B, W) ids (padding at the end of each row) and (B, W) weights."""
    lengths = rng.integers(0, width + 1, batch_size)  # some empty bags
    slots = np.arange(width)[None, :] < lengths[:, None]  # (B, W)
    ids = np.where(slots, rng.integers(1, vocab_size, (batch_size, width)), 0).astype(np.int32)
    raw = rng.uniform(0.1, 2.0, (batch_size, width)) if tfidf else np.ones((batch_size, width))
    weights = np.where(slots, raw, 0.0).astype(np.float32)
    return ids, weights


def example(batch_size: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Constructor arguments and a matching batch for the contract test."""
    info = dict(kind="categorical", vocab_size=6, width=3)
    kwargs = dict(field="genres", features_info=info, output_dim=8)
    ids, weights = example_bag(batch_size, rng, vocab_size=6, width=3, tfidf=False)
    return kwargs, {"genres/ids": ids, "genres/weights": weights}
