"""Two-tower model: an MLP per side over the ID embedding (and optional feature towers).

``score(u, i) = <f(u), g(i)>`` where ``f`` and ``g`` are MLPs over the concatenation of each
side's tower outputs: the ID embedding, plus any feature towers given in ``user_towers`` /
``item_towers`` (the "dual encoder" of retrieval systems, e.g. Yi et al., "Sampling-Bias-Corrected
Neural Modeling for Large Corpus Item Recommendations", RecSys 2019). It is a ``hybrid`` model
with ``combiner="concat_mlp"`` and no biases, so ``user_repr`` / ``item_repr`` are the tower
outputs and ``score_all`` is one matrix product. ID dropout works as in ``hybrid``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flax import nnx

from hybridrec.models.hybrid import HybridModel


class TwoTower(HybridModel):
    """Dot product of two MLP towers.

    Args:
      num_users: number of users.
      num_items: number of items.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      user_features_info: field name -> metadata of user features.
      item_features_info: field name -> metadata of item features.
      embedding_dim: D, the output width of both towers.
      id_embedding_dim: width of the ID embeddings fed to the MLPs (default D).
      hidden_dims: hidden widths of both MLPs.
      user_towers: extra user feature towers (name -> spec, as in ``hybrid``).
      item_towers: extra item feature towers.
      id_dropout: fraction of items whose ID is dropped per training step.
      user_id_dropout: the same for users.
      y_range: ``(lo, hi)`` to squash scores for rating prediction; None for ranking.
    """

    def __init__(
        self,
        *,
        num_users: int,
        num_items: int,
        rngs: nnx.Rngs,
        user_features_info: Mapping[str, Any] | None = None,
        item_features_info: Mapping[str, Any] | None = None,
        embedding_dim: int = 32,
        id_embedding_dim: int | None = None,
        hidden_dims: Sequence[int] = (64,),
        user_towers: Mapping[str, Mapping[str, Any]] | None = None,
        item_towers: Mapping[str, Mapping[str, Any]] | None = None,
        id_dropout: float = 0.0,
        user_id_dropout: float = 0.0,
        y_range: Sequence[float] | None = None,
    ):
        id_spec = {"tower": "ids", "output_dim": id_embedding_dim or embedding_dim}
        super().__init__(
            num_users=num_users,
            num_items=num_items,
            rngs=rngs,
            user_features_info=user_features_info,
            item_features_info=item_features_info,
            embedding_dim=embedding_dim,
            user_towers={"id": id_spec, **(user_towers or {})},
            item_towers={"id": id_spec, **(item_towers or {})},
            combiner="concat_mlp",
            combiner_hidden=hidden_dims,
            id_dropout=id_dropout,
            user_id_dropout=user_id_dropout,
            user_bias=False,
            item_bias=False,
            y_range=y_range,
        )


Model = TwoTower
