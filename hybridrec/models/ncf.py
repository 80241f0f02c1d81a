"""Neural collaborative filtering: NeuMF, the fusion of GMF and an MLP.

He, Liao, Zhang, Nie, Hu & Chua, "Neural Collaborative Filtering", WWW 2017. Two pairs of
embedding tables; the GMF branch is the element-wise product ``p_u * q_i`` (D = ``embedding_dim``
"predictive factors"), the MLP branch runs a tower over ``[p'_u, q'_i]`` (widths
``mlp_dims``, ReLU after every layer), and one linear layer over the concatenation of both
branches gives the score. The paper's sigmoid is left to the loss: scores are logits (or squashed
into ``y_range`` if given).

``score_all`` broadcasts over the (B, M) grid. The GMF branch and the final layer are computed
without building (B, M, 2D) concatenations (the MLP's first layer is split into user and item
parts), but the MLP's hidden activations cost O(B * M * mlp_dims[0]) time and memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from hybridrec.models.base import (
    MLP,
    SCORE_KEY,
    Batch,
    ModelError,
    Recommender,
    check_y_range,
    known_mask,
    normal_table,
    step_key,
)
from hybridrec.variables import Embedding, lookup


class NeuMF(Recommender):
    """NeuMF scorer (GMF + MLP).

    Args:
      num_users: rows of the user tables.
      num_items: rows of the item tables.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      embedding_dim: width of the GMF embeddings.
      mlp_dims: widths of the MLP tower's layers; the MLP embeddings have width
        ``mlp_dims[0] // 2`` each (the paper's halving tower, e.g. (64, 32, 16)).
      dropout: dropout before each MLP layer in training.
      y_range: ``(lo, hi)`` to squash scores for rating prediction; None for ranking.
      init_stddev: embeddings are initialised from N(0, init_stddev^2) (the paper uses 0.01).
    """

    def __init__(
        self,
        *,
        num_users: int,
        num_items: int,
        rngs: nnx.Rngs,
        embedding_dim: int = 16,
        mlp_dims: Sequence[int] = (32, 16),
        dropout: float = 0.0,
        y_range: Sequence[float] | None = None,
        init_stddev: float = 0.1,
    ):
        mlp_dims = tuple(int(d) for d in mlp_dims)
        if not mlp_dims or mlp_dims[0] < 2 or min(num_users, num_items, embedding_dim) < 1:
            raise ModelError(
                f"ncf needs positive sizes and mlp_dims[0] >= 2; got num_users={num_users}, "
                f"num_items={num_items}, embedding_dim={embedding_dim}, mlp_dims={mlp_dims}"
            )
        mlp_embedding_dim = mlp_dims[0] // 2

        def table(n, d):
            return Embedding(normal_table(rngs, (n, d), init_stddev))

        self.gmf_user = table(num_users, embedding_dim)
        self.gmf_item = table(num_items, embedding_dim)
        self.mlp_user = table(num_users, mlp_embedding_dim)
        self.mlp_item = table(num_items, mlp_embedding_dim)
        self.mlp = MLP(
            (2 * mlp_embedding_dim, *mlp_dims), rngs=rngs, final_activation=True, dropout=dropout
        )
        # The final "NeuMF layer": one linear map of [GMF vector, MLP output]; written as an MLP
        # with no hidden layer so it takes the two branches as parts (no concatenation).
        self.output = MLP((embedding_dim + mlp_dims[-1], 1), rngs=rngs)
        self.y_range = check_y_range(y_range)
        self.user_reads = ("ids", "known")
        self.item_reads = ("ids", "known")

    @staticmethod
    def _encode(batch: Batch, gmf: Embedding, mlp: Embedding):
        ids, known = batch["ids"], known_mask(batch)[:, None]
        return lookup(gmf, ids) * known, lookup(mlp, ids) * known  # (B, D), (B, D')

    def encode_users(self, users: Batch, *, training: bool = False, key=None):
        """(GMF, MLP) user embeddings, masked by ``known``: ((B, D), (B, D'))."""
        return self._encode(users, self.gmf_user, self.mlp_user)

    def encode_items(self, items: Batch, *, training: bool = False, key=None):
        """(GMF, MLP) item embeddings, masked by ``known``: ((M, D), (M, D'))."""
        return self._encode(items, self.gmf_item, self.mlp_item)

    def score_encoded(self, u, v, *, training: bool = False, key=None):
        """NeuMF logits, broadcast over leading dims: (B,) for pairs, (B, M) for a grid."""
        key = step_key(training, key, (self.mlp.dropout,), "ncf model")
        key = None if key is None else jax.random.fold_in(key, SCORE_KEY)
        (u_gmf, u_mlp), (v_gmf, v_mlp) = u, v
        gmf = u_gmf * v_gmf  # (..., D)
        mlp = self.mlp(u_mlp, v_mlp, key=key)  # (..., mlp_dims[-1])
        return self.output(gmf, mlp)[..., 0]


Model = NeuMF
