"""An MLP over concatenated user and item embeddings (fastai's ``EmbeddingNN``).

``score(u, i) = MLP([p_u, q_i])``, optionally squashed into ``y_range``. Like fastai's
collaborative-filtering ``EmbeddingNN`` (a ``TabularModel`` over the two embeddings), without
its BatchNorm layers: batch statistics would make a score depend on the rest of the batch and
add mutable state to the pure training step.

``score_all`` broadcasts the MLP over the (B, M) grid; its first layer is split into a user part
and an item part, so the (B, M, 2D) concatenation is never built, but the hidden layers still
cost O(B * M * hidden).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from hybridrec.models.base import (
    ITEM_KEY,
    MLP,
    SCORE_KEY,
    USER_KEY,
    Batch,
    ModelError,
    Recommender,
    check_y_range,
    dropout,
    known_mask,
    normal_table,
    step_key,
)
from hybridrec.variables import Embedding, lookup


class EmbeddingNN(Recommender):
    """MLP scorer over [user embedding, item embedding].

    Args:
      num_users: rows of the user table.
      num_items: rows of the item table.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      embedding_dim: width of both embeddings.
      hidden_dims: widths of the hidden layers (fastai's ``layers``).
      embedding_dropout: dropout on the embeddings in training (fastai's ``embed_p``).
      dropout: dropout before each dense layer in training (fastai's ``ps``).
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
        hidden_dims: Sequence[int] = (64,),
        embedding_dropout: float = 0.0,
        dropout: float = 0.0,
        y_range: Sequence[float] | None = None,
        init_stddev: float = 0.1,
    ):
        if min(num_users, num_items, embedding_dim) < 1:
            raise ModelError(
                f"mlp needs positive num_users, num_items, embedding_dim; got "
                f"{num_users}, {num_items}, {embedding_dim}"
            )
        self.user_embedding = Embedding(normal_table(rngs, (num_users, embedding_dim), init_stddev))
        self.item_embedding = Embedding(normal_table(rngs, (num_items, embedding_dim), init_stddev))
        self.mlp = MLP((2 * embedding_dim, *hidden_dims, 1), rngs=rngs, dropout=dropout)
        self.embedding_dropout = float(embedding_dropout)
        self.y_range = check_y_range(y_range)
        self.user_reads = ("ids", "known")
        self.item_reads = ("ids", "known")

    def _encode(self, batch: Batch, table: Embedding, training: bool, key, side: int):
        key = step_key(training, key, (self.embedding_dropout,), "mlp model")
        emb = lookup(table, batch["ids"]) * known_mask(batch)[:, None]  # (B, D)
        return dropout(
            emb, self.embedding_dropout, None if key is None else jax.random.fold_in(key, side)
        )

    def encode_users(self, users: Batch, *, training: bool = False, key=None):
        """(B, D) user embeddings (masked by ``known``)."""
        return self._encode(users, self.user_embedding, training, key, USER_KEY)

    def encode_items(self, items: Batch, *, training: bool = False, key=None):
        """(M, D) item embeddings (masked by ``known``)."""
        return self._encode(items, self.item_embedding, training, key, ITEM_KEY)

    def score_encoded(self, u, v, *, training: bool = False, key=None):
        """``MLP([u, v])`` broadcast over leading dims: (B,) for pairs, (B, M) for a grid."""
        key = step_key(training, key, (self.mlp.dropout,), "mlp model")
        key = None if key is None else jax.random.fold_in(key, SCORE_KEY)
        return self.mlp(u, v, key=key)[..., 0]


Model = EmbeddingNN
