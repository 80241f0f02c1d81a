"""ID tower: one learned vector per entity (the classic collaborative-filtering embedding).

Reads ``"ids"`` (B,) and, when present, ``"known"`` (B,): the output row of an entity with
``known == 0`` (cold in training, or ID-dropped this step) is zero, so an untrained (random)
row never leaks into its representation, and that row receives no gradient.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from flax import nnx

from hybridrec.models.base import known_mask, normal_table
from hybridrec.towers import TowerError
from hybridrec.variables import Embedding, lookup


class IdTower(nnx.Module):
    """Embedding lookup of entity IDs, masked by ``known``.

    Args:
      num_entities: number of users or items (rows of the table).
      output_dim: embedding width D.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      init_stddev: the table is initialised from N(0, init_stddev^2).
    """

    def __init__(
        self, *, num_entities: int, output_dim: int, rngs: nnx.Rngs, init_stddev: float = 0.1
    ):
        if num_entities < 1 or output_dim < 1:
            raise TowerError(
                f"ids tower needs num_entities >= 1 and output_dim >= 1, got "
                f"{num_entities} and {output_dim}"
            )
        self.table = Embedding(normal_table(rngs, (num_entities, output_dim), init_stddev))
        self.reads = ("ids", "known")
        self.output_dim = output_dim

    def __call__(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """Returns (B, D): ``table[ids] * known[:, None]``."""
        return lookup(self.table, batch["ids"]) * known_mask(batch)[:, None]


Tower = IdTower


def example(batch_size: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Constructor arguments and a matching batch (some entities cold) for the contract test."""
    kwargs = dict(num_entities=11, output_dim=8)
    batch = {
        "ids": rng.integers(0, 11, batch_size).astype(np.int32),
        "known": (rng.random(batch_size) < 0.8).astype(np.float32),
    }
    return kwargs, batch
