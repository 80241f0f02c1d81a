"""Matrix factorization with user and item biases.

``score(u, i) = <p_u, q_i> + b_u + b_i`` (Koren, Bell & Volinsky, "Matrix Factorization
Techniques for Recommender Systems", IEEE Computer 2009), optionally squashed into
``y_range=(lo, hi)`` by ``lo + (hi - lo) * sigmoid(score)`` for explicit ratings, as fastai's
``DotProductBias`` does (use ``y_range=(0, 5.5)`` for 1-5 stars so 5 is reachable). Trained
with BPR on implicit feedback this is BPR-MF (Rendle et al., UAI 2009).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from hybridrec.models.base import (
    Batch,
    FactorisedRecommender,
    ModelError,
    check_y_range,
    known_mask,
    normal_table,
)
from hybridrec.variables import Bias, Embedding, lookup


class MatrixFactorization(FactorisedRecommender):
    """Dot product of user and item embeddings plus per-user and per-item biases.

    Args:
      num_users: rows of the user tables.
      num_items: rows of the item tables.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      embedding_dim: D.
      user_bias: learn a per-user bias (``Bias`` of shape (num_users,), zero-initialised).
      item_bias: learn a per-item bias.
      y_range: ``(lo, hi)`` to squash scores for rating prediction; None for ranking.
      init_stddev: embeddings are initialised from N(0, init_stddev^2).
    """

    def __init__(
        self,
        *,
        num_users: int,
        num_items: int,
        rngs: nnx.Rngs,
        embedding_dim: int = 32,
        user_bias: bool = True,
        item_bias: bool = True,
        y_range: Sequence[float] | None = None,
        init_stddev: float = 0.1,
    ):
        if min(num_users, num_items, embedding_dim) < 1:
            raise ModelError(
                f"mf needs positive num_users, num_items, embedding_dim; got "
                f"{num_users}, {num_items}, {embedding_dim}"
            )
        self.user_embedding = Embedding(normal_table(rngs, (num_users, embedding_dim), init_stddev))
        self.item_embedding = Embedding(normal_table(rngs, (num_items, embedding_dim), init_stddev))
        self.user_bias_table = Bias(jnp.zeros((num_users,))) if user_bias else None
        self.item_bias_table = Bias(jnp.zeros((num_items,))) if item_bias else None
        self.y_range = check_y_range(y_range)
        self.user_reads = ("ids", "known")
        self.item_reads = ("ids", "known")

    @staticmethod
    def _encode(batch: Batch, table: Embedding, bias: Bias | None) -> tuple[jax.Array, jax.Array]:
        known = known_mask(batch)  # (B,)
        ids = batch["ids"]
        repr_ = lookup(table, ids) * known[:, None]  # (B, D)
        b = lookup(bias, ids) * known if bias is not None else jnp.zeros_like(known)  # (B,)
        return repr_, b

    def encode_users(self, users: Batch, *, training: bool = False, key=None):
        """``(p_u * known, b_u * known)``: ((B, D), (B,))."""
        return self._encode(users, self.user_embedding, self.user_bias_table)

    def encode_items(self, items: Batch, *, training: bool = False, key=None):
        """``(q_i * known, b_i * known)``: ((M, D), (M,))."""
        return self._encode(items, self.item_embedding, self.item_bias_table)


Model = MatrixFactorization
