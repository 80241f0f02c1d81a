"""Numeric tower: a linear map (or a small MLP) of a dense numeric field.

Reads ``"{field}"`` (B, d): the encoder's standardized value(s) followed by a missing-value
indicator column, so a missing value (standardized to 0) still gets its own learned offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hybridrec.models.base import MLP
from hybridrec.towers import as_field_info, require


class NumericTower(nnx.Module):
    """``x @ W + b`` (or an MLP with ``hidden`` layers) of a dense numeric field.

    Args:
      field: name of the field (batch key ``"{field}"``).
      features_info: the field's metadata; needs ``dim`` (d, columns of the dense array).
      output_dim: output width D.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      hidden: widths of hidden layers; ``()`` (default) is a single linear layer.
      activation: ``jax.nn`` activation between layers.
    """

    def __init__(
        self,
        *,
        field: str,
        features_info: Any,
        output_dim: int,
        rngs: nnx.Rngs,
        hidden: Sequence[int] = (),
        activation: str = "relu",
    ):
        info = as_field_info(features_info, field)
        dim = require(info, "dim", "numeric", "a dense numeric field (dim = columns)")
        self.mlp = MLP((dim, *hidden, output_dim), rngs=rngs, activation=activation)
        self.field = field
        self.reads = (field,)
        self.output_dim = output_dim

    def __call__(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """Returns (B, D)."""
        x = jnp.asarray(batch[self.field], jnp.float32)
        if x.ndim == 1:  # a single column given as (B,)
            x = x[:, None]
        return self.mlp(x)  # (B, D)


Tower = NumericTower


def example(batch_size: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Constructor arguments and a matching batch (value, missing indicator) for the test."""
    kwargs = dict(
        field="release_year", features_info=dict(kind="numeric", dim=2), output_dim=8, hidden=(8,)
    )
    missing = rng.random(batch_size) < 0.2
    values = np.where(missing, 0.0, rng.normal(size=batch_size))
    return kwargs, {"release_year": np.stack([values, missing], axis=1).astype(np.float32)}
